"""Gathered windows for any kernel and stride, in a few kernels per pass: the GPU's method.

On a GPU the time of a small convolution goes to issuing kernels, not to arithmetic, so this method
takes every window at once where the CPU methods loop over the kh*kw kernel offsets:

- the windows of the padded input are gathered by one fancy index, ``xpad[:, :, rows, cols]`` with
  index arrays rows (kh, 1, OH, 1) and cols (1, kw, 1, OW), into (N, C, kh, kw, OH, OW);
- forward is one batched product weight (O, C*kh*kw) @ columns (N, C*kh*kw, OH*OW);
- the input gradient is one batched product and one scatter-add of the columns back onto the map
  (``cupyx.scatter_add``, ``numpy.add.at``), which sums where windows overlap, unlike ``+=`` through a
  fancy index;
- the weight gradient is ``products.sum_of_products`` of dy and the gathered columns.

The column matrix costs C*kh*kw times the input's memory, like im2col's; a GPU has that memory to
spare for FCN's maps, a CPU's caches do not (``choose`` keeps this method to arrays on a GPU). The
index arrays are made once per geometry and device and kept.

Every function works on the already padded input ``xpad`` (N, C, Hp, Wp).
"""

import functools

import numpy as np

from ...backend import cupyx_or_none, device_of, get_array_module
from ..padding import pad2d
from .products import sum_of_products


def prepare(x, padding):
    """The padded input (N, C, Hp, Wp) that the other functions read."""
    return pad2d(x, padding)


@functools.lru_cache(maxsize=256)
def _window_indices(xp, device, kernel, stride, out_hw):
    """Index arrays rows (kh, 1, OH, 1) and cols (1, kw, 1, OW) of every window cell, on ``device``."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    rows = np.arange(kh).reshape(kh, 1, 1, 1) + sh * np.arange(oh).reshape(1, 1, oh, 1)
    cols = np.arange(kw).reshape(1, kw, 1, 1) + sw * np.arange(ow).reshape(1, 1, 1, ow)
    return xp.asarray(rows.astype(np.int32)), xp.asarray(cols.astype(np.int32))


def _indices(array, kernel, stride, out_hw):
    xp = get_array_module(array)
    return _window_indices(xp, device_of(array), tuple(kernel), tuple(stride), tuple(out_hw))


def gather(xpad, kernel, stride, out_hw):
    """The windows of ``xpad`` (N, C, Hp, Wp) as columns (N, C*kh*kw, OH*OW), in one gather."""
    rows, cols = _indices(xpad, kernel, stride, out_hw)
    n, c = xpad.shape[:2]
    return xpad[:, :, rows, cols].reshape(n, c * kernel[0] * kernel[1], out_hw[0] * out_hw[1])


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) = weight (O, C, kh, kw) correlated with ``xpad`` (N, C, Hp, Wp)."""
    xp = get_array_module(xpad, weight)
    n, o = xpad.shape[0], weight.shape[0]
    columns = gather(xpad, weight.shape[2:], stride, out_hw)
    return xp.matmul(weight.reshape(o, -1), columns).reshape(n, o, *out_hw)


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw) from the padded input (N, C, Hp, Wp) and dy (N, O, OH, OW)."""
    n, o, oh, ow = dy.shape
    c = xpad.shape[1]
    columns = gather(xpad, kernel, stride, (oh, ow))
    return sum_of_products(dy.reshape(n, o, oh * ow), columns).reshape(o, c, *kernel)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): each output's gradient dy (N, O, OH, OW) added back over its window."""
    xp = get_array_module(dy, weight)
    n, o, oh, ow = dy.shape
    _, c, kh, kw = weight.shape
    dcolumns = xp.matmul(weight.reshape(o, -1).T, dy.reshape(n, o, oh * ow))  # (N, C*kh*kw, OH*OW)
    rows, cols = _indices(dy, (kh, kw), stride, (oh, ow))
    dxpad = xp.zeros((n, c) + tuple(padded_hw), dtype=dy.dtype)
    scatter_add = np.add.at if xp is np else cupyx_or_none().scatter_add
    scatter_add(dxpad, (slice(None), slice(None), rows, cols), dcolumns.reshape(n, c, kh, kw, oh, ow))
    return dxpad
