"""Tests for minifcn.ops.relu: y = max(x, 0) and its gradient, with the subgradient 0 at exactly 0."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_gradients, relative_error
from minifcn.ops.relu import relu, relu_backward


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (2, 5, 13, 11), (4, 6), (2, 1, 3, 4, 5)])
def test_forward_and_backward_by_hand(xp, shape):
    """Forward keeps positive entries and zeroes the rest; backward passes dy where x > 0, else 0."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    x.reshape(-1)[::7] = 0.0  # exact zeros: the gradient there is 0, as in PyTorch
    dy = rng.standard_normal(shape)
    y, cache = relu(xp.asarray(x))
    dx = relu_backward(xp.asarray(dy), cache)
    np.testing.assert_array_equal(to_numpy(y), np.where(x > 0, x, 0.0))
    np.testing.assert_array_equal(to_numpy(dx), np.where(x > 0, dy, 0.0))


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (2, 5, 13, 11)])
def test_gradients_numerically(xp, shape):
    """Central differences in float64 agree to 1e-6 (inputs kept away from the kink at 0)."""
    rng = np.random.default_rng(1)
    host = rng.standard_normal(shape)
    host += np.sign(host) * 1e-3
    x = xp.asarray(host)
    state = {}

    def forward():
        y, state["cache"] = relu(x)
        return y

    errors = check_gradients(forward, lambda dy: {"x": relu_backward(dy, state["cache"])}, {"x": x})
    assert errors["x"] <= 1e-6


def test_float32_stays_float32_and_input_is_untouched(xp):
    """float32 in, float32 out and gradient; neither pass writes into x or dy."""
    rng = np.random.default_rng(2)
    x_host = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    dy_host = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    x, dy = xp.asarray(x_host), xp.asarray(dy_host)
    y, cache = relu(x)
    dx = relu_backward(dy, cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(x), x_host)
    np.testing.assert_array_equal(to_numpy(dy), dy_host)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_non_floating_input_is_rejected(xp, dtype):
    """Integer input is a ValueError naming the dtype."""
    with pytest.raises(ValueError, match=rf"floating-point.*{np.dtype(dtype).name}"):
        relu(xp.ones((2, 3), dtype))


@pytest.mark.torch
def test_matches_torch(xp, torch):
    """Forward and gradient equal torch.relu on a conv-sized float32 map with exact zeros in it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 64, 64), dtype=np.float32)
    x[:, :, ::5] = 0
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    y, cache = relu(xp.asarray(x))
    dx = relu_backward(xp.asarray(dy), cache)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(dy))
    assert relative_error(y, ty.detach().numpy()) <= 1e-5
    assert relative_error(dx, tx.grad.numpy()) <= 1e-5


def test_nan_reaches_the_output_on_every_device(xp):
    """A NaN input stays NaN (as np.maximum does), so a broken step shows in the loss and the NaN
    guard stops training; the GPU's one-kernel version must not drop it as CUDA's max would."""
    x = xp.asarray(np.array([np.nan, -1.0, 0.0, 2.0], np.float32))
    y, positive = relu(x)
    y = to_numpy(y)
    assert np.isnan(y[0]) and (y[1:] == [0.0, 0.0, 2.0]).all()
    assert to_numpy(positive).tolist() == [False, False, False, True]
