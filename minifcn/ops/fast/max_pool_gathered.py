"""Max pooling in a few kernels per pass: the GPU's way to compute ``ops/max_pool.py``.

The reference loops over the kh*kw window cells, several kernels each, which a GPU step pays for in
kernel launches. Here, for arrays on a GPU:

- forward pads the map with -inf to the windows' full extent (ceil mode: the last window may hang
  over the edge, and -inf cells never win), gathers every window at once into (N, C, kh*kw, OH, OW),
  and takes the argmax (the first maximum in raster order, as the reference's tie rule) and the max;
- backward turns each window's argmax into the row and column of that cell and scatter-adds dy
  there, one kernel for all windows (overlapping windows that share a maximum add up, as in the
  reference).

The cache keeps the argmax (N, C, OH, OW) instead of the input and output.
"""

import functools
from collections import namedtuple

import numpy as np

from ...backend import cupyx_or_none, device_of, elementwise_kernel, get_array_module

GatheredPoolCache = namedtuple("GatheredPoolCache", "argmax input_shape kernel stride")

# The map row and column of each window's argmax cell, in one launch (the argmax is >= 0, so C's
# integer / and % are the floor division and remainder).
_CELL_KERNEL = ("I argmax, int32 kw, int32 first_row, int32 first_col", "int32 rows, int32 cols",
                "cols = argmax % kw; rows = (argmax - cols) / kw + first_row; cols += first_col;",
                "minifcn_pool_argmax_cells")


@functools.lru_cache(maxsize=128)
def _grids(xp, device, n, c, kernel, stride, out_hw):
    """Index arrays, on ``device``: window rows (kh, 1, OH, 1) and cols (1, kw, 1, OW) for the gather;
    the batch (N, 1, 1, 1), channel (1, C, 1, 1), first-row (OH, 1) and first-column (OW,) indices
    for the scatter."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    as_device = lambda array: xp.asarray(array.astype(np.int32))  # noqa: E731
    rows = np.arange(kh).reshape(kh, 1, 1, 1) + sh * np.arange(oh).reshape(1, 1, oh, 1)
    cols = np.arange(kw).reshape(1, kw, 1, 1) + sw * np.arange(ow).reshape(1, 1, 1, ow)
    return (as_device(rows), as_device(cols), as_device(np.arange(n).reshape(n, 1, 1, 1)),
            as_device(np.arange(c).reshape(1, c, 1, 1)), as_device(sh * np.arange(oh).reshape(oh, 1)),
            as_device(sw * np.arange(ow)))


def forward(x, kernel, stride, out_hw):
    """y (N, C, OH, OW) and the cache, for x (N, C, H, W) on a GPU; windows as in ``max_pool2d``."""
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    n, c, h, w = x.shape
    extent = ((oh - 1) * sh + kh, (ow - 1) * sw + kw)
    if extent[0] <= h and extent[1] <= w:
        x = x[:, :, : extent[0], : extent[1]]  # a view: floor mode may leave the last rows unread
    else:
        padded = xp.full((n, c) + extent, -np.inf, dtype=x.dtype)
        rows_in, cols_in = min(h, extent[0]), min(w, extent[1])
        padded[:, :, :rows_in, :cols_in] = x[:, :, :rows_in, :cols_in]
        x = padded
    rows, cols = _grids(xp, device_of(x), n, c, tuple(kernel), tuple(stride), tuple(out_hw))[:2]
    windows = x[:, :, rows, cols].reshape(n, c, kh * kw, oh, ow)
    argmax = windows.argmax(axis=2)
    return windows.max(axis=2), GatheredPoolCache(argmax, (n, c, h, w), tuple(kernel), tuple(stride))


def backward(dy, cache):
    """dx (N, C, H, W): dy (N, C, OH, OW) added to each window's first maximum."""
    xp = get_array_module(dy)
    n, c, h, w = cache.input_shape
    kh, kw = cache.kernel
    oh, ow = dy.shape[2:]
    _, _, batch, channel, first_row, first_col = _grids(xp, device_of(dy), n, c, cache.kernel, cache.stride,
                                                        (oh, ow))
    rows, cols = _argmax_cells(cache.argmax, kw, first_row, first_col)
    dx = xp.zeros((n, c, h, w), dtype=dy.dtype)
    scatter_add = np.add.at if xp is np else cupyx_or_none().scatter_add
    scatter_add(dx, (batch, channel, rows, cols), dy)
    return dx


def _argmax_cells(argmax, kw, first_row, first_col):
    """Rows and columns (int32, the shape of ``argmax``) in the map of the cells ``argmax`` points to
    in windows whose top-left cells are at ``first_row`` (OH, 1) and ``first_col`` (OW,)."""
    xp = get_array_module(argmax)
    if xp is not np:
        return elementwise_kernel(xp, *_CELL_KERNEL)(argmax, kw, first_row, first_col)
    row_in_window = argmax // kw
    return row_in_window + first_row, (argmax - row_in_window * kw) + first_col
