"""im2col for any kernel and stride, its windows moved a block of kernel offsets at a time.

Forward, weight gradient and input gradient compute what the reference in ``minifcn/ops/conv.py``
does: gather the windows into columns (C, kh, kw, N, OH, OW), whole batch included, and take one
matrix product per pass; the weight gradient's product goes through
``products.product_with_transpose``, which computes it in whichever orientation BLAS runs faster.

What differs is how the columns are moved. The reference (``ops/windows.py``) copies one kernel
offset at a time: kh*kw NumPy calls, 256 for the 16x16 kernel of FCN-8s's upsampling by 8. Each call
moves little there (an offset of that kernel sees 12x12 cells of a 96x96 map), so the step paid for
the calls, not the copying, and with the parts of a batch on threads each call was also a moment
where the threads took turns at Python's lock. Here the offsets go in blocks of stride x stride:

    offset a = q * stride + r reads row stride * i + a = stride * (i + q) + r of the padded map,

so with the map's rows viewed as (I, stride) pairs, offset a is row pair (i + q, r). For one q, the
offsets r = 0 .. stride - 1 of every window read distinct cells, and the whole block is one slice
of that view: ceil(kh / stride) * ceil(kw / stride) calls in all, 4 for an upsampling kernel of
twice its stride. Because the cells of one block never overlap, the scatter (the adjoint) can add
a whole block with one ``+=``. At stride 1 a block is a single offset, as in the reference.

The column matrix holds C*kh*kw numbers per output pixel, kh*kw times the input's memory: cheap for
a 3-channel input (conv1_1) or a small map (fc6's 7x7 on pool5), prohibitive for 64 channels on a
700x700 map, where ``shift`` takes over. Nothing is cached between passes: the backward gathers the
windows again rather than holding the column matrix.

Every function works on the already padded input ``xpad`` (N, C, Hp, Wp).
"""

from ...backend import get_array_module
from .. import conv as reference  # a module, not its names: conv.py imports this package first
from ..padding import pad2d
from .products import add_product_with_transpose, product_with_transpose


def prepare(x, padding):
    """The padded input (N, C, Hp, Wp) that the other functions read."""
    return pad2d(x, padding)


def _blocks(kernel, stride):
    """[(q, offsets)] along one axis: block q holds the kernel offsets q*stride .. up to the kernel's end."""
    starts = range(0, kernel, stride)
    return [(q, slice(start, min(start + stride, kernel))) for q, start in enumerate(starts)]


def _by_phase(maps, stride):
    """``maps`` (N, C, I*sh, J*sw) as (C, sh, sw, N, I, J): cell (I, J) of phase (r, t) is
    maps[:, :, I*sh + r, J*sw + t]. A view of a contiguous map (the scatter adds into it); a cut
    one may be copied, which only the gather reads."""
    n, c, rows, width = maps.shape
    sh, sw = stride
    return maps.reshape(n, c, rows // sh, sh, width // sw, sw).transpose(1, 3, 5, 0, 2, 4)


def _phase_shape(kernel, stride, out_hw):
    """(rows, cols) that the blocks of every window cover, whole multiples of the stride."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    return sh * (oh + len(_blocks(kh, sh)) - 1), sw * (ow + len(_blocks(kw, sw)) - 1)


def gather(xpad, kernel, stride, out_hw):
    """The windows of ``xpad`` (N, C, Hp, Wp) as columns (C, kh, kw, N, OH, OW), as
    ``windows.gather_windows`` makes them, one block of kernel offsets per copy."""
    xp = get_array_module(xpad)
    n, c, hp, wp = xpad.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    rows, width = _phase_shape(kernel, stride, out_hw)
    if rows <= hp and width <= wp:
        fitted = xpad[:, :, :rows, :width]  # cells past the last window's are never read
    else:
        # The last block's offsets past the kernel reach beyond the map: zeros there, never kept.
        fitted = xp.zeros((n, c, rows, width), dtype=xpad.dtype)
        kept = (slice(None), slice(None), slice(min(rows, hp)), slice(min(width, wp)))
        fitted[kept] = xpad[kept]
    phases = _by_phase(fitted, stride)
    columns = xp.empty((c, kh, kw, n, oh, ow), dtype=xpad.dtype)
    for q, a in _blocks(kh, sh):
        for p, b in _blocks(kw, sw):
            columns[:, a, b] = phases[:, : a.stop - a.start, : b.stop - b.start, :, q : q + oh, p : p + ow]
    return columns


def scatter(columns, padded_hw, stride):
    """Adjoint of ``gather``: sum columns (C, kh, kw, N, OH, OW) into a (N, C, Hp, Wp) map, one
    block of kernel offsets per addition (a block's cells never overlap, so ``+=`` is exact)."""
    xp = get_array_module(columns)
    c, kh, kw, n, oh, ow = columns.shape
    sh, sw = stride
    hp, wp = padded_hw
    rows, width = _phase_shape((kh, kw), stride, (oh, ow))
    # Room for both the blocks and the padded map, in whole strides so the phase view is exact.
    rows, width = sh * -(-max(rows, hp) // sh), sw * -(-max(width, wp) // sw)
    out = xp.zeros((n, c, rows, width), dtype=columns.dtype)
    phases = _by_phase(out, stride)  # a view: adding into it fills ``out``
    for q, a in _blocks(kh, sh):
        for p, b in _blocks(kw, sw):
            phases[:, : a.stop - a.start, : b.stop - b.start, :, q : q + oh, p : p + ow] += columns[:, a, b]
    return out[:, :, :hp, :wp]


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) = weight (O, C, kh, kw) correlated with ``xpad`` (N, C, Hp, Wp): the reference's,
    with this module's gather."""
    return reference.reference_forward(xpad, weight, stride, out_hw, gather=gather)


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw) from the padded input (N, C, Hp, Wp) and dy (N, O, OH, OW)."""
    n, o, oh, ow = dy.shape
    c = xpad.shape[1]
    columns = gather(xpad, kernel, stride, (oh, ow)).reshape(-1, n * oh * ow)
    return product_with_transpose(reference.dy_as_matrix(dy), columns).reshape(o, c, *kernel)


def add_weight_grad(xpad, dy, kernel, stride, into):
    """Add the weight gradient into ``into`` (O, C, kh, kw), a contiguous array (a layer's gradient),
    a block at a time (``products.add_product_with_transpose``), never building it whole."""
    n, o, oh, ow = dy.shape
    columns = gather(xpad, kernel, stride, (oh, ow)).reshape(-1, n * oh * ow)
    add_product_with_transpose(into.reshape(o, -1), reference.dy_as_matrix(dy), columns)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): each output's gradient spread back over its window: the reference's, with
    this module's scatter."""
    return reference.reference_input_grad(dy, weight, stride, padded_hw, scatter=scatter)
