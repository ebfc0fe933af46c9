"""The one rule that picks a convolution method for ``method="auto"``.

Every method computes the same numbers (the tests hold them equal to the reference); they differ in
what they copy besides the matrix product and in how much memory that copy takes. The rule, in order:

1. a 1x1 kernel: ``pointwise``, the convolution is already a matrix product, nothing to copy;
2. a stride above 1: ``im2col``, the only method with strided windows;
3. a 3x3 kernel: ``winograd``, whose fewer multiplications save more than its transforms cost,
   where each call has one core (BLAS runs one thread, as in ``data_parallel``'s parts), the
   channels are not few and the batch's maps not tiny; or where BLAS has several threads, the map
   is large enough to be cut into runs of tile rows, one per core (``cores.py``), the channels are
   not few, and BLAS's idle threads leave the cores to those runs;
4. a column matrix above ``IM2COL_MAX_BYTES``: ``shift``, which builds none;
5. a kernel nearly as wide as the map (fc6's 7x7 on a small pool5): ``im2col``, because ``stacked``
   would compute mostly wrap-around columns;
6. the image layer of a single image: ``im2col``, whose product is already the output;
7. otherwise ``stacked``.

A transposed convolution (``choose_transposed_method``) whose kernel is a whole multiple of its stride
(FCN's upsamplings) takes ``subpixel`` on an output of SUBPIXEL_MIN_PIXELS or more: a stride-1
convolution and a pixel shuffle, no column matrix added back window by window. Any other goes by the
rule above, as the convolution whose input gradient it is.

On a GPU (arrays of another module than NumPy) none of that applies: a step there is bound by how many
kernels Python issues, so the rule is ``pointwise`` for a 1x1 kernel and ``gathered`` otherwise, a
handful of kernels per pass whatever the kernel size. The CPU's cache thresholds below never drive it.

The CPU thresholds are the points where two methods take equal time on this kind of machine. Each
comment names the benchmark that moves it: time the cases on both sides of a threshold with it set
each way (``python benchmarks/cpu_benchmark.py --frameworks minifcn ...``) and keep the faster.
"""

import numpy as np

from . import subpixel
from .cores import BLAS_SLEEPS_WHEN_IDLE, blas_threads

# Winograd F(2x2, 3x3) does 16 multiplications per 2x2 output tile where the others do 36, but
# transforms the input and output around its products, additions that cost in proportion to C + O
# per pixel while the saving grows with C * O, and pays a cost per call (16 products, the transforms'
# many small NumPy operations) whatever the map. On one core it is the faster from this many channels
# on both sides and this many output pixels in the batch. Forward+backward, its time over stacked's:
# 128 -> 128 channels on four 12x12 maps 0.74x, 64 -> 64 on four 24x24 0.80x, 64 -> 128 on four 12x12
# 0.88x (the default model's conv3_2 to conv4_3 in a part of its batch), 512 -> 512 on one 22x22 map
# 0.72x, 128 -> 128 on four 8x8 0.93x; below the thresholds, 32 -> 64 on four 24x24 0.97x, 32 -> 32 on
# four 48x48 1.43x, 128 -> 128 on four 6x6 1.13x and on one 12x12 1.60x, 512 -> 512 on two 6x6 1.45x.
# (64 channels on one map of 24x24 to 96x96 come out 0.99-1.14x: even, at worst a little slower.)
# Set by: the shapes above timed with conv2d(..., method=...) on one core, and --cases small, camvid
# and camvid-batch2 with --threads 1 and 2, old and new alternating.
WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MIN_PIXELS = 256

# Winograd's transforms are NumPy additions on the calling core, and its products 16 smaller ones per
# pass where the others make one large one. With BLAS's own threads on one image (a batch of one,
# which data_parallel runs on the calling thread) only the products would be shared between the
# cores: the CamVid step came out even on an idle 2-core machine, the backward passes slower. So
# with more BLAS threads than this, winograd runs split (``winograd.row_parts``: one run of tile rows
# per core, each in its own thread with one BLAS thread) or not at all.
# Set by: --cases camvid,camvid-layers with --threads 2 and with --threads 1.
WINOGRAD_MAX_BLAS_THREADS = 1

# Split over the cores, Winograd shares its transforms between them where the other methods' copies
# and additions stay on one core, so it wins on fewer channels than on one core: from 64 -> 64 (a
# CamVid image's conv1_2 0.67x stacked's or shift's time forward, 0.81x forward+backward; conv2_2
# 0.68x and 0.83x; a 500x500 image's conv2_2 0.56x and 0.73x, its conv3 0.8x, conv4 0.66x). Each
# core's products have a part of the map's tile columns, though, and on small maps those thin
# products lose more than the sharing gains (CamVid's conv5 at 23x30 and a 500x500 image's at 44x44:
# 1.1x slower; conv4 at 45x60 0.8x). So split winograd from this many channels on both sides and this
# many output pixels in the batch, and only where BLAS's idle threads do not spin on the cores
# (``cores.BLAS_SLEEPS_WHEN_IDLE``; with the default spin the split layers ran 1.4x slower).
# Set by: --cases camvid,camvid-layers and --cases layers (one image, BLAS on two threads).
WINOGRAD_SPLIT_MIN_CHANNELS = 64
WINOGRAD_SPLIT_MIN_PIXELS = 2500

