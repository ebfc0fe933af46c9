"""Tests for minifcn.layers.layer and the contract every layer shares: parameters(), train/eval,
zero_grad, backward only after forward, and input_grad=False."""

import numpy as np
import pytest

from minifcn.backend import get_array_module, to_numpy
from minifcn.layers import (
    Conv2d,
    ConvTranspose2d,
    Crop,
    Dropout,
    Layer,
    MaxPool2d,
    Parameter,
    ReLU,
    SoftmaxCrossEntropy,
)


def device_for(xp):
    return "cpu" if xp is np else "gpu"


class Affine(Layer):
    """y = a * x + b with two parameters and one attribute that is not a parameter."""

    def __init__(self):
        self.a = Parameter(np.array([2.0]))
        self.note = "not a parameter"
        self.b = Parameter(np.array([0.5]))

    def forward(self, x):
        self._cache = x
        return self.a.data * x + self.b.data

    def backward(self, dy):
        x = self._take_cache()
        self.a.accumulate((dy * x).sum(keepdims=True).reshape(1))
        self.b.accumulate(dy.sum(keepdims=True).reshape(1))
        return dy * self.a.data if self.input_grad else None


def test_parameters_in_attribute_order():
    """parameters() yields (name, Parameter) for Parameter attributes only, in the order they were set."""
    layer = Affine()
    assert [(name, p) for name, p in layer.parameters()] == [("a", layer.a), ("b", layer.b)]


def test_train_and_eval_switch_mode_and_return_the_layer():
    """Layers start in training mode; eval() and train() switch it per instance and return the layer."""
    layer, other = Affine(), Affine()
    assert layer.training
    assert layer.eval() is layer and not layer.training
    assert other.training
    assert layer.train() is layer and layer.training


def test_zero_grad_clears_every_parameter():
    """After a backward pass, zero_grad leaves every parameter's grad at zero."""
    layer = Affine()
    layer.forward(np.array([1.0, 2.0]))
    layer.backward(np.array([1.0, 1.0]))
    assert layer.a.grad[0] == 3.0 and layer.b.grad[0] == 2.0  # sum(dy * x) = 1 + 2, sum(dy) = 2
    layer.zero_grad()
    assert layer.a.grad[0] == 0.0 and layer.b.grad[0] == 0.0


def test_call_is_forward():
    """layer(x) is layer.forward(x)."""
    layer = Affine()
    np.testing.assert_array_equal(layer(np.array([1.0, -1.0])), [2.5, -1.5])


def test_clear_cache_makes_backward_fail():
    """After clear_cache (freeing memory after evaluation) a backward pass is a RuntimeError."""
    layer = Affine()
    layer.forward(np.array([1.0]))
    layer.clear_cache()
    with pytest.raises(RuntimeError, match="Affine.backward called without a forward pass"):
        layer.backward(np.array([1.0]))


def test_to_moves_every_parameter(xp):
    """to(device) moves all parameters and returns the layer."""
    layer = Affine()
    assert layer.to(device_for(xp)) is layer
    for _, parameter in layer.parameters():
        assert get_array_module(parameter.data) is xp and get_array_module(parameter.grad) is xp


def _rng():
    return np.random.default_rng(0)


# Every layer with an input for forward: (factory, make the forward arguments from xp).
LAYERS = {
    "Conv2d": (lambda: Conv2d(3, 5, 3, padding=1, rng=_rng()), lambda xp: (xp.ones((2, 3, 7, 9), np.float32),)),
    "ConvTranspose2d": (lambda: ConvTranspose2d(3, 3, 4, stride=2), lambda xp: (xp.ones((2, 3, 5, 4), np.float32),)),
    "MaxPool2d": (lambda: MaxPool2d(), lambda xp: (xp.ones((2, 3, 7, 9), np.float32),)),
    "ReLU": (lambda: ReLU(), lambda xp: (xp.ones((2, 3, 7, 9), np.float32),)),
    "Dropout": (lambda: Dropout(0.5, rng=_rng()), lambda xp: (xp.ones((2, 3, 7, 9), np.float32),)),
    "Dropout-eval": (lambda: Dropout(0.5, rng=_rng()).eval(), lambda xp: (xp.ones((2, 3, 7, 9), np.float32),)),
    "Crop": (lambda: Crop(2), lambda xp: (xp.ones((2, 3, 7, 9), np.float32), (4, 5))),
    "SoftmaxCrossEntropy": (
        lambda: SoftmaxCrossEntropy(),
        lambda xp: (xp.ones((2, 5, 7, 9), np.float32), xp.zeros((2, 7, 9), np.int32)),
    ),
}


def _run(name, xp, layer):
    args = LAYERS[name][1](xp)
    y = layer.forward(*args)
    return y, xp.ones(y.shape, y.dtype)


@pytest.mark.parametrize("name", LAYERS)
def test_backward_without_forward_is_a_runtime_error(xp, name):
    """backward before any forward, or a second backward after one forward, raises RuntimeError
    naming the layer: the cache is released after backward."""
    layer = LAYERS[name][0]().to(device_for(xp))
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.backward called without a forward pass"):
        layer.backward(xp.ones(1, np.float32))
    _, dy = _run(name, xp, layer)
    layer.backward(dy)
    with pytest.raises(RuntimeError, match="without a forward pass"):
        layer.backward(dy)


@pytest.mark.parametrize("name", [name for name in LAYERS if name != "SoftmaxCrossEntropy"])
def test_input_grad_false_returns_none(xp, name):
    """With input_grad False (the layers below are frozen, or the input is the image) backward
    returns None, and the parameter gradients are the same as with it on."""
    reference, layer = LAYERS[name][0]().to(device_for(xp)), LAYERS[name][0]().to(device_for(xp))
    layer.input_grad = False
    _, dy = _run(name, xp, reference)
    assert reference.backward(dy) is not None
    _run(name, xp, layer)
    assert layer.backward(dy) is None
    for (_, expected), (_, got) in zip(reference.parameters(), layer.parameters()):
        np.testing.assert_array_equal(to_numpy(got.grad), to_numpy(expected.grad))
