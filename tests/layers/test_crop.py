"""Tests for minifcn.layers.crop.Crop: forward(x, like) takes like's size at a fixed offset."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_layer
from minifcn.layers import Crop


@pytest.mark.parametrize("like_as", ["array", "pair"])
@pytest.mark.parametrize("offset", [5, (2, 4), 0])
def test_forward_and_backward(xp, offset, like_as):
    """Output is x[:, :, top:top+H, left:left+W] for like's (H, W); the gradient is dy put back there."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 13, 11)).astype(np.float32)
    like = xp.zeros((2, 7, 6, 5), np.float32) if like_as == "array" else (6, 5)
    top, left = offset if isinstance(offset, tuple) else (offset, offset)
    layer = Crop(offset)
    y = to_numpy(layer.forward(xp.asarray(x), like))
    np.testing.assert_array_equal(y, x[:, :, top : top + 6, left : left + 5])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    expected = np.zeros_like(x)
    expected[:, :, top : top + 6, left : left + 5] = dy
    np.testing.assert_array_equal(dx, expected)


def test_gradients_numerically(xp):
    """check_layer in float64 agrees to 1e-6."""
    x = xp.asarray(np.random.default_rng(1).standard_normal((2, 3, 9, 8)))
    assert check_layer(Crop((2, 1)), x, (5, 6))["input"] <= 1e-6


def test_crop_too_large_is_rejected(xp):
    """Asking for more than the map holds at the offset is a ValueError naming the sizes."""
    with pytest.raises(ValueError, match=r"\(6, 5\) at offset \(9, 9\).*\(13, 11\)"):
        Crop(9).forward(xp.ones((2, 3, 13, 11), np.float32), (6, 5))
    assert repr(Crop(31)) == "Crop(offset=31)"
