"""Tests for minifcn.ops.crop: cutting a window out of a map, and putting its gradient back."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_gradients
from minifcn.ops.crop import crop, crop_backward

# (input H, W, offset, output OH, OW): FCN's offsets 5, 9, 31 at small scale, (top, left) pairs,
# a zero offset, and a crop that reaches the bottom-right corner exactly.
CASES = [
    ((13, 11), 5, (4, 3)),
    ((20, 19), 9, (7, 9)),
    ((40, 38), 31, (9, 7)),
    ((7, 9), (2, 3), (5, 6)),
    ((7, 9), 0, (7, 9)),
    ((7, 9), (0, 4), (3, 5)),
]


def as_pair(offset):
    return offset if isinstance(offset, tuple) else (offset, offset)


@pytest.mark.parametrize("hw, offset, out_hw", CASES)
def test_forward_is_the_window_at_offset(xp, hw, offset, out_hw):
    """crop returns x[:, :, top:top+OH, left:left+OW] as a contiguous array of the same dtype."""
    x = np.random.default_rng(0).standard_normal((2, 3) + hw).astype(np.float32)
    top, left = as_pair(offset)
    y = crop(xp.asarray(x), offset, out_hw)
    assert y.flags.c_contiguous and y.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(y), x[:, :, top : top + out_hw[0], left : left + out_hw[1]])


@pytest.mark.parametrize("hw, offset, out_hw", CASES)
def test_backward_pads_with_zeros_and_is_the_adjoint(xp, hw, offset, out_hw):
    """crop_backward puts dy back at the offset with zeros around it: <crop(x), c> == <x, crop_backward(c)>."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3) + hw)
    c = rng.standard_normal((2, 3) + out_hw)
    top, left = as_pair(offset)
    dx = to_numpy(crop_backward(xp.asarray(c), x.shape, offset))
    expected = np.zeros_like(x)
    expected[:, :, top : top + out_hw[0], left : left + out_hw[1]] = c
    np.testing.assert_array_equal(dx, expected)
    y = to_numpy(crop(xp.asarray(x), offset, out_hw))
    assert float((y * c).sum()) == pytest.approx(float((x * dx).sum()), rel=1e-12)


@pytest.mark.parametrize("hw, offset, out_hw", CASES[:4])
def test_gradients_numerically(xp, hw, offset, out_hw):
    """Central differences in float64 agree with crop_backward to 1e-6."""
    x = xp.asarray(np.random.default_rng(2).standard_normal((2, 3) + hw))

    def backward(dy):
        return {"x": crop_backward(dy, x.shape, offset)}

    errors = check_gradients(lambda: crop(x, offset, out_hw), backward, {"x": x})
    assert errors["x"] <= 1e-6


@pytest.mark.parametrize("offset, out_hw", [(5, (4, 3)), ((0, 9), (7, 1)), ((3, 0), (5, 9)), (-1, (2, 2))])
def test_out_of_bounds_crop_is_rejected(xp, offset, out_hw):
    """A window that does not fit inside the map is a ValueError naming sizes and offset."""
    x = xp.ones((2, 3, 7, 9), np.float32)
    with pytest.raises(ValueError, match="offset"):
        crop(x, offset, out_hw)


def test_out_of_bounds_message_names_the_shapes(xp):
    """The message names the requested size, the offset and the input's shape."""
    with pytest.raises(ValueError, match=r"\(4, 3\) at offset \(5, 5\).*\(7, 9\).*\(2, 3, 7, 9\)"):
        crop(xp.ones((2, 3, 7, 9), np.float32), 5, (4, 3))
