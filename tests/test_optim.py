"""SGD against hand-computed updates and against torch.optim.SGD; the schedules against their formulas."""

import numpy as np
import pytest

from minifcn.layers import Parameter
from minifcn.optim import SGD, constant_lr, poly_lr, step_lr, warmup


def test_one_step_by_hand():
    """v = 0.9 * 0 - 0.1 * (g + 0.01 * w); w += v, with the bias at 2x the rate and no decay."""
    weight = Parameter(np.array([1.0, -2.0], np.float32))
    bias = Parameter(np.array([0.5], np.float32), lr_mult=2.0, decay_mult=0.0)
    weight.grad[...] = [0.5, 0.25]
    bias.grad[...] = [1.0]
    SGD([("w", weight), ("b", bias)], lr=0.1, momentum=0.9, weight_decay=0.01).step()
    # w: 1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (0.25 - 0.02); b: 0.5 - 0.2 * 1
    np.testing.assert_allclose(weight.data, [1 - 0.051, -2 - 0.023], rtol=1e-6)
    np.testing.assert_allclose(bias.data, [0.3], rtol=1e-6)


def test_momentum_accumulates_like_torch(torch):
    """Ten steps on a quadratic agree with torch.optim.SGD (same update at a constant rate)."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal(5).astype(np.float32)
    target = rng.standard_normal(5).astype(np.float32)
    parameter = Parameter(start.copy())
    optimizer = SGD([("p", parameter)], lr=0.05, momentum=0.9, weight_decay=1e-3)
    tensor = torch.tensor(start.copy(), requires_grad=True)
    torch_optimizer = torch.optim.SGD([tensor], lr=0.05, momentum=0.9, weight_decay=1e-3)
    for _ in range(10):
        parameter.zero_grad()
        parameter.grad[...] = 2 * (parameter.data - target)
        optimizer.step()
        torch_optimizer.zero_grad()
        ((tensor - torch.tensor(target)) ** 2).sum().backward()
        torch_optimizer.step()
    np.testing.assert_allclose(parameter.data, tensor.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_frozen_parameters_do_not_move():
    parameter = Parameter(np.ones(3, np.float32), requires_grad=False)
    parameter.grad[...] = 1
    SGD([("p", parameter)], lr=1.0).step()
    assert np.array_equal(parameter.data, np.ones(3, np.float32))


def test_state_round_trip_continues_identically():
    """Saving and restoring the velocities continues exactly as an uninterrupted optimizer."""
    def run(steps, restore_after=None):
        parameter = Parameter(np.arange(4, dtype=np.float32))
        optimizer = SGD([("p", parameter)], lr=0.1, momentum=0.9)
        for step in range(steps):
            parameter.grad[...] = np.sin(parameter.data + step)
            optimizer.step()
            if step == restore_after:
                state = optimizer.state_dict()
                optimizer = SGD([("p", parameter)], lr=0.1, momentum=0.9)
                optimizer.load_state_dict(state)
        return parameter.data

    assert np.array_equal(run(6), run(6, restore_after=2))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="momentum"):
        SGD([], lr=0.1, momentum=1.5)


def test_schedules():
    assert poly_lr(0.1, 0, 100) == 0.1
    assert poly_lr(0.1, 100, 100) == 0.0
    assert poly_lr(0.1, 50, 100, power=1.0) == pytest.approx(0.05)
    assert poly_lr(0.1, 50, 100) == pytest.approx(0.1 * 0.5**0.9)
    assert step_lr(0.1, 25, 10, gamma=0.5) == pytest.approx(0.025)
    assert constant_lr(0.1, 999) == 0.1
    assert warmup(0.1, 0, 10) == pytest.approx(0.01)
    assert warmup(0.1, 9, 10) == pytest.approx(0.1)
    assert warmup(0.1, 50, 10) == 0.1
