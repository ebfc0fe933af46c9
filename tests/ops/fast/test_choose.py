"""Tests for minifcn.ops.fast.choose: the rule behind method="auto", on named shapes.

Each case is (x shape (N, C, H, W), kernel, stride, (OH, OW), O) and the method the rule in the
module docstring gives for it, float32 throughout.
"""

import math

import numpy as np
import pytest

from threadpoolctl import ThreadpoolController

from minifcn.ops.fast import choose
from minifcn.ops.fast.choose import (
    IM2COL_MAX_BYTES,
    STACKED_MAX_WASTE,
    WINOGRAD_MAX_BLAS_THREADS,
    WINOGRAD_MIN_CHANNELS,
    WINOGRAD_MIN_PIXELS,
    WINOGRAD_SPLIT_MIN_CHANNELS,
    WINOGRAD_SPLIT_MIN_PIXELS,
    blas_threads,
    choose_method,
)


@pytest.fixture(autouse=True)
def one_blas_thread(monkeypatch):
    """The named shapes as data_parallel's threads see them: one BLAS thread per call, whatever this
    machine's cores (the tests below that need more threads say so)."""
    monkeypatch.setattr(choose, "blas_threads", lambda: 1)

NAMED_SHAPES = {
    # 1x1 kernels, whatever else: a matrix product.
    "score_fr-1x1": ((1, 512, 22, 22), (1, 1), (1, 1), (22, 22), None, "pointwise"),
    "strided-1x1": ((2, 64, 22, 22), (1, 1), (2, 2), (11, 11), 21, "pointwise"),
    # Strides: only im2col has strided windows.
    "stride-2": ((1, 3, 500, 500), (3, 3), (2, 2), (250, 250), None, "im2col"),
    # 32 -> 32 channels (below winograd's) on a 500x500 image's map: 32 * 9 * 698 * 698 floats,
    # 561 MB of columns.
    "32-channels-500x500": ((1, 32, 700, 700), (3, 3), (1, 1), (698, 698), None, "shift"),
    # fc6's 7x7 on the default model's 3x3 pool5 padded by 3 (6 of every 9 columns wasted by stacked),
    # and on the reference's 16x16 pool5 of a 500x500 input (6 of 16).
    "fc6-default-model": ((8, 128, 9, 9), (7, 7), (1, 1), (3, 3), 256, "im2col"),
    "fc6-reference-500x500": ((1, 512, 16, 16), (7, 7), (1, 1), (10, 10), 4096, "im2col"),
    # The image layer of one image: im2col, whose product is already the output; on a batch, stacked.
    "conv1_1-one-image-360x480": ((1, 3, 362, 482), (3, 3), (1, 1), (360, 480), 64, "im2col"),
    "conv1_1-default-model": ((8, 3, 98, 98), (3, 3), (1, 1), (96, 96), 16, "stacked"),
    # The default model's trunk, a part's 4 images of 96x96: stacked below 64 channels (conv1_2's 5.4
    # MB of columns an image in bands of rows), winograd from 64 channels on both sides (conv3_2 to
    # conv4_3), stacked on the 6x6 maps of conv5.
    "conv1_2-default-model": ((4, 16, 98, 98), (3, 3), (1, 1), (96, 96), 16, "stacked"),
    "conv2_1-default-model": ((4, 16, 50, 50), (3, 3), (1, 1), (48, 48), 32, "stacked"),
    "conv2_2-default-model": ((4, 32, 50, 50), (3, 3), (1, 1), (48, 48), 32, "stacked"),
    "conv3_1-default-model": ((4, 32, 26, 26), (3, 3), (1, 1), (24, 24), 64, "stacked"),
    "conv3_2-default-model": ((4, 64, 26, 26), (3, 3), (1, 1), (24, 24), 64, "winograd"),
    "conv4_1-default-model": ((4, 64, 14, 14), (3, 3), (1, 1), (12, 12), 128, "winograd"),
    "conv4_2-default-model": ((4, 128, 14, 14), (3, 3), (1, 1), (12, 12), 128, "winograd"),
    "conv5_1-default-model": ((4, 128, 8, 8), (3, 3), (1, 1), (6, 6), 128, "stacked"),
    # One image of 32 channels at 48x48 (2.7 MB of columns) and at 96x96 (10.6 MB): stacked, below
    # IM2COL_MAX_BYTES.
    "32-channels-48x48-one-image": ((1, 32, 50, 50), (3, 3), (1, 1), (48, 48), 32, "stacked"),
    "32-channels-96x96-one-image": ((1, 32, 98, 98), (3, 3), (1, 1), (96, 96), 32, "stacked"),
    # From 64 channels, a 3x3 kernel: winograd, also where the column matrix would send it to shift
    # (CamVid's conv3_2: 256 * 9 * 90 * 120 floats = 100 MB; a 500x500 image's conv1_2: 1.1 GB).
    "conv1_2-500x500": ((1, 64, 700, 700), (3, 3), (1, 1), (698, 698), None, "winograd"),
    "conv5_3-reference-one-image": ((1, 512, 46, 46), (3, 3), (1, 1), (44, 44), 512, "winograd"),
    "512to512-22x22": ((1, 512, 22, 22), (3, 3), (1, 1), (22, 22), None, "winograd"),
    "conv3_1-camvid": ((1, 128, 92, 122), (3, 3), (1, 1), (90, 120), 256, "winograd"),
    "conv3_2-camvid": ((1, 256, 92, 122), (3, 3), (1, 1), (90, 120), 256, "winograd"),
    "conv4_1-camvid": ((1, 256, 47, 62), (3, 3), (1, 1), (45, 60), 512, "winograd"),
    "conv5_2-camvid": ((1, 512, 25, 32), (3, 3), (1, 1), (23, 30), 512, "winograd"),
    # Too few pixels in the batch (512 channels on two 6x6 maps), or a kernel other than 3x3.
    "512-channels-two-6x6": ((2, 512, 8, 8), (3, 3), (1, 1), (6, 6), 512, "stacked"),
    "5x5-512-channels": ((1, 512, 26, 26), (5, 5), (1, 1), (22, 22), 512, "stacked"),
    "3x3-stride-2-512-channels": ((1, 512, 46, 46), (3, 3), (2, 2), (22, 22), 512, "im2col"),
    # A transposed convolution's input gradient (no output channel count): upscore2 is strided.
    "upscore2-transposed": ((8, 6, 8, 8), (4, 4), (2, 2), (3, 3), None, "im2col"),
}


