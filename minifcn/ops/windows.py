"""Gathering sliding windows into columns, and its adjoint, scattering columns back.

Shape letters, used in every docstring of minifcn: N batch, C channels, H and W height and width of an
input map, OH and OW of an output map, K classes, kh and kw a kernel's height and width.

``gather_windows`` is im2col: it copies, for every kernel offset (a, b), the strided sub-map that the
offset sees. ``scatter_windows`` is its exact adjoint (col2im): it adds each offset's sub-map back at
the same place. The scatter is written once here and used twice: it is the input gradient of a
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
    """Copy the windows of ``x`` (N, C, H, W) into columns (N, C, kh, kw, OH, OW).

    ``x`` is already padded; window (i, j) starts at (stride_h * i, stride_w * j).
    """
    xp = get_array_module(x)
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    n, c = x.shape[:2]
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            cols[:, :, a, b] = x[:, :, window_slices(a, sh, oh), window_slices(b, sw, ow)]
    return cols


def scatter_windows(cols, padded_hw, stride):
    """Adjoint of ``gather_windows``: sum columns (N, C, kh, kw, OH, OW) into a (N, C, H, W) map."""
    xp = get_array_module(cols)
    n, c, kh, kw, oh, ow = cols.shape
    sh, sw = stride
    out = xp.zeros((n, c) + tuple(padded_hw), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, window_slices(a, sh, oh), window_slices(b, sw, ow)] += cols[:, :, a, b]
    return out
