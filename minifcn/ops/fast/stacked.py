"""Stride-1 convolution as one matrix product over the stacked shifted views of the flat input.

``shift`` computes the output as kh*kw products of the weight slice for one kernel offset with
the flattened padded input shifted by that offset. Here those kh*kw shifted views are copied one
under the other into a single column matrix (C*kh*kw, N*OH*Wp), so each pass is one matrix product
with an inner dimension of C*kh*kw instead of kh*kw products with an inner dimension of C. It is
im2col on the flat layout: each copy moves whole rows of OH*Wp numbers (im2col moves rows of OW), and
the input gradient adds kh*kw contiguous blocks back (im2col adds OH*OW-sized strided windows).

The column matrix is built for a block of images at a time (``image_blocks``), as many as fit in
BLOCK_BYTES, and used by the product right after: copied and read while it is still in the caches,
rather than written out to memory whole and read back.

A backward pass that needs both gradients (``gradients``) stacks the shifted views of dy instead,
and both products read that one matrix: the weight gradient multiplies it by the input's cells, the
input gradient is the kernel turned by 180 degrees times it (a correlation of dy). The input's
shifted views are not copied again and nothing is added back at a shift.

On the default model's 3x3 convolutions (``benchmarks/cpu_benchmark.py --cases small``) this is
faster than im2col, and than one product per offset except with few channels on the larger maps
(see ``choose.py``). The costs: the column matrix
of a block is kh*kw times its input, and the kw-1 wrap-around ("wide") columns of every row are
computed and thrown away, a waste of (kw-1)/Wp, which is large on tiny maps (fc6 on a 3x3 pool5: two
thirds), where ``choose_method`` keeps im2col.
"""

from ...backend import get_array_module
from .products import product_with_transpose
from .shift import copy_shifted_views, prepare, widen  # noqa: F401  (prepare: the same padded input)

# The most bytes of column matrix built at once (always at least one image's). Smaller blocks stay in
# the caches between the copy and the product; too small, and the products get too thin for BLAS.
# Set by: the default model's conv1_2 to conv5_2 on 4 images, forward+backward on one core
# (conv2d(..., method="stacked"), as --cases small-layers --threads 1 runs them): blocks of 1, 4 and
# 16 MiB took 0.86-0.96, 0.88-0.99 and 0.94-0.98 of the whole batch's time on the 96x96 and 48x48
# maps; on the 24x24 to 6x6 maps 4 and 16 MiB came within 2% of it, 1 MiB up to 7% slower.
BLOCK_BYTES = 4 * 2**20


