"""Tests for minifcn.layers.gradient_buffer: a model's gradients as views of one buffer, cleared at once."""

import copy

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.layers import Conv2d, Parameter, Sequential
from minifcn.layers.gradient_buffer import pack_gradients, zero_gradients


def device_for(xp):
    return "cpu" if xp is np else "gpu"


def filled_model(xp, seed=0):
    """Two conv layers moved to xp's device, every gradient set to known nonzero values."""
    model = Sequential([("first", Conv2d(3, 4, 3, padding=1, rng=np.random.default_rng(seed))),
                        ("second", Conv2d(4, 2, 1, rng=np.random.default_rng(seed + 1)))])
    model.to(device_for(xp))
    rng = np.random.default_rng(seed)
    for _, parameter in model.parameters():
        parameter.accumulate(xp.asarray(rng.standard_normal(parameter.shape).astype(np.float32)))
    return model


def test_pack_keeps_values_and_makes_views_of_one_buffer(xp):
    """Packing keeps each gradient's values and shape; writing into the buffer reaches every gradient."""
    parameters = [Parameter(xp.zeros(shape, np.float32)) for shape in [(2, 3), (4,), (1, 2, 2)]]
    values = [np.arange(p.grad.size, dtype=np.float32).reshape(p.shape) + 10 * i for i, p in enumerate(parameters)]
    for parameter, value in zip(parameters, values):
        parameter.accumulate(xp.asarray(value))
    (buffer,) = pack_gradients(parameters)
    assert buffer.size == 6 + 4 + 4 and all(p.grad_buffer is buffer for p in parameters)
    for parameter, value in zip(parameters, values):
        np.testing.assert_array_equal(to_numpy(parameter.grad), value)
    buffer[...] = 7
    assert all((to_numpy(p.grad) == 7).all() for p in parameters)


def test_one_buffer_per_dtype():
    """float32 and float64 gradients cannot share an array: each dtype gets its own buffer."""
    parameters = [Parameter(np.zeros(3, np.float32)), Parameter(np.zeros(2, np.float64)),
                  Parameter(np.zeros(4, np.float32))]
    buffers = pack_gradients(parameters)
    assert sorted((b.dtype.name, b.size) for b in buffers) == [("float32", 7), ("float64", 2)]


def test_model_to_device_packs_and_zero_grad_clears_every_gradient_in_place(xp):
    """After to(device) a model's gradients share one buffer; zero_grad clears them all, the same arrays."""
    model = filled_model(xp)
    parameters = [parameter for _, parameter in model.parameters()]
    assert len({id(p.grad_buffer) for p in parameters}) == 1 and parameters[0].grad_buffer is not None
    grads = [p.grad for p in parameters]
    model.zero_grad()
    assert all(p.grad is grad for p, grad in zip(parameters, grads))
    assert not any(to_numpy(p.grad).any() for p in parameters)


def test_zero_grad_of_a_submodule_leaves_the_rest_of_the_buffer(xp):
    """A submodule covers only part of the shared buffer: its zero_grad must not clear the others'."""
    model = filled_model(xp)
    first, second = [layer for _, layer in model.named_children()]
    kept = {name: to_numpy(p.grad).copy() for name, p in second.parameters()}
    first.zero_grad()
    assert not any(to_numpy(p.grad).any() for _, p in first.parameters())
    for name, parameter in second.parameters():
        np.testing.assert_array_equal(to_numpy(parameter.grad), kept[name])


def test_a_deep_copy_clears_its_own_gradients(xp):
    """A deep copy's gradients are arrays of their own (a copied view is not in the copied buffer), so
    its zero_grad clears them one by one instead of filling a buffer they no longer live in."""
    model = filled_model(xp)
    replica = copy.deepcopy(model)
    assert all(p.grad_buffer is None for _, p in replica.parameters())
    replica.zero_grad()
    assert not any(to_numpy(p.grad).any() for _, p in replica.parameters())
    assert all(to_numpy(p.grad).any() for _, p in model.parameters())


def test_moving_or_casting_a_parameter_unlinks_it(xp):
    """to() and astype() give a parameter a new grad array, outside the buffer: zero_gradients clears
    that array, and filling the old buffer no longer touches it."""
    model = filled_model(xp)
    parameters = [parameter for _, parameter in model.parameters()]
    parameters[0].astype(np.float64)
    assert parameters[0].grad_buffer is None
    zero_gradients(parameters)
    assert not any(to_numpy(p.grad).any() for p in parameters)


@pytest.mark.gpu
def test_zero_grad_is_one_launch_on_a_gpu(cupy_backend):
    """On a GPU a model's zero_grad is one fill, whatever its number of parameters."""
    model = Sequential([("a", Conv2d(3, 4, 3, padding=1)), ("b", Conv2d(4, 2, 1)), ("c", Conv2d(2, 2, 1))]).to("gpu")
    cupy_backend.reset_counters()
    model.zero_grad()
    assert cupy_backend.COUNTERS["launches"] == 1
