"""Stride-1 convolution as one matrix product over the stacked shifted views of the flat input.

``shift`` computes the output as kh*kw products of the weight slice for one kernel offset with
the flattened padded input shifted by that offset. Here those kh*kw shifted views are copied one
under the other into a single column matrix (C*kh*kw, N*OH*Wp), so each pass is one matrix product
with an inner dimension of C*kh*kw instead of kh*kw products with an inner dimension of C. It is
im2col on the flat layout: each copy moves whole rows of OH*Wp numbers (im2col moves rows of OW), and
the input gradient adds kh*kw contiguous blocks back (im2col adds OH*OW-sized strided windows).

The column matrix is built a block at a time (``blocks``): as many whole images as fit in
BLOCK_BYTES, or, where one image's columns are larger, a band of one image's output rows. Each block
is used by the products right after it is copied, while it is still in the caches, rather than
written out to memory whole and read back; so the memory it takes stays bounded whatever the map.

A backward pass that needs both gradients (``gradients``) stacks the shifted views of dy instead,
and both products read that one matrix: the weight gradient multiplies it by the input's cells, the
input gradient is the kernel turned by 180 degrees times it (a correlation of dy). The input's
shifted views are not copied again and nothing is added back at a shift.

On the default model's 3x3 convolutions up to 32 channels (``benchmarks/cpu_benchmark.py --cases
small``) this is faster than im2col and than one product per offset (see ``choose.py``). The costs:
the column matrix of a block is kh*kw times its input, and the kw-1 wrap-around ("wide") columns of
every row are computed and thrown away, a waste of (kw-1)/Wp, which is large on tiny maps (fc6 on a
3x3 pool5: two thirds), where ``choose_method`` keeps im2col.
"""

from collections import namedtuple

from ...backend import get_array_module
from .products import product_with_transpose
from .shift import copy_shifted_views, prepare, widen  # noqa: F401  (prepare: the same padded input)

# The most bytes of column matrix built at once. Smaller blocks stay in the caches between the copy
# and the products; too small, and the products get too thin for BLAS. Bands of rows within an image
# matter most on the backward pass, whose two products both read the block: on 4 images of the
# default model's conv1_2 (16 channels at 96x96, 5.4 MB of columns an image), forward+backward on one
# core, caches flushed between passes (ms): whole images in 4 MiB blocks 4.8 + 9.5, bands of 2 MiB
# 4.2 + 7.0, of 1 MiB 4.4 + 7.3 (``shift``, which copies nothing, 4.1 + 8.1); conv2_2 (32 at 48x48,
# 2.8 MB an image) 3.1 + 5.9 in whole images, 3.2 + 5.5 in 2 MiB bands.
# Set by: those layers timed with conv2d(..., method=...) on one core, and --cases small.
BLOCK_BYTES = 2 * 2**20

# A block: the ``images`` (a slice of the batch), its output rows ``first_row`` to ``first_row +
# rows`` (every row where it holds several images) and ``cells``, the slice of those rows' cells in
# a (., N * OH * Wp) matrix such as the wide output's.
Block = namedtuple("Block", "images first_row rows cells")


