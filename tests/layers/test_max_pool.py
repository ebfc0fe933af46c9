"""Tests for minifcn.layers.max_pool.MaxPool2d: defaults, ceil mode, ties, gradients."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_layer
from minifcn.layers import MaxPool2d


def test_defaults_are_fcns_pool():
    """MaxPool2d() is 2x2, stride 2, ceil mode, with no parameters."""
    layer = MaxPool2d()
    assert (layer.kernel_size, layer.stride, layer.ceil_mode) == (2, 2, True)
    assert list(layer.parameters()) == []
    assert repr(layer) == "MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)"


def test_ceil_mode_output_shape(xp):
    """A 7x9 map gives 4x5 in ceil mode (the last windows hang over the edge) and 3x4 in floor mode."""
    x = xp.ones((2, 3, 7, 9), np.float32)
    assert MaxPool2d().forward(x).shape == (2, 3, 4, 5)
    assert MaxPool2d(ceil_mode=False).forward(x).shape == (2, 3, 3, 4)


def test_all_zero_map_by_hand(xp):
    """A 3x3 map of zeros (as after a ReLU) pooled 2x2 stride 2 in ceil mode: each of the four windows
    sends its gradient to its top-left cell, (0, 0), (0, 2), (2, 0), (2, 2), and nowhere else."""
    layer = MaxPool2d()
    y = layer.forward(xp.zeros((1, 1, 3, 3), np.float32))
    np.testing.assert_array_equal(to_numpy(y), np.zeros((1, 1, 2, 2)))
    dx = to_numpy(layer.backward(xp.asarray(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32))))
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 2], [0, 0, 0], [3, 0, 4]])


def test_overlapping_tied_windows_by_hand(xp):
    """3x3 windows, stride 2, on a 3x5 map whose maxima tie: [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]].
    Window 1 (columns 0-2) first meets a 1 at (0, 1); window 2 (columns 2-4) at (0, 2)."""
    x = np.array([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], np.float32)[None, None]
    layer = MaxPool2d(3, 2)
    np.testing.assert_array_equal(to_numpy(layer.forward(xp.asarray(x))), [[[[1, 1]]]])
    dx = to_numpy(layer.backward(xp.asarray(np.array([[[[5.0, 7.0]]]], np.float32))))
    expected = np.zeros((3, 5))
    expected[0, 1], expected[0, 2] = 5, 7
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("kernel, stride, hw", [(2, 2, (7, 9)), (2, 2, (13, 11)), (3, 2, (13, 11)), (3, 1, (6, 7))])
def test_gradients_numerically(xp, kernel, stride, hw):
    """check_layer in float64 on untied random maps agrees to 1e-6, ceil-mode overhang included."""
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 3) + hw))
    assert check_layer(MaxPool2d(kernel, stride), x)["input"] <= 1e-6


def test_integer_input_is_rejected(xp):
    """Pooling an integer array is a ValueError naming the dtype."""
    with pytest.raises(ValueError, match="floating-point.*int32"):
        MaxPool2d().forward(xp.ones((1, 1, 4, 4), np.int32))
