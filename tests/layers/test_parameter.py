"""Tests for minifcn.layers.parameter: data and grad side by side, accumulation, casting, moving."""

import numpy as np

from minifcn.backend import get_array_module, to_device, to_numpy
from minifcn.layers import Parameter


def device_for(xp):
    return "cpu" if xp is np else "gpu"


def test_grad_starts_at_zero_with_data_shape_and_dtype(xp):
    """grad is a zero array of data's shape, dtype and device; the defaults are lr 1, decay 1, trainable."""
    data = xp.asarray(np.random.default_rng(0).standard_normal((5, 3, 3, 3)).astype(np.float32))
    parameter = Parameter(data)
    assert parameter.data is data
    assert parameter.grad.shape == data.shape == parameter.shape
    assert parameter.grad.dtype == np.float32
    assert get_array_module(parameter.grad) is xp
    assert not to_numpy(parameter.grad).any()
    assert (parameter.lr_mult, parameter.decay_mult, parameter.requires_grad) == (1.0, 1.0, True)


def test_accumulate_adds_and_zero_grad_clears_in_place(xp):
    """accumulate adds (twice gives double); zero_grad clears the same array (optimizers may hold it)."""
    parameter = Parameter(xp.zeros((2, 3), np.float32))
    step = np.arange(6, dtype=np.float32).reshape(2, 3)
    grad = parameter.grad
    parameter.accumulate(xp.asarray(step))
    parameter.accumulate(xp.asarray(step))
    np.testing.assert_array_equal(to_numpy(parameter.grad), 2 * step)
    parameter.zero_grad()
    assert parameter.grad is grad
    assert not to_numpy(parameter.grad).any()


def test_astype_casts_data_and_grad(xp):
    """astype casts both arrays (gradient checks run in float64) and keeps the values."""
    parameter = Parameter(xp.asarray(np.array([1.5, -2.0], np.float32)))
    parameter.accumulate(xp.asarray(np.array([0.25, 1.0], np.float32)))
    assert parameter.astype(np.float64) is parameter
    assert parameter.data.dtype == np.float64 and parameter.grad.dtype == np.float64
    np.testing.assert_array_equal(to_numpy(parameter.grad), [0.25, 1.0])


def test_to_moves_data_and_grad(xp):
    """to(device) moves data and grad to the device; to("cpu") brings them back as NumPy arrays."""
    host = np.arange(4, dtype=np.float32)
    parameter = Parameter(host.copy(), lr_mult=2.0, decay_mult=0.0)
    assert parameter.to(device_for(xp)) is parameter
    assert get_array_module(parameter.data) is xp and get_array_module(parameter.grad) is xp
    parameter.to("cpu")
    assert isinstance(parameter.data, np.ndarray) and isinstance(parameter.grad, np.ndarray)
    np.testing.assert_array_equal(parameter.data, host)
    assert (parameter.lr_mult, parameter.decay_mult) == (2.0, 0.0)


def test_repr_names_shape_and_dtype():
    """The repr shows shape and dtype (what a person printing a model wants to see)."""
    assert repr(Parameter(to_device(np.zeros((2, 3), np.float32), "cpu"))) == "Parameter(shape=(2, 3), dtype=float32)"
