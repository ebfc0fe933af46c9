"""Tests for minifcn.ops.fast.stacked beyond its equality with the reference (test_equal_to_reference.py):
a batch cut into blocks of images computes what it computes whole."""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv import conv2d, conv2d_backward
from minifcn.ops.fast import stacked


def test_image_blocks_cut_the_batch_by_bytes(monkeypatch):
    """Blocks of as many images as BLOCK_BYTES of columns hold, the last one shorter, never fewer
    than one image; the cell slices follow the image slices."""
    # One image's columns: 2 channels * 9 taps * 10 cells * 4 bytes = 720 bytes.
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 1500)
    assert stacked.image_blocks(5, 2, (3, 3), 10, 4) == [
        (slice(0, 2), slice(0, 20)), (slice(2, 4), slice(20, 40)), (slice(4, 5), slice(40, 50))]
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 1)
    assert stacked.image_blocks(2, 2, (3, 3), 10, 4) == [(slice(0, 1), slice(0, 10)), (slice(1, 2), slice(10, 20))]
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 10**9)
    assert stacked.image_blocks(3, 2, (3, 3), 10, 4) == [(slice(0, 3), slice(0, 30))]


@pytest.mark.parametrize("images_per_block", [1, 2])
def test_blocks_of_images_equal_the_reference(xp, monkeypatch, images_per_block):
    """Output, dx and dweight of a batch of 5 in blocks of 1 or of 2 (the last block shorter) equal
    the reference method's."""
    rng = np.random.default_rng(21)
    n, c, o, h, w = 5, 3, 4, 7, 9
    x, weight = xp.asarray(rng.standard_normal((n, c, h, w))), xp.asarray(rng.standard_normal((o, c, 3, 3)))
    dy = xp.asarray(rng.standard_normal((n, o, h, w)))
    one_image = c * 9 * h * (w + 2) * 8  # the columns of one image: OH * Wp cells of float64
    monkeypatch.setattr(stacked, "BLOCK_BYTES", images_per_block * one_image)
    assert len(stacked.image_blocks(n, c, (3, 3), h * (w + 2), 8)) == -(-n // images_per_block)
    results = {}
    for method in ("stacked", "reference"):
        y, cache = conv2d(x, weight, None, 1, 1, method)
        results[method] = (y,) + conv2d_backward(dy, cache)[:2]
    for got, want in zip(results["stacked"], results["reference"]):
        assert relative_error(got, want) <= 1e-12


# (N, C, O, H, W, kernel, padding), O <= C: the geometries ``gradients`` computes itself.
SHARED_BACKWARD_SHAPES = {
    "k3p1-same-channels": (3, 4, 4, 7, 9, (3, 3), (1, 1)),
    "k3p1-fewer-outputs": (2, 6, 3, 8, 5, (3, 3), (1, 1)),
    "k3p0": (2, 4, 4, 7, 9, (3, 3), (0, 0)),
    "k5p2": (2, 3, 2, 9, 8, (5, 5), (2, 2)),
    "k2x3p1x0": (2, 3, 3, 8, 10, (2, 3), (1, 0)),
    "k3p0x2-wider-padding-across": (2, 3, 3, 6, 5, (3, 3), (0, 2)),
    "k7p3-fc6-like-on-3x3": (3, 6, 4, 3, 3, (7, 7), (3, 3)),
}


@pytest.mark.parametrize("images_per_block", [1, 2, None])
@pytest.mark.parametrize("name", sorted(SHARED_BACKWARD_SHAPES))
def test_gradients_from_dy_columns_equal_the_reference(xp, monkeypatch, name, images_per_block):
    """dx and dweight from dy's column matrix (both gradients wanted, no more outputs than inputs)
    equal the reference method's, the batch whole or in blocks; the separate input gradient, which
    ``gradients`` leaves to the cases it does not take, is never called."""
    n, c, o, h, w, kernel, padding = SHARED_BACKWARD_SHAPES[name]
    rng = np.random.default_rng(5)
    x, weight = xp.asarray(rng.standard_normal((n, c, h, w))), xp.asarray(rng.standard_normal((o, c) + kernel))
    bias = xp.asarray(rng.standard_normal(o))
    if images_per_block is not None:
        one_image = o * kernel[0] * kernel[1] * h * (w + 2 * padding[1]) * 8  # dy's columns of one image
        monkeypatch.setattr(stacked, "BLOCK_BYTES", images_per_block * one_image)
    results = {}
    for method in ("reference", "stacked"):
        y, cache = conv2d(x, weight, bias, 1, padding, method)
        dy = xp.asarray(np.random.default_rng(6).standard_normal(y.shape))
        if method == "stacked":
            monkeypatch.setattr(stacked, "input_grad", None)  # a call would raise
        results[method] = (y,) + conv2d_backward(dy, cache)
    for got, want in zip(results["stacked"], results["reference"]):
        assert got.shape == want.shape
        assert relative_error(got, want) <= 1e-12


@pytest.mark.parametrize("o, padding", [(5, 1), (3, 4)])
def test_gradients_leave_growing_layers_and_deep_padding_to_the_separate_passes(xp, monkeypatch, o, padding):
    """More outputs than inputs, or a padding deeper than the kernel: the separate weight and input
    gradients compute them (and the result is still the reference's)."""
    rng = np.random.default_rng(8)
    x, weight = xp.asarray(rng.standard_normal((2, 3, 6, 7))), xp.asarray(rng.standard_normal((o, 3, 3, 3)))
    calls = []
    separate = stacked.input_grad
    monkeypatch.setattr(stacked, "input_grad", lambda *args: calls.append(1) or separate(*args))
    results = {}
    for method in ("reference", "stacked"):
        y, cache = conv2d(x, weight, None, 1, padding, method)
        dy = xp.asarray(np.random.default_rng(9).standard_normal(y.shape))
        results[method] = conv2d_backward(dy, cache)[:2]
    assert calls == [1]
    for got, want in zip(results["stacked"], results["reference"]):
        assert relative_error(got, want) <= 1e-12