@pytest.mark.parametrize("name", NAMED_SHAPES)
def test_named_shapes(name):
    x_shape, kernel, stride, out_hw, out_channels, expected = NAMED_SHAPES[name]
    assert choose_method(x_shape, kernel, stride, out_hw, 4, out_channels=out_channels) == expected


def test_column_bytes_threshold():
    """A 32-channel layer on a 500x500 image's map needs more column bytes than IM2COL_MAX_BYTES; at
    the limit stacked is kept (a 5x5 kernel, 128 -> 128 channels, so no other rule applies)."""
    assert 32 * 9 * 698 * 698 * 4 > IM2COL_MAX_BYTES
    pixels = IM2COL_MAX_BYTES // (128 * 25 * 4)  # column bytes exactly at the limit for (1, pixels)
    assert choose_method((1, 128, 5, pixels + 4), (5, 5), (1, 1), (1, pixels), 4, 128) == "stacked"
    assert choose_method((1, 128, 5, pixels + 5), (5, 5), (1, 1), (1, pixels + 1), 4, 128) == "shift"


def test_waste_threshold():
    """A 5x5 kernel wastes 4 columns of every row: stacked from a padded width of 4 / STACKED_MAX_WASTE."""
    width = math.ceil(4 / STACKED_MAX_WASTE)  # the narrowest padded width within the limit
    out = width - 4
    assert choose_method((2, 128, out + 4, width), (5, 5), (1, 1), (out, out), 4, 128) == "stacked"
    assert choose_method((2, 128, out + 3, width - 1), (5, 5), (1, 1), (out - 1, out - 1), 4, 128) == "im2col"


