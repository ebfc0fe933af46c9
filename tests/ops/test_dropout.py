"""Tests for minifcn.ops.dropout: host-drawn masks, y = x * mask, dx = dy * mask."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_gradients, relative_error
from minifcn.ops.dropout import dropout, dropout_backward, dropout_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_values_and_drop_fraction(p):
    """The mask holds 0 (dropped) or 1 / (1 - p) (kept), drops a fraction close to p of 10^6
    elements, and so has mean close to 1 (the expectation of x is preserved)."""
    mask = dropout_mask((1000, 1000), p, np.random.default_rng(0))
    assert mask.dtype == np.float32 and isinstance(mask, np.ndarray)
    kept_value = np.float32(1 / (1 - p))
    assert set(np.unique(mask).tolist()) == {0.0, float(kept_value)}
    # The dropped count is binomial: standard deviation sqrt(p (1 - p) / n) <= 5e-4 of the fraction.
    assert abs((mask == 0).mean() - p) < 3e-3
    assert abs(mask.mean() - 1.0) < 3e-3 / (1 - p)


def test_mask_with_p_zero_keeps_everything():
    """p = 0 keeps every element with scale exactly 1."""
    np.testing.assert_array_equal(dropout_mask((3, 4), 0.0, np.random.default_rng(0)), np.ones((3, 4)))


def test_same_seed_same_mask_other_seed_other_mask():
    """A seed fixes the mask; another seed gives another one."""
    first = dropout_mask((64, 64), 0.5, np.random.default_rng(7))
    again = dropout_mask((64, 64), 0.5, np.random.default_rng(7))
    other = dropout_mask((64, 64), 0.5, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


def test_mask_dtype_follows_request():
    """The mask can be made in float64 for gradient checks."""
    assert dropout_mask((2, 2), 0.5, np.random.default_rng(0), np.float64).dtype == np.float64


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_bad_probability_is_rejected(p):
    """p must lie in [0, 1): the message repeats the bad value."""
    with pytest.raises(ValueError, match=rf"\[0, 1\).*{p}"):
        dropout_mask((2, 2), p, np.random.default_rng(0))


def test_forward_and_backward_apply_the_mask(xp):
    """y = x * mask and dx = dy * mask on the data's device, whatever device the mask was drawn on."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 13, 11)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    mask = dropout_mask(x.shape, 0.5, np.random.default_rng(2))
    y, cache = dropout(xp.asarray(x), mask)
    dx = dropout_backward(xp.asarray(dy), cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(y), x * mask)
    np.testing.assert_array_equal(to_numpy(dx), dy * mask)


def test_same_seed_same_result_on_every_backend(xp):
    """The mask comes from the host generator, so a seed drops the same elements on CPU and GPU."""
    x = np.random.default_rng(3).standard_normal((4, 6, 5)).astype(np.float32)
    host, _ = dropout(x, dropout_mask(x.shape, 0.5, np.random.default_rng(9)))
    device, _ = dropout(xp.asarray(x), dropout_mask(x.shape, 0.5, np.random.default_rng(9)))
    np.testing.assert_array_equal(to_numpy(device), host)


def test_gradients_numerically(xp):
    """Central differences in float64 agree with dropout_backward to 1e-6."""
    x = xp.asarray(np.random.default_rng(4).standard_normal((2, 3, 7, 9)))
    mask = dropout_mask(x.shape, 0.3, np.random.default_rng(5), np.float64)
    state = {}

    def forward():
        y, state["mask"] = dropout(x, mask)
        return y

    errors = check_gradients(forward, lambda dy: {"x": dropout_backward(dy, state["mask"])}, {"x": x})
    assert errors["x"] <= 1e-6


def test_bad_inputs_are_rejected(xp):
    """A mask of another shape names both shapes; integer input names its dtype."""
    with pytest.raises(ValueError, match=r"\(2, 3\).*expected \(3, 2\)"):
        dropout(xp.ones((3, 2), np.float32), np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="floating-point.*int64"):
        dropout(xp.ones((3, 2), np.int64), np.ones((3, 2), np.float32))


@pytest.mark.torch
def test_matches_torch_with_the_same_mask(xp, torch):
    """With the same mask, forward and gradient equal torch's x * mask on an fc7-sized map."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4096, 7, 7), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    mask = dropout_mask(x.shape, 0.5, np.random.default_rng(7))
    y, cache = dropout(xp.asarray(x), mask)
    dx = dropout_backward(xp.asarray(dy), cache)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tx * torch.from_numpy(mask)
    ty.backward(torch.from_numpy(dy))
    assert relative_error(y, ty.detach().numpy()) <= 1e-5
    assert relative_error(dx, tx.grad.numpy()) <= 1e-5
