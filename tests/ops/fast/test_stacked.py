"""Tests for minifcn.ops.fast.stacked beyond its equality with the reference (test_equal_to_reference.py):
a batch cut into blocks of images, or of an image's rows, computes what it computes whole."""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv import conv2d, conv2d_backward
from minifcn.ops.fast import stacked


def test_blocks_cut_the_batch_by_bytes(monkeypatch):
    """Blocks of as many whole images as BLOCK_BYTES of columns hold, the last one shorter; where one
    image's columns do not fit, bands of one image's rows, as equal as can be, never under one row.
    The cell slices follow the images and rows in a (., N * OH * Wp) matrix."""
    # One row's columns: 2 channels * 9 taps * 5 cells * 4 bytes = 360 bytes; an image of 2 rows 720.
    Block = stacked.Block
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 1500)
    assert stacked.blocks(5, 2, (3, 3), 2, 5, 4) == [
        Block(slice(0, 2), 0, 2, slice(0, 20)), Block(slice(2, 4), 0, 2, slice(20, 40)),
        Block(slice(4, 5), 0, 2, slice(40, 50))]
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 10**9)
    assert stacked.blocks(3, 2, (3, 3), 2, 5, 4) == [Block(slice(0, 3), 0, 2, slice(0, 30))]
    # 7 rows of 360 bytes, 1000 bytes a block: 2 rows fit, so 4 bands an image, of 1, 2, 2 and 2 rows.
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 1000)
    bands = stacked.blocks(2, 2, (3, 3), 7, 5, 4)
    assert [(b.images, b.first_row, b.rows) for b in bands[:4]] == [
        (slice(0, 1), 0, 1), (slice(0, 1), 1, 2), (slice(0, 1), 3, 2), (slice(0, 1), 5, 2)]
    assert [b.cells for b in bands[4:6]] == [slice(35, 40), slice(40, 50)]
    assert len(bands) == 8
    monkeypatch.setattr(stacked, "BLOCK_BYTES", 1)
    assert [(b.images, b.first_row, b.rows) for b in stacked.blocks(1, 2, (3, 3), 3, 5, 4)] == [
        (slice(0, 1), 0, 1), (slice(0, 1), 1, 1), (slice(0, 1), 2, 1)]


@pytest.mark.parametrize("block", ["1 image", "2 images", "3 rows", "1 row"])
def test_blocks_equal_the_reference(xp, monkeypatch, block):
    """Output, dx and dweight of a batch of 5 in blocks of 1 or of 2 images (the last block shorter),
    or in bands of 3 rows or of 1 row of an image, equal the reference method's."""
    rng = np.random.default_rng(21)
    n, c, o, h, w = 5, 3, 4, 7, 9
    x, weight = xp.asarray(rng.standard_normal((n, c, h, w))), xp.asarray(rng.standard_normal((o, c, 3, 3)))
    dy = xp.asarray(rng.standard_normal((n, o, h, w)))
    count, unit = block.split(" ", 1)
    one_row = c * 9 * (w + 2) * 8  # the columns of one output row: Wp cells of float64
    monkeypatch.setattr(stacked, "BLOCK_BYTES", int(count) * one_row * (h if unit.startswith("image") else 1))
    expected = -(-n // int(count)) if unit.startswith("image") else n * -(-h // int(count))
    assert len(stacked.blocks(n, c, (3, 3), h, w + 2, 8)) == expected
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


@pytest.mark.parametrize("block", ["1 image", "2 images", None, "2 rows"])
@pytest.mark.parametrize("name", sorted(SHARED_BACKWARD_SHAPES))
def test_gradients_from_dy_columns_equal_the_reference(xp, monkeypatch, name, block):
    """dx and dweight from dy's column matrix (both gradients wanted, no more outputs than inputs)
    equal the reference method's, the batch whole, in blocks of images or in bands of 2 rows of an
    image; the separate input gradient, which ``gradients`` leaves to the cases it does not take, is
    never called."""
    n, c, o, h, w, kernel, padding = SHARED_BACKWARD_SHAPES[name]
    rng = np.random.default_rng(5)
    x, weight = xp.asarray(rng.standard_normal((n, c, h, w))), xp.asarray(rng.standard_normal((o, c) + kernel))
    bias = xp.asarray(rng.standard_normal(o))
    if block is not None:
        count, unit = block.split(" ")
        one_row = o * kernel[0] * kernel[1] * (w + 2 * padding[1]) * 8  # dy's columns of one input row
        monkeypatch.setattr(stacked, "BLOCK_BYTES", int(count) * one_row * (h if unit.startswith("image") else 1))
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
