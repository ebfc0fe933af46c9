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
