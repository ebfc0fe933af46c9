"""Gathering sliding windows into columns, and its adjoint, scattering columns back.

Shape letters, used in every docstring of minifcn: N batch, C channels, H and W height and width of an
input map, OH and OW of an output map, K classes, kh and kw a kernel's height and width.

``gather_windows`` is im2col: it copies, for every kernel offset (a, b), the strided sub-map that the
offset sees. The columns are laid out (C, kh, kw, N, OH, OW): rows are what one kernel weight row
multiplies, columns are every output pixel of every image, so a whole batch is one matrix product
(O, C*kh*kw) @ (C*kh*kw, N*OH*OW). One large product keeps BLAS busier than N small ones, and the
weight gradient then sums over the batch inside the product instead of adding N partial results.
``scatter_windows`` is its exact adjoint (col2im): it adds each offset's sub-map back at the same
place. The scatter is written once here and used twice: it is the input gradient of a
convolution and the forward pass of a transposed convolution, which are the same operation.

Both loop over the kh*kw kernel offsets, never over pixels: each iteration moves a whole strided
slice, and ``+=`` on a slice accumulates correctly where windows overlap (unlike fancy-index ``+=``,
which drops repeated indices).
"""

from ..backend import get_array_module


def window_slices(offset, stride, count):
    """The slice that kernel offset ``offset`` reads along one axis for ``count`` outputs."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def gather_windows(x, kernel, stride, out_hw):
    """Copy the windows of ``x`` (N, C, H, W) into columns (C, kh, kw, N, OH, OW).

    ``x`` is already padded; window (i, j) starts at (stride_h * i, stride_w * j).
    """
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    n, c = x.shape[:2]
    by_channel = x.transpose(1, 0, 2, 3)  # (C, N, H, W): a view, copied once below
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            cols[:, a, b] = by_channel[:, :, window_slices(a, sh, oh), window_slices(b, sw, ow)]
    return cols


def scatter_windows(cols, padded_hw, stride):
    """Adjoint of ``gather_windows``: sum columns (C, kh, kw, N, OH, OW) into a (N, C, H, W) map."""
    xp = get_array_module(cols)
    c, kh, kw, n, oh, ow = cols.shape
    sh, sw = stride
    out = xp.zeros((n, c) + tuple(padded_hw), dtype=cols.dtype)
    by_channel = out.transpose(1, 0, 2, 3)  # a view: adding into it fills ``out``
    for a in range(kh):
        for b in range(kw):
            by_channel[:, :, window_slices(a, sh, oh), window_slices(b, sw, ow)] += cols[:, a, b]
    return out
