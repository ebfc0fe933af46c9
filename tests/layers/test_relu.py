"""Tests for minifcn.layers.relu.ReLU."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_layer
from minifcn.layers import ReLU


def test_forward_and_backward(xp):
    """y = max(x, 0); dx = dy where x > 0 and 0 elsewhere (0 at exactly 0); no parameters."""
    x = np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]], np.float32)
    dy = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]], np.float32)
    layer = ReLU()
    assert list(layer.parameters()) == []
    y = layer.forward(xp.asarray(x))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(y), [[0, 0, 0, 0.5, 3.0]])
    np.testing.assert_array_equal(to_numpy(layer.backward(xp.asarray(dy))), [[0, 0, 0, 4.0, 5.0]])


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (2, 5, 13, 11)])
def test_gradients_numerically(xp, shape):
    """check_layer in float64 agrees to 1e-6 on inputs kept away from the kink."""
    host = np.random.default_rng(0).standard_normal(shape)
    host += np.sign(host) * 1e-3
    assert check_layer(ReLU(), xp.asarray(host))["input"] <= 1e-6


def test_integer_input_is_rejected(xp):
    """An integer array is a ValueError naming the dtype."""
    with pytest.raises(ValueError, match="floating-point.*int64"):
        ReLU().forward(xp.ones((2, 2), np.int64))
