"""Tests for minifcn.layers.module and the contract every layer shares: parameters(), train/eval,
zero_grad, backward only after forward, and input_grad=False."""

import numpy as np
import pytest

from minifcn.backend import get_array_module, to_numpy
from minifcn.layers import (
    Conv2d,
    ConvTranspose2d,
    Crop,
    Dropout,
    MaxPool2d,
    Module,
    Parameter,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
)


def device_for(xp):
    return "cpu" if xp is np else "gpu"


class Affine(Module):
    """y = a * x + b with two parameters and one attribute that is not a parameter."""

    def __init__(self):
        self.a = Parameter(np.array([2.0]))
        self.note = "not a parameter"
        self.b = Parameter(np.array([0.5]))

    def forward(self, x):
        self._save_for_backward(x)
        return self.a.data * x + self.b.data

    def backward(self, dy):
        x = self._saved()
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


class TwoAffines(Module):
    """A module of modules: a named child, and a flat chain whose layers are named as its parent's."""

    def __init__(self):
        self.first = Affine()
        self.chain = Sequential([("second", Affine()), ("drop", Dropout(0.5, rng=_rng()))])

    def forward(self, x):
        return self.chain(self.first(x))

    def backward(self, dy):
        return self.first.backward(self.chain.backward(dy))


def test_children_register_themselves_and_names_follow_the_tree():
    """Assigning a Module registers it: parameters are named by path, and a Sequential adds no level."""
    model = TwoAffines()
    assert [name for name, _ in model.parameters()] == ["first.a", "first.b", "second.a", "second.b"]
    assert [name for name, _ in model.named_layers()] == ["first", "second", "drop"]
    assert [type(m).__name__ for m in model.modules()] == ["TwoAffines", "Affine", "Sequential", "Affine", "Dropout"]


def test_modes_devices_gradients_and_caches_recurse(xp):
    """train/eval, to, zero_grad, set_trainable and clear_cache reach every module of the tree."""
    model = TwoAffines().to(device_for(xp))
    assert all(m.device == device_for(xp) for m in model.modules())
    assert all(get_array_module(p.data) is xp for _, p in model.parameters())
    model.eval()
    assert not any(m.training for m in model.modules())
    y = model.forward(xp.asarray([1.0, 2.0]))
    np.testing.assert_allclose(to_numpy(y), [2 * (2 * 1 + 0.5) + 0.5, 2 * (2 * 2 + 0.5) + 0.5])
    assert all(m._cache is not None for _, m in model.named_layers())
    model.clear_cache()
    assert all(m._cache is None for m in model.modules())
    model.forward(xp.asarray([1.0, 2.0]))
    model.backward(xp.ones(2))
    assert all(p.grad.any() for _, p in model.parameters())
    model.zero_grad()
    assert not any(p.grad.any() for _, p in model.parameters())
    model.chain.set_trainable(False)
    assert [p.requires_grad for _, p in model.parameters()] == [True, True, False, False]


def test_state_dict_round_trip_through_the_tree():
    """state_dict names every parameter by path; load_state_dict checks names and shapes first."""
    model, other = TwoAffines(), TwoAffines()
    model.first.a.data[...] = 7.0
    other.load_state_dict(model.state_dict())
    assert other.first.a.data[0] == 7.0
    with pytest.raises(ValueError, match="missing: second.b"):
        other.load_state_dict({name: value for name, value in model.state_dict().items() if name != "second.b"})


def test_use_generator_reaches_every_random_layer():
    """draws_random_numbers follows the mode; use_generator hands one generator to every dropout."""
    model = TwoAffines()
    assert model.draws_random_numbers()
    generator = np.random.default_rng(9)
    model.use_generator(generator)
    assert model.chain.drop.rng is generator
    assert not model.eval().draws_random_numbers()
