"""SGD and Adam against hand-computed updates and against torch.optim; the schedules against their formulas."""

import numpy as np
import pytest

import minifcn.ops.fast.cores
from minifcn.layers import Parameter
from minifcn.optim import SGD, Adam, constant_lr, poly_lr, step_lr, warmup


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


def test_adam_matches_torch_with_multipliers_and_decay(torch):
    """Twenty Adam steps on a quadratic agree with torch.optim.Adam, the bias in a group at twice the
    rate and without decay (as Parameter's lr_mult/decay_mult ask), the rate changing every step."""
    rng = np.random.default_rng(1)
    start_w, start_b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    target_w, target_b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    weight = Parameter(start_w.copy())
    bias = Parameter(start_b.copy(), lr_mult=2.0, decay_mult=0.0)
    optimizer = Adam([("w", weight), ("b", bias)], lr=0.01, weight_decay=0.05)
    tw = torch.tensor(start_w.copy(), requires_grad=True)
    tb = torch.tensor(start_b.copy(), requires_grad=True)
    torch_optimizer = torch.optim.Adam([{"params": [tw], "lr": 0.01, "weight_decay": 0.05},
                                        {"params": [tb], "lr": 0.02, "weight_decay": 0.0}])
    for step in range(20):
        lr = 0.01 * (1 - step / 20)
        for parameter, target in ((weight, target_w), (bias, target_b)):
            parameter.zero_grad()
            parameter.grad[...] = 3 * (parameter.data - target) ** 3 + parameter.data
        optimizer.step(lr)
        torch_optimizer.zero_grad()
        (((tw - torch.tensor(target_w)) ** 4).sum() * 0.75 + (tw**2).sum() / 2
         + ((tb - torch.tensor(target_b)) ** 4).sum() * 0.75 + (tb**2).sum() / 2).backward()
        torch_optimizer.param_groups[0]["lr"], torch_optimizer.param_groups[1]["lr"] = lr, 2 * lr
        torch_optimizer.step()
    np.testing.assert_allclose(weight.data, tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias.data, tb.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_adam_first_step_by_hand():
    """After one step, m/(1-b1) = g and v/(1-b2) = g^2, so every element moves by lr * sign(g)."""
    parameter = Parameter(np.array([1.0, 2.0, 3.0], np.float32))
    parameter.grad[...] = [0.5, -4.0, 1e-3]
    Adam([("p", parameter)], lr=0.1).step()
    np.testing.assert_allclose(parameter.data, [0.9, 2.1, 2.9], rtol=1e-4)


def test_adam_state_round_trip_continues_identically():
    def run(steps, restore_after=None):
        parameter = Parameter(np.arange(4, dtype=np.float32))
        frozen = Parameter(np.ones(2, np.float32), requires_grad=False)
        optimizer = Adam([("p", parameter), ("f", frozen)], lr=0.1, weight_decay=0.01)
        for step in range(steps):
            parameter.grad[...] = np.sin(parameter.data + step)
            optimizer.step()
            if step == restore_after:
                state = optimizer.state_dict()
                optimizer = Adam([("p", parameter), ("f", frozen)], lr=0.1, weight_decay=0.01)
                optimizer.load_state_dict(state)
        assert np.array_equal(frozen.data, np.ones(2, np.float32))
        return parameter.data

    assert np.array_equal(run(6), run(6, restore_after=2))


def test_adam_refuses_state_of_another_model():
    optimizer = Adam([("p", Parameter(np.zeros(3, np.float32)))])
    with pytest.raises(ValueError, match="does not fit"):
        optimizer.load_state_dict({"steps": np.array(1), "m/p": np.zeros(4), "v/p": np.zeros(4)})
    with pytest.raises(ValueError, match="does not fit"):
        optimizer.load_state_dict({"steps": np.array(1), "m/p": np.zeros(3)})


def _quadratic_run(make_optimizer, device, steps=6):
    """Parameters (a weight with decay, a bias at twice the rate without) after ``steps`` updates on a
    quadratic, run on ``device``; returned as host arrays."""
    from minifcn.backend import to_device, to_numpy

    rng = np.random.default_rng(3)
    start_w, start_b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    target = rng.standard_normal((4, 3)).astype(np.float32)
    weight = Parameter(to_device(start_w, device))
    bias = Parameter(to_device(start_b, device), lr_mult=2.0, decay_mult=0.0)
    frozen = Parameter(to_device(np.ones(2, np.float32), device), requires_grad=False)
    target = to_device(target, device)
    optimizer = make_optimizer([("w", weight), ("b", bias), ("f", frozen)])
    for step in range(steps):
        weight.zero_grad()
        bias.zero_grad()
        weight.accumulate(2 * (weight.data - target))
        bias.accumulate(bias.data * 0.5)
        optimizer.step(lr=0.05 * (1 + step % 2))
    return [to_numpy(p.data) for p in (weight, bias, frozen)]


@pytest.mark.parametrize("make_optimizer", [
    lambda params: SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-2),
    lambda params: SGD(params, lr=0.05, momentum=0.0, weight_decay=0.0),
    lambda params: Adam(params, lr=0.05, weight_decay=1e-2),
    lambda params: Adam(params, lr=0.05, betas=(0.8, 0.99)),
], ids=["sgd", "sgd-plain", "adam", "adam-betas"])
def test_fused_update_on_the_device_matches_the_cpu(xp, make_optimizer):
    """On a GPU each parameter's update is one fused kernel; it computes what the NumPy lines do (to
    float32 rounding: a GPU may contract a product and a sum into one rounding)."""
    device = "cpu" if xp is np else "gpu"
    on_device = _quadratic_run(make_optimizer, device)
    on_cpu = _quadratic_run(make_optimizer, "cpu")
    for got, expected in zip(on_device, on_cpu):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(on_device[2], np.ones(2, np.float32))