def blocks(n, c, kernel, oh, wp, itemsize):
    """The blocks of a batch of ``n`` images of C channels and OH rows of Wp cells: as many whole images
    as fit BLOCK_BYTES of column matrix, or, where one image does not, bands of one image's rows of
    as equal a size as fit (at least one row)."""
    row_bytes = c * kernel[0] * kernel[1] * wp * itemsize
    length = oh * wp
    if oh * row_bytes <= BLOCK_BYTES or oh == 1:
        size = max(1, min(n, BLOCK_BYTES // (oh * row_bytes)))
        return [Block(slice(first, min(n, first + size)), 0, oh, slice(first * length, min(n, first + size) * length))
                for first in range(0, n, size)]
    count = -(-oh // max(1, BLOCK_BYTES // row_bytes))  # bands an image
    bounds = [oh * index // count for index in range(count + 1)]
    return [Block(slice(image, image + 1), top, bottom - top,
                  slice(image * length + top * wp, image * length + bottom * wp))
            for image in range(n) for top, bottom in zip(bounds[:-1], bounds[1:])]


def _stacked_shifts(flat, kernel, wp, block):
    """cols (C * kh * kw, cells of ``block``): row (c, a, b) is channel c of the block's images, from
    its first row on, shifted by a*Wp + b. ``flat`` is the maps as (C, N, cells), rows of Wp."""
    xp = get_array_module(flat)
    count, length = block.images.stop - block.images.start, block.rows * wp
    cols = xp.empty((flat.shape[0],) + tuple(kernel) + (count, length), dtype=flat.dtype)
    copy_shifted_views(flat[:, block.images], kernel, wp, block.first_row * wp, length, cols)
    return cols.reshape(-1, count * length)


def _by_channel(maps):
    """Maps (N, C, rows, Wp) as the flat (C, N, rows * Wp) view that ``_stacked_shifts`` reads."""
    n, c, rows, wp = maps.shape
    return maps.reshape(n, c, rows * wp).transpose(1, 0, 2)


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) from the prepared input (N, C, Hp + 1, Wp) and weight (O, C, kh, kw)."""
    xp = get_array_module(xpad, weight)
    n, c, _, wp = xpad.shape
    o, kernel = weight.shape[0], weight.shape[2:]
    oh, ow = out_hw
    weight_matrix = weight.reshape(o, -1)
    flat = _by_channel(xpad)
    y = xp.empty((o, n * oh * wp), dtype=xpad.dtype)
    for block in blocks(n, c, kernel, oh, wp, xpad.itemsize):
        xp.matmul(weight_matrix, _stacked_shifts(flat, kernel, wp, block), out=y[:, block.cells])
    return xp.ascontiguousarray(y.reshape(o, n, oh, wp)[..., :ow].transpose(1, 0, 2, 3))


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw): the wide dy times the stacked shifts, summed over pixels and images
    (block by block, the blocks' sums added in order)."""
    n, c, _, wp = xpad.shape
    o, oh = dy.shape[1], dy.shape[2]
    dy_wide = widen(dy, wp, by_channel=True)
    flat = _by_channel(xpad)
    total = None
    for block in blocks(n, c, kernel, oh, wp, xpad.itemsize):
        part = product_with_transpose(dy_wide[:, block.cells], _stacked_shifts(flat, kernel, wp, block))
        if total is None:
            total = part
        else:
            total += part
    return total.reshape(o, c, *kernel)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): the adjoint of ``forward``, each offset's block added back at its shift."""
    xp = get_array_module(dy, weight)
    n, o, oh, _ = dy.shape
    _, c, kh, kw = weight.shape
    hp, wp = padded_hw
    weight_t = weight.reshape(o, -1).T
    dy_wide = widen(dy, wp, by_channel=True)
    dflat = xp.zeros((n, c, (hp + 1) * wp), dtype=dy.dtype)
    for block in blocks(n, c, (kh, kw), oh, wp, dy.itemsize):
        count, length = block.images.stop - block.images.start, block.rows * wp
        dcols = (weight_t @ dy_wide[:, block.cells]).reshape(c, kh, kw, count, length)
        by_channel = dflat[block.images].transpose(1, 0, 2)  # a view: adding into it fills dflat
        for a in range(kh):
            for b in range(kw):
                shift = (block.first_row + a) * wp + b
                by_channel[:, :, shift : shift + length] += dcols[:, a, b]
    return dflat.reshape(n, c, hp + 1, wp)[:, :, :hp]


def gradients(xpad, dy, weight, padding, input_hw):
    """(dx, dweight) for dy (N, O, OH, OW): dx (N, C, H, W) and dweight (O, C, kh, kw) from one column
    matrix of dy's shifted views, built a block at a time.

    Input cell q of the padded map (flat, rows of Wp) met output cell q - (a*Wp + b) at kernel offset
    (a, b). So, for the cells of the input's H data rows, row (o, a', b') of the matrix is dy's flat
    map (rows of Wp, zero in the kw-1 wide columns) shifted by the flipped offset (kh-1-a', kw-1-b'),
    read from ``dy_padded``, dy set kh-1-ph rows down and kw-1 cells across. Then
    dx = flipped weight (C, O*kh*kw) @ matrix and dweight, flipped back, = matrix @ input cells^T.
    A block of one image reads its input cells where they lie; one of several images copies them
    into the matrix's order first.
    None for the cases this does not take, which the two functions above then compute: a padding
    deeper than the kernel (conv1_1's 100), which leaves whole rows of dy outside every data row, and
    more output channels than input ones, where dy's matrix is the larger (twice the input's on the
    default model's growing layers) and sharing it was no faster: backward on 4 images, one core,
    3.4 against 3.2 ms on conv2_1, 3.2 against 3.3 on conv3_1 (3.7 against 3.4 and 3.6 against 3.5
    with the caches flushed).
    """
    xp = get_array_module(xpad, dy, weight)
    n, c, rows, wp = xpad.shape
    o, oh, ow = dy.shape[1:]
    kh, kw = weight.shape[2:]
    (ph, pw), (h, w) = padding, input_hw
    if ph > kh - 1 or o > c:
        return None
    dy_padded = xp.zeros((o, n, h + kh, wp), dtype=dy.dtype)  # one spare row, read only by wide cells
    top = kh - 1 - ph
    dy_padded[:, :, top : top + oh, kw - 1 : kw - 1 + ow] = dy.transpose(1, 0, 2, 3)
    dy_flat = dy_padded.reshape(o, n, -1)
    flipped = weight[:, :, ::-1, ::-1]
    flipped_matrix = xp.ascontiguousarray(flipped.transpose(1, 0, 2, 3)).reshape(c, -1)  # (C, O*kh*kw)
    x_flat = xpad.reshape(n, c, rows * wp)
    dx_cells = xp.empty((c, n * h * wp), dtype=dy.dtype)  # the input's H data rows, pad columns included
    dweight_rows = None  # (O*kh*kw, C), rows in the matrix's flipped order
    for block in blocks(n, o, (kh, kw), h, wp, dy.itemsize):
        cols = _stacked_shifts(dy_flat, (kh, kw), wp, block)
        xp.matmul(flipped_matrix, cols, out=dx_cells[:, block.cells])
        first, last = (ph + block.first_row) * wp, (ph + block.first_row + block.rows) * wp
        if block.images.stop - block.images.start == 1:
            x_cells = x_flat[block.images.start, :, first:last]  # (C, cells), rows of the map's stride
        else:
            x_cells = xp.ascontiguousarray(x_flat[block.images, :, first:last].transpose(1, 0, 2)).reshape(c, -1)
        part = cols @ x_cells.T
        if dweight_rows is None:
            dweight_rows = part
        else:
            dweight_rows += part
    dweight = dweight_rows.reshape(o, kh, kw, c)[:, ::-1, ::-1].transpose(0, 3, 1, 2)
    dx = dx_cells.reshape(c, n, h, wp)[..., pw : pw + w].transpose(1, 0, 2, 3)
    return dx, xp.ascontiguousarray(dweight)
