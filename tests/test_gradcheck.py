"""Tests for minifcn.gradcheck: the checker must pass right gradients and catch wrong ones."""

import numpy as np
import pytest

from minifcn.backend import to_device, to_numpy
from minifcn.gradcheck import (
    check_gradients,
    check_layer,
    directional_derivative,
    numerical_gradient,
    relative_error,
)
from minifcn.layers import Conv2d, Dropout, Module, Parameter


def device_for(xp):
    return "cpu" if xp is np else "gpu"


def test_relative_error_hand_computed():
    """max |a - n| / max(max |a|, max |n|): for a = [1, 2], n = [1, 2.5] that is 0.5 / 2.5 = 0.2."""
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == pytest.approx(0.2)
    # The scale is the largest entry of either array, so a tiny entry's own error is not blown up:
    # a = [100, 1e-9], n = [100, 2e-9] -> 1e-9 / 100 = 1e-11.
    assert relative_error(np.array([100.0, 1e-9]), np.array([100.0, 2e-9])) == pytest.approx(1e-11)


def test_relative_error_of_zeros_and_identical_arrays():
    """Two zero arrays, or two identical ones, have relative error exactly 0."""
    assert relative_error(np.zeros(4), np.zeros(4)) == 0.0
    a = np.random.default_rng(0).standard_normal((3, 4))
    assert relative_error(a, a.copy()) == 0.0


def test_relative_error_rejects_shape_mismatch():
    """Gradients of different shapes are a ValueError naming both shapes."""
    with pytest.raises(ValueError, match=r"\(2, 3\) vs \(3, 2\)"):
        relative_error(np.zeros((2, 3)), np.zeros((3, 2)))


def test_relative_error_accepts_device_arrays(xp):
    """relative_error reads arrays from either backend (it compares on the host)."""
    a = xp.asarray(np.array([1.0, 2.0]))
    assert relative_error(a, np.array([1.0, 2.5])) == pytest.approx(0.2)


def test_numerical_gradient_of_cube(xp):
    """For y = x**3 the numerical gradient of sum(y * dy) is 3 x**2 dy, and x is left as it was."""
    rng = np.random.default_rng(1)
    host = rng.standard_normal((3, 5))
    x = xp.asarray(host)
    dy = rng.standard_normal((3, 5))
    numeric = numerical_gradient(lambda: x**3, x, dy)
    np.testing.assert_allclose(numeric, 3 * host**2 * dy, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(to_numpy(x), host)


def test_numerical_gradient_rejects_non_contiguous():
    """A strided view cannot be perturbed through a flat view of itself."""
    x = np.zeros((4, 4))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        numerical_gradient(lambda: x, x, np.ones((4, 2)))


def test_directional_derivative_of_quadratic(xp):
    """For y = x**2 the derivative of sum(y * dy) along d is sum(2 x dy d); x is restored afterwards."""
    rng = np.random.default_rng(2)
    host = rng.standard_normal((4, 3))
    x = xp.asarray(host)
    dy, d = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    value = directional_derivative(lambda: x**2, x, dy, xp.asarray(d))
    assert value == pytest.approx(float((2 * host * dy * d).sum()), rel=1e-8)
    np.testing.assert_allclose(to_numpy(x), host, rtol=0, atol=1e-15)


def _product_problem(xp, wrong=False):
    """y = a * b + a**2 with the right backward, or one that forgets the a**2 term."""
    rng = np.random.default_rng(3)
    a = xp.asarray(rng.standard_normal((3, 4)))
    b = xp.asarray(rng.standard_normal((3, 4)))

    def forward():
        return a * b + a**2

    def backward(dy):
        da = dy * b if wrong else dy * (b + 2 * a)
        return {"a": da, "b": dy * a}

    return forward, backward, {"a": a, "b": b}


@pytest.mark.parametrize("directional", [(), ("a",), ("a", "b")])
def test_check_gradients_passes_right_gradients(xp, directional):
    """A correct backward gives relative errors far below 1e-6, element-wise and directional."""
    forward, backward, arrays = _product_problem(xp)
    errors = check_gradients(forward, backward, arrays, directional=directional)
    assert set(errors) == {"a", "b"}
    assert max(errors.values()) < 1e-8


@pytest.mark.parametrize("directional", [(), ("a",)])
def test_check_gradients_catches_wrong_gradients(xp, directional):
    """A backward that drops a term is caught: the error on a is large, the one on b stays small."""
    forward, backward, arrays = _product_problem(xp, wrong=True)
    errors = check_gradients(forward, backward, arrays, directional=directional)
    assert errors["a"] > 0.1
    assert errors["b"] < 1e-8


def test_check_gradients_rejects_float32():
    """Checks in float32 would be swamped by rounding, so they are refused."""
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="float64.*float32"):
        check_gradients(lambda: x * 2, lambda dy: {"x": dy * 2}, {"x": x})


def test_check_layer_on_conv(xp):
    """check_layer casts a float32 layer and input to float64 and finds a conv's gradients right."""
    layer = Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(4)).to(device_for(xp))
    x = to_device(np.random.default_rng(5).standard_normal((2, 2, 5, 4)).astype(np.float32), device_for(xp))
    errors = check_layer(layer, x)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) <= 1e-6
    assert layer.weight.data.dtype == np.float64


class _ScaleWithWrongGrad(Module):
    """y = w * x with a backward that returns the wrong parameter gradient (x instead of x * dy)."""

    def __init__(self, xp):
        self.w = Parameter(xp.asarray(np.array([1.5, -0.5])))

    def forward(self, x):
        self._save_for_backward(x)
        return self.w.data * x

    def backward(self, dy):
        x = self._saved()
        self.w.accumulate(x.sum(axis=0))
        return dy * self.w.data


def test_check_layer_catches_wrong_parameter_gradient(xp):
    """check_layer reports a large error for a wrong parameter gradient and a small one for the input."""
    layer = _ScaleWithWrongGrad(xp)
    errors = check_layer(layer, xp.asarray(np.random.default_rng(6).standard_normal((4, 2))))
    assert errors["input"] < 1e-8
    assert errors["w"] > 0.1


def test_check_layer_rewinds_dropout_generator(xp):
    """A layer with an ``rng`` sees the same mask in every forward pass of the check (else it would fail)."""
    layer = Dropout(0.5, rng=np.random.default_rng(7))
    x = to_device(np.random.default_rng(8).standard_normal((3, 4, 5)), device_for(xp))
    errors = check_layer(layer, x)
    assert errors["input"] <= 1e-6