# A column matrix costs C*kh*kw times the input's memory. Above this size, built whole, its page
# faults and memory traffic cost more than the kh*kw separate products of ``shift`` that need no copy.
# Set by: --cases layers --layers conv1_2,conv2_2 (the 500x500 maps, about a gigabyte of columns),
# with ``stacked`` building a whole image's columns at once; in bands of rows it is not yet timed there.
IM2COL_MAX_BYTES = 64 * 2**20

# ``stacked`` computes kw - 1 wrap-around columns in every row of Wp (the padded width) and throws them
# away; above this fraction of each row the waste costs more than im2col's strided copies.
# Set by: --cases small and --cases layers --layers fc6 (fc6's 7x7 kernel on 3x3 to 16x16 maps).
STACKED_MAX_WASTE = 0.25

# Below IM2COL_MAX_BYTES of columns, ``stacked`` (its column matrix built in blocks of at most
# ``stacked.BLOCK_BYTES``, bands of an image's rows where one image's columns are larger) is faster
# than ``shift`` also with few channels on the larger maps, where its backward pass reads each block
# for both products while it is in the caches. Forward+backward on one core, caches flushed between
# passes, shift's time then stacked's (ms): 4 images of 16 -> 16 channels at 96x96 (the default
# model's conv1_2) 14.3 and 12.1, of 32 -> 32 at 48x48 (conv2_2) 10.9 and 9.9; one image of 32 -> 32
# at 96x96 11.6 and 10.8, of 64 -> 64 at 96x96 32.7 and 30.2.
# Set by: those shapes timed with conv2d(..., method=...), and --cases small, old and new alternating.


def choose_method(x_shape, kernel, stride, out_hw, itemsize, out_channels=None, xp=np):
    """The method name for a convolution of x (N, C, H, W) by a (kh, kw) ``kernel``.

    ``out_hw`` is (OH, OW), ``itemsize`` the bytes of one number (4 for float32), ``out_channels``
    O (None where it does not matter, as for a transposed convolution's input gradient) and ``xp``
    the array module of the data (numpy, or cupy on a GPU).
    """
    if tuple(kernel) == (1, 1):
        return "pointwise"
    if xp is not np:
        return "gathered"
    if tuple(stride) != (1, 1):
        return "im2col"
    n, c = x_shape[:2]
    if tuple(kernel) == (3, 3):
        # With no output count (a transposed convolution's input gradient) the input's stands for both.
        channels = min(c, out_channels or c)
        if blas_threads() <= WINOGRAD_MAX_BLAS_THREADS:
            if channels >= WINOGRAD_MIN_CHANNELS and n * out_hw[0] * out_hw[1] >= WINOGRAD_MIN_PIXELS:
                return "winograd"
        elif (BLAS_SLEEPS_WHEN_IDLE and channels >= WINOGRAD_SPLIT_MIN_CHANNELS
              and n * out_hw[0] * out_hw[1] >= WINOGRAD_SPLIT_MIN_PIXELS):
            return "winograd"
    column_bytes = n * c * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * itemsize
    if column_bytes > IM2COL_MAX_BYTES:
        return "shift"
    padded_width = out_hw[1] + kernel[1] - 1
    if kernel[1] - 1 > STACKED_MAX_WASTE * padded_width:
        return "im2col"
    if n == 1 and c * kernel[0] * kernel[1] < (out_channels or 0):
        # The image layer (conv1_1: 27 column rows, 64 outputs): for one image im2col's product
        # (O, N*OH*OW) is already the output, while stacked must copy O wide rows out of its product.
        # Set by: --cases layers --layers conv1_1 and --cases camvid.
        return "im2col"
    return "stacked"


# ``subpixel`` makes a few more NumPy calls than im2col (the phase weight, the padding, the shuffle)
# and saves im2col's additions of the columns into the output, which grow with the output. On one
# core, forward+backward: im2col's time 0.80-0.95x subpixel's on outputs of 144-784 pixels (a 4x4
# kernel at stride 2 on 4 maps of 3x3 and 6x6, 1 map of 12x12), subpixel's 0.88-0.91x im2col's at
# 2304-2704 and 0.46-0.76x from 9216 on (the default model's upsampling by 8: 4 maps of 12x12 to 96x96).
# Set by: --cases small-layers --layers upscore2,upscore_pool4,upscore8, and the shapes above timed with
# conv_transpose2d(..., method="im2col") against method="subpixel".
SUBPIXEL_MIN_PIXELS = 1024


def choose_transposed_method(x_shape, out_channels, kernel, stride, padded_hw, itemsize, xp=np):
    """The method name for a transposed convolution of x (N, C, H, W) by a (kh, kw) ``kernel`` to
    ``out_channels`` maps of ``padded_hw`` (before its padding is cropped)."""
    n, _, h, w = x_shape
    if xp is np and subpixel.applies(kernel, stride) and n * padded_hw[0] * padded_hw[1] >= SUBPIXEL_MIN_PIXELS:
        return "subpixel"
    return choose_method((n, out_channels) + tuple(padded_hw), kernel, stride, (h, w), itemsize, xp=xp)
