"""Stride-1 convolution as one matrix product over the stacked shifted views of the flat input.

``shift`` computes the output as kh*kw products of the weight slice for one kernel offset with
the flattened padded input shifted by that offset. Here those kh*kw shifted views are copied one
under the other into a single column matrix (C*kh*kw, N*OH*Wp), whole batch included, so each pass
is one matrix product with an inner dimension of C*kh*kw instead of kh*kw products with an inner
dimension of C. It is im2col on the flat layout: each copy moves whole rows of OH*Wp numbers (im2col
moves rows of OW), and the input gradient adds kh*kw contiguous blocks back (im2col adds OH*OW-sized
strided windows).

On the default model's 3x3 convolutions (``benchmarks/cpu_benchmark.py --cases small``) this is
faster than im2col, and than one product per offset except with few channels on the larger maps
(see ``choose.py``). The costs: the column matrix is as large as im2col's, and the kw-1 wrap-around
("wide") columns of every row are computed and thrown away, a waste of (kw-1)/Wp, which is large on
tiny maps (fc6 on a 3x3 pool5: two thirds), where ``choose_method`` keeps im2col.
"""

from ...backend import get_array_module
from .products import product_with_transpose
from .shift import copy_shifted_views, prepare, widen  # noqa: F401  (prepare: the same padded input)


def _stacked_shifts(xpad, kernel, oh):
    """cols (C * kh * kw, N * OH * Wp): row (c, a, b) is channel c of every image shifted by a*Wp + b."""
    xp = get_array_module(xpad)
    n, c, rows, wp = xpad.shape
    length = oh * wp
    flat = xpad.reshape(n, c, rows * wp).transpose(1, 0, 2)  # (C, N, rows * Wp): a view
    cols = xp.empty((c,) + tuple(kernel) + (n, length), dtype=xpad.dtype)
    return copy_shifted_views(flat, kernel, wp, 0, length, cols).reshape(-1, n * length)


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) from the prepared input (N, C, Hp + 1, Wp) and weight (O, C, kh, kw)."""
    xp = get_array_module(xpad, weight)
    n, _, _, wp = xpad.shape
    o = weight.shape[0]
    oh, ow = out_hw
    y = weight.reshape(o, -1) @ _stacked_shifts(xpad, weight.shape[2:], oh)
    return xp.ascontiguousarray(y.reshape(o, n, oh, wp)[..., :ow].transpose(1, 0, 2, 3))


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw): the wide dy times the stacked shifts, summed over pixels and images."""
    o, oh = dy.shape[1], dy.shape[2]
    c, wp = xpad.shape[1], xpad.shape[3]
    cols = _stacked_shifts(xpad, kernel, oh)
    return product_with_transpose(widen(dy, wp, by_channel=True), cols).reshape(o, c, *kernel)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): the adjoint of ``forward``, each offset's block added back at its shift."""
    xp = get_array_module(dy, weight)
    n, o, oh, _ = dy.shape
    _, c, kh, kw = weight.shape
    hp, wp = padded_hw
    length = oh * wp
    dcols = (weight.reshape(o, -1).T @ widen(dy, wp, by_channel=True)).reshape(c, kh, kw, n, length)
    dflat = xp.zeros((n, c, (hp + 1) * wp), dtype=dy.dtype)
    by_channel = dflat.transpose(1, 0, 2)  # a view: adding into it fills dflat
    for a in range(kh):
        for b in range(kw):
            shift = a * wp + b
            by_channel[:, :, shift : shift + length] += dcols[:, a, b]
    return dflat.reshape(n, c, hp + 1, wp)[:, :, :hp]