def test_few_channels_shift_only_above_the_column_bytes_threshold():
    """16 -> 16 channels, too few for winograd: stacked up to IM2COL_MAX_BYTES of columns for the
    batch, however large one image's share, shift above it."""
    pixels = IM2COL_MAX_BYTES // (16 * 9 * 4)  # the batch's column bytes exactly at the limit
    assert choose_method((1, 16, 3, pixels + 2), (3, 3), (1, 1), (1, pixels), 4, 16) == "stacked"
    assert choose_method((1, 16, 3, pixels + 3), (3, 3), (1, 1), (1, pixels + 1), 4, 16) == "shift"
    assert choose_method((2, 16, 3, pixels // 2 + 3), (3, 3), (1, 1), (1, pixels // 2 + 1), 4, 16) == "shift"


def test_winograd_channel_threshold():
    """winograd from WINOGRAD_MIN_CHANNELS channels on both sides of a 3x3 convolution; one channel fewer
    on either side keeps the rule's earlier answer (stacked on this map); no output count: the input's."""
    many = WINOGRAD_MIN_CHANNELS
    shape = (2, many, 24, 24)
    assert 2 * 22 * 22 >= WINOGRAD_MIN_PIXELS
    assert choose_method(shape, (3, 3), (1, 1), (22, 22), 4, many) == "winograd"
    assert choose_method(shape, (3, 3), (1, 1), (22, 22), 4, None) == "winograd"
    assert choose_method(shape, (3, 3), (1, 1), (22, 22), 4, many - 1) == "stacked"
    assert choose_method((2, many - 1, 24, 24), (3, 3), (1, 1), (22, 22), 4, many) == "stacked"


def test_winograd_pixel_threshold():
    """On one core, winograd from WINOGRAD_MIN_PIXELS output pixels in the batch, counted over its
    images; one pixel fewer keeps stacked, however many the channels."""
    at = ((1, 512, 3, WINOGRAD_MIN_PIXELS + 2), (3, 3), (1, 1), (1, WINOGRAD_MIN_PIXELS), 4, 512)
    below = ((1, 512, 3, WINOGRAD_MIN_PIXELS + 1), (3, 3), (1, 1), (1, WINOGRAD_MIN_PIXELS - 1), 4, 512)
    assert choose_method(*at) == "winograd"
    assert choose_method(*below) == "stacked"
    half = WINOGRAD_MIN_PIXELS // 2
    two_images = ((2, 512, 3, half + 2), (3, 3), (1, 1), (1, half), 4, 512)
    assert choose_method(*two_images) == "winograd"


def test_winograd_on_many_cores_only_split_and_where_blas_sleeps(monkeypatch):
    """With BLAS running more than WINOGRAD_MAX_BLAS_THREADS threads (one image on all the cores) a 3x3
    layer takes winograd, split over the cores, where BLAS's idle threads sleep, both channel counts
    are at least WINOGRAD_SPLIT_MIN_CHANNELS and the batch has WINOGRAD_SPLIT_MIN_PIXELS output
    pixels; otherwise the rule's earlier answer: stacked, or shift above IM2COL_MAX_BYTES of columns."""
    conv4_2 = ((1, 512, 47, 62), (3, 3), (1, 1), (45, 60), 4, 512)
    conv3_2 = ((1, 256, 92, 122), (3, 3), (1, 1), (90, 120), 4, 256)
    conv5_2 = ((1, 512, 25, 32), (3, 3), (1, 1), (23, 30), 4, 512)
    conv1_2 = ((1, 64, 362, 482), (3, 3), (1, 1), (360, 480), 4, 64)
    few = WINOGRAD_SPLIT_MIN_CHANNELS - 1
    few_channels = ((1, few, 362, 482), (3, 3), (1, 1), (360, 480), 4, few)
    few_on_one_core = ((1, 32, 362, 482), (3, 3), (1, 1), (360, 480), 4, 32)
    assert choose_method(*conv5_2) == "winograd"  # one BLAS thread: from 64 channels on both sides
    assert choose_method(*conv1_2) == "winograd"
    assert choose_method(*few_on_one_core) == "shift"
    monkeypatch.setattr(choose, "blas_threads", lambda: WINOGRAD_MAX_BLAS_THREADS + 1)
    monkeypatch.setattr(choose, "BLAS_SLEEPS_WHEN_IDLE", True)
    for layer in (conv4_2, conv3_2, conv1_2):
        assert choose_method(*layer) == "winograd"
    assert choose_method(*conv5_2) == "stacked"
    assert choose_method(*few_channels) == "shift"
    side = math.isqrt(WINOGRAD_SPLIT_MIN_PIXELS)
    at_threshold = ((1, 512, side + 2, side + 3), (3, 3), (1, 1), (side, side + 1), 4, 512)
    below = ((1, 512, side + 1, side + 2), (3, 3), (1, 1), (side - 1, side), 4, 512)
    assert side * (side + 1) >= WINOGRAD_SPLIT_MIN_PIXELS > (side - 1) * side
    assert choose_method(*at_threshold) == "winograd"
    assert choose_method(*below) == "stacked"
    four_images = ((4,) + conv5_2[0][1:],) + conv5_2[1:]  # pixels are counted over the batch
    assert choose_method(*four_images) == "winograd"
    monkeypatch.setattr(choose, "BLAS_SLEEPS_WHEN_IDLE", False)
    assert choose_method(*conv4_2) == "stacked"
    assert choose_method(*conv3_2) == "shift"
    assert choose_method(*conv1_2) == "shift"


def test_blas_threads_follows_the_library(monkeypatch):
    """``blas_threads`` reads BLAS's setting as it is now: 1 inside a limit like data_parallel's."""
    monkeypatch.undo()  # the real function, not the fixture's stand-in
    with ThreadpoolController().limit(limits=1, user_api="blas"):
        assert blas_threads() == 1
        assert choose_method((1, 512, 47, 62), (3, 3), (1, 1), (45, 60), 4, 512) == "winograd"


@pytest.mark.gpu
def test_on_a_gpu_the_rule_knows_the_device(cupy_backend):
    """Arrays of another module than NumPy take gathered (pointwise for 1x1) whatever the CPU's cache
    thresholds would say: a GPU step is bound by kernel launches, not by cache traffic."""
    big = (1, 32, 702, 702)  # 32 channels on a 500x500 image's map: shift on the CPU (IM2COL_MAX_BYTES)
    assert choose_method(big, (3, 3), (1, 1), (700, 700), 4, 32) == "shift"
    assert choose_method(big, (3, 3), (1, 1), (700, 700), 4, 32, xp=cupy_backend) == "gathered"
    assert choose_method((1, 512, 22, 22), (7, 7), (1, 1), (16, 16), 4, 4096, xp=cupy_backend) == "gathered"
    # winograd's CPU threshold does not apply either.
    assert choose_method((1, 512, 25, 32), (3, 3), (1, 1), (23, 30), 4, 512, xp=cupy_backend) == "gathered"
    assert choose_method((1, 21, 80, 80), (16, 16), (8, 8), (9, 9), 4, xp=cupy_backend) == "gathered"
    assert choose_method((1, 512, 16, 16), (1, 1), (1, 1), (16, 16), 4, 21, xp=cupy_backend) == "pointwise"


@pytest.mark.gpu
def test_a_convolution_on_the_device_picks_gathered(cupy_backend):
    from minifcn.backend import to_device
    from minifcn.ops.conv import conv2d
    from minifcn.ops.conv_transpose import conv_transpose2d

    x = to_device(np.ones((2, 3, 9, 9), np.float32), "gpu")
    _, cache = conv2d(x, to_device(np.ones((4, 3, 3, 3), np.float32), "gpu"), padding=1)
    assert cache.method == "gathered"
    _, cache = conv_transpose2d(x, to_device(np.ones((3, 3, 4, 4), np.float32), "gpu"), stride=2)
    assert cache.method == "gathered"