def image_blocks(n, c, kernel, length, itemsize):
    """The blocks of a batch of ``n`` images of C channels and ``length`` (OH * Wp) wide cells, each as
    many images as fit BLOCK_BYTES of column matrix (at least one): for each, the slice of the images
    and the slice of their cells in a (., N * length) matrix such as the output's."""
    per_image = c * kernel[0] * kernel[1] * length * itemsize
    size = max(1, min(n, BLOCK_BYTES // per_image))
    return [(slice(first, min(n, first + size)), slice(first * length, min(n, first + size) * length))
            for first in range(0, n, size)]


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
    n, c, _, wp = xpad.shape
    o, kernel = weight.shape[0], weight.shape[2:]
    oh, ow = out_hw
    weight_matrix = weight.reshape(o, -1)
    y = xp.empty((o, n * oh * wp), dtype=xpad.dtype)
    for images, columns in image_blocks(n, c, kernel, oh * wp, xpad.itemsize):
        xp.matmul(weight_matrix, _stacked_shifts(xpad[images], kernel, oh), out=y[:, columns])
    return xp.ascontiguousarray(y.reshape(o, n, oh, wp)[..., :ow].transpose(1, 0, 2, 3))


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw): the wide dy times the stacked shifts, summed over pixels and images
    (block by block, the blocks' sums added in order)."""
    n, c, _, wp = xpad.shape
    o, oh = dy.shape[1], dy.shape[2]
    dy_wide = widen(dy, wp, by_channel=True)
    total = None
    for images, columns in image_blocks(n, c, kernel, oh * wp, xpad.itemsize):
        block = product_with_transpose(dy_wide[:, columns], _stacked_shifts(xpad[images], kernel, oh))
        if total is None:
            total = block
        else:
            total += block
    return total.reshape(o, c, *kernel)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): the adjoint of ``forward``, each offset's block added back at its shift."""
    xp = get_array_module(dy, weight)
    n, o, oh, _ = dy.shape
    _, c, kh, kw = weight.shape
    hp, wp = padded_hw
    length = oh * wp
    weight_t = weight.reshape(o, -1).T
    dy_wide = widen(dy, wp, by_channel=True)
    dflat = xp.zeros((n, c, (hp + 1) * wp), dtype=dy.dtype)
    for images, columns in image_blocks(n, c, (kh, kw), length, dy.itemsize):
        count = images.stop - images.start
        dcols = (weight_t @ dy_wide[:, columns]).reshape(c, kh, kw, count, length)
        by_channel = dflat[images].transpose(1, 0, 2)  # a view: adding into it fills dflat
        for a in range(kh):
            for b in range(kw):
                shift = a * wp + b
                by_channel[:, :, shift : shift + length] += dcols[:, a, b]
    return dflat.reshape(n, c, hp + 1, wp)[:, :, :hp]


def gradients(xpad, dy, weight, padding, input_hw):
    """(dx, dweight) for dy (N, O, OH, OW): dx (N, C, H, W) and dweight (O, C, kh, kw) from one column
    matrix of dy's shifted views, built a block of images at a time.

    Input cell q of the padded map (flat, rows of Wp) met output cell q - (a*Wp + b) at kernel offset
    (a, b). So, for the cells of the input's H data rows, row (o, a', b') of the matrix is dy's flat
    map (rows of Wp, zero in the kw-1 wide columns) shifted by the flipped offset (kh-1-a', kw-1-b'),
    read from ``dy_padded``, dy set kh-1-ph rows down and kw-1 cells across. Then
    dx = flipped weight (C, O*kh*kw) @ matrix and dweight, flipped back, = matrix @ input cells^T.
    None for the cases this does not take, which the two functions above then compute: a padding
    deeper than the kernel (conv1_1's 100), which leaves whole rows of dy outside every data row, and
    more output channels than input ones, where dy's matrix would be the larger (up to twice the
    forward pass's, 50 MB more on a CamVid image's conv3_1) for a gain of 2-5% on the default model's
    growing layers.
    """
    xp = get_array_module(xpad, dy, weight)
    n, c, rows, wp = xpad.shape
    o, oh, ow = dy.shape[1:]
    kh, kw = weight.shape[2:]
    (ph, pw), (h, w) = padding, input_hw
    if ph > kh - 1 or o > c:
        return None
    length = h * wp  # the cells of the input's data rows, the pad columns included
    dy_padded = xp.zeros((o, n, h + kh, wp), dtype=dy.dtype)  # one spare row, read only by wide cells
    top = kh - 1 - ph
    dy_padded[:, :, top : top + oh, kw - 1 : kw - 1 + ow] = dy.transpose(1, 0, 2, 3)
    dy_flat = dy_padded.reshape(o, n, -1)
    flipped = weight[:, :, ::-1, ::-1]
    flipped_matrix = xp.ascontiguousarray(flipped.transpose(1, 0, 2, 3)).reshape(c, -1)  # (C, O*kh*kw)
    x_cells = xpad.reshape(n, c, rows * wp)[:, :, ph * wp : ph * wp + length]
    dx_cells = xp.empty((c, n * length), dtype=dy.dtype)
    dweight_rows = None  # (O*kh*kw, C), rows in the matrix's flipped order
    for images, columns in image_blocks(n, o, (kh, kw), length, dy.itemsize):
        count = images.stop - images.start
        cols = xp.empty((o, kh, kw, count, length), dtype=dy.dtype)
        cols = copy_shifted_views(dy_flat[:, images], (kh, kw), wp, 0, length, cols).reshape(-1, count * length)
        xp.matmul(flipped_matrix, cols, out=dx_cells[:, columns])
        block_cells = xp.ascontiguousarray(x_cells[images].transpose(1, 0, 2)).reshape(c, -1)
        part = cols @ block_cells.T
        if dweight_rows is None:
            dweight_rows = part
        else:
            dweight_rows += part
    dweight = dweight_rows.reshape(o, kh, kw, c)[:, ::-1, ::-1].transpose(0, 3, 1, 2)
    dx = dx_cells.reshape(c, n, h, wp)[..., pw : pw + w].transpose(1, 0, 2, 3)
    return dx, xp.ascontiguousarray(dweight)