@pytest.mark.gpu
def test_fused_update_is_one_kernel_per_parameter(cupy_backend):
    """With the CuPy stand-in counting: SGD and Adam issue one kernel per trainable parameter."""
    from minifcn.backend import to_device

    for make_optimizer in (lambda p: SGD(p, lr=0.1), lambda p: Adam(p, lr=0.1)):
        params = [(f"p{i}", Parameter(to_device(np.ones(5, np.float32), "gpu"))) for i in range(3)]
        optimizer = make_optimizer(params)
        optimizer.step()  # creates the state
        cupy_backend.reset_counters()
        with cupy_backend.cupyx.allow_synchronize(False):
            optimizer.step()
        assert cupy_backend.COUNTERS["launches"] == 3


def _run_cut_into(runs, monkeypatch, make_optimizer, layout="C", steps=4):
    """Parameters of several sizes (one frozen) after ``steps`` updates computed in ``runs`` runs."""
    monkeypatch.setattr(minifcn.ops.fast.cores, "elementwise_threads", lambda: runs)
    rng = np.random.default_rng(5)
    shapes = [(8, 3, 3, 3), (8,), (1,), (5, 7), (16, 8, 1, 1)]
    parameters = [(f"p{i}", Parameter(np.array(rng.standard_normal(shape), np.float32, order=layout),
                                      lr_mult=1.0 + i % 2, decay_mult=float(i != 1)))
                  for i, shape in enumerate(shapes)]
    parameters[2][1].requires_grad = False
    optimizer = make_optimizer(parameters)
    for step in range(steps):
        for _, parameter in parameters:
            parameter.grad[...] = np.sin(parameter.data * (step + 1))
        optimizer.step(lr=0.01 * (step + 1))
    return [parameter.data for _, parameter in parameters]


@pytest.mark.parametrize("make_optimizer", [
    lambda params: SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-2),
    lambda params: SGD(params, lr=0.05, momentum=0.9, weight_decay=0.0),
    lambda params: Adam(params, lr=0.05, weight_decay=1e-2),
], ids=["sgd", "sgd-no-decay", "adam"])
def test_the_update_cut_into_runs_gives_the_same_bits(monkeypatch, make_optimizer):
    """The host update is cut into one run per core, the cuts falling inside parameters; each element's
    update is its own, so two or three runs give exactly the values of one (which the tests above check
    against torch and by hand). Arrays that are not C-contiguous are never cut, and update in place."""
    whole = _run_cut_into(1, monkeypatch, make_optimizer)
    for runs in (2, 3, 7):
        for got, expected in zip(_run_cut_into(runs, monkeypatch, make_optimizer), whole):
            np.testing.assert_array_equal(got, expected)
    fortran = _run_cut_into(2, monkeypatch, make_optimizer, layout="F")
    for got, expected in zip(fortran, whole):
        np.testing.assert_array_equal(got, expected)
