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
