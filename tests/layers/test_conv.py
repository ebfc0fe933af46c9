"""Tests for minifcn.layers.conv.Conv2d: parameters, initialisation, gradients, accumulation, freezing."""

import numpy as np
import pytest

from minifcn.backend import get_array_module, to_device, to_numpy
from minifcn.gradcheck import check_layer, relative_error
from minifcn.layers import Conv2d
from minifcn.ops.conv import conv2d, conv2d_backward


def device_for(xp):
    return "cpu" if xp is np else "gpu"


def make_layer(xp, *args, seed=0, **kwargs):
    return Conv2d(*args, rng=np.random.default_rng(seed), **kwargs).to(device_for(xp))


def make_input(xp, shape, seed=1, dtype=np.float32):
    return to_device(np.random.default_rng(seed).standard_normal(shape).astype(dtype), device_for(xp))


def test_parameters_shapes_and_initialisation():
    """weight (O, C, k, k) He-normal with std sqrt(2 / (C k k)), bias (O,) zero with lr x2 and no decay."""
    layer = Conv2d(64, 128, 3, rng=np.random.default_rng(0))
    assert [name for name, _ in layer.parameters()] == ["weight", "bias"]
    assert layer.weight.shape == (128, 64, 3, 3) and layer.bias.shape == (128,)
    assert layer.weight.data.dtype == np.float32 and layer.bias.data.dtype == np.float32
    # 73,728 draws: the sample std is within 1% of sqrt(2 / 576) with overwhelming probability.
    assert layer.weight.data.std() == pytest.approx(np.sqrt(2 / 576), rel=0.01)
    assert abs(layer.weight.data.mean()) < 0.05 * np.sqrt(2 / 576)  # 13 standard errors of the mean
    assert not layer.bias.data.any()
    assert (layer.weight.lr_mult, layer.weight.decay_mult) == (1.0, 1.0)
    assert (layer.bias.lr_mult, layer.bias.decay_mult) == (2.0, 0.0)
    assert repr(layer) == "Conv2d(64, 128, kernel_size=3, stride=1, padding=0, bias=True)"


def test_no_bias_and_seeded_initialisation():
    """bias=False leaves only the weight; the same seed gives the same weights, another seed others."""
    layer = Conv2d(3, 5, 3, bias=False, rng=np.random.default_rng(7))
    assert layer.bias is None and [name for name, _ in layer.parameters()] == ["weight"]
    same = Conv2d(3, 5, 3, bias=False, rng=np.random.default_rng(7))
    other = Conv2d(3, 5, 3, bias=False, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(layer.weight.data, same.weight.data)
    assert (layer.weight.data != other.weight.data).any()


# (C, O, kernel, stride, padding, bias, method, input (H, W)): odd maps and channel counts.
CONFIGS = {
    "k3s1p1-im2col": (3, 5, 3, 1, 1, True, "im2col", (7, 9)),
    "k3s1p1-shift": (3, 5, 3, 1, 1, True, "shift", (7, 9)),
    "k3s2p1-im2col": (3, 5, 3, 2, 1, True, "im2col", (13, 11)),
    "k1-pointwise": (5, 3, 1, 1, 0, True, "pointwise", (7, 9)),
    "k1s2p1-pointwise": (5, 3, 1, 2, 1, False, "pointwise", (13, 11)),
    "k5s1p2-shift-nobias": (3, 2, 5, 1, 2, False, "shift", (7, 9)),
    "k3s1p1-stacked": (3, 5, 3, 1, 1, True, "stacked", (7, 9)),
    "k5s1p2-stacked-nobias": (3, 2, 5, 1, 2, False, "stacked", (7, 9)),
    "k3s1p0-auto": (3, 5, 3, 1, 0, True, "auto", (13, 11)),
}


@pytest.mark.parametrize("c, o, kernel, stride, padding, bias, method, hw", CONFIGS.values(), ids=CONFIGS.keys())
def test_gradients_numerically(xp, c, o, kernel, stride, padding, bias, method, hw):
    """check_layer in float64: input, weight and bias gradients agree with central differences to 1e-6."""
    layer = make_layer(xp, c, o, kernel, stride=stride, padding=padding, bias=bias, method=method)
    if bias:
        layer.bias.data += xp.asarray(np.random.default_rng(2).standard_normal(o).astype(np.float32))
    errors = check_layer(layer, make_input(xp, (2, c) + hw))
    assert set(errors) == ({"input", "weight", "bias"} if bias else {"input", "weight"})
    assert max(errors.values()) <= 1e-6, errors


def test_forward_and_backward_are_the_op(xp):
    """The layer computes ops.conv2d with its own parameters and returns the op's input gradient."""
    layer = make_layer(xp, 3, 5, 3, stride=2, padding=1)
    x = make_input(xp, (2, 3, 13, 11))
    y = layer.forward(x)
    expected, cache = conv2d(x, layer.weight.data, layer.bias.data, 2, 1)
    np.testing.assert_array_equal(to_numpy(y), to_numpy(expected))
    dy = make_input(xp, y.shape, seed=3)
    dx = layer.backward(dy)
    ref_dx, ref_dweight, ref_dbias = conv2d_backward(dy, cache)
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(ref_dx))
    np.testing.assert_array_equal(to_numpy(layer.weight.grad), to_numpy(ref_dweight))
    np.testing.assert_array_equal(to_numpy(layer.bias.grad), to_numpy(ref_dbias))


def _one_pass(layer, x, dy):
    layer.forward(x)
    return layer.backward(dy)


def test_backward_adds_into_grad_and_zero_grad_clears(xp):
    """Two backward passes without zero_grad leave twice the gradient of one; zero_grad clears it."""
    layer = make_layer(xp, 3, 5, 3, padding=1)
    x = make_input(xp, (2, 3, 7, 9))
    dy = make_input(xp, (2, 5, 7, 9), seed=4)
    _one_pass(layer, x, dy)
    once = to_numpy(layer.weight.grad).copy(), to_numpy(layer.bias.grad).copy()
    _one_pass(layer, x, dy)
    np.testing.assert_allclose(to_numpy(layer.weight.grad), 2 * once[0], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer.bias.grad), 2 * once[1], rtol=1e-6)
    layer.zero_grad()
    assert not to_numpy(layer.weight.grad).any() and not to_numpy(layer.bias.grad).any()


def test_frozen_weight_gets_no_gradient_but_bias_and_input_do(xp):
    """requires_grad False on the weight: its grad stays zero, while the bias (still trainable) and
    the input get the same gradients as in an unfrozen layer."""
    reference, layer = make_layer(xp, 3, 5, 3, padding=1), make_layer(xp, 3, 5, 3, padding=1)
    layer.weight.requires_grad = False
    x = make_input(xp, (2, 3, 7, 9))
    dy = make_input(xp, (2, 5, 7, 9), seed=5)
    expected_dx = _one_pass(reference, x, dy)
    dx = _one_pass(layer, x, dy)
    assert not to_numpy(layer.weight.grad).any()
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(expected_dx))
    np.testing.assert_allclose(to_numpy(layer.bias.grad), to_numpy(reference.bias.grad), rtol=1e-6)
    assert to_numpy(layer.bias.grad).any()


def test_frozen_bias_gets_no_gradient_but_weight_does(xp):
    """requires_grad False on the bias only: bias grad stays zero, weight grad is unchanged."""
    reference, layer = make_layer(xp, 3, 5, 3, padding=1), make_layer(xp, 3, 5, 3, padding=1)
    layer.bias.requires_grad = False
    x = make_input(xp, (2, 3, 7, 9))
    dy = make_input(xp, (2, 5, 7, 9), seed=6)
    _one_pass(reference, x, dy)
    _one_pass(layer, x, dy)
    assert not to_numpy(layer.bias.grad).any()
    np.testing.assert_array_equal(to_numpy(layer.weight.grad), to_numpy(reference.weight.grad))


def test_fully_frozen_layer_still_passes_the_input_gradient(xp):
    """With both parameters frozen no parameter gradient appears, but dx is still computed."""
    reference, layer = make_layer(xp, 3, 5, 3, padding=1), make_layer(xp, 3, 5, 3, padding=1)
    for _, parameter in layer.parameters():
        parameter.requires_grad = False
    x = make_input(xp, (2, 3, 7, 9))
    dy = make_input(xp, (2, 5, 7, 9), seed=7)
    np.testing.assert_array_equal(to_numpy(_one_pass(layer, x, dy)), to_numpy(_one_pass(reference, x, dy)))
    assert not to_numpy(layer.weight.grad).any() and not to_numpy(layer.bias.grad).any()


def test_device_move_keeps_results(xp):
    """A layer moved to xp's device computes on it and gives the CPU layer's output."""
    cpu_layer = Conv2d(3, 5, 3, padding=1, rng=np.random.default_rng(9))
    layer = make_layer(xp, 3, 5, 3, padding=1, seed=9)
    x = np.random.default_rng(10).standard_normal((2, 3, 7, 9)).astype(np.float32)
    y = layer.forward(xp.asarray(x))
    assert get_array_module(y) is xp
    assert relative_error(y, cpu_layer.forward(x)) <= 1e-6


def test_wrong_channel_count_names_both_shapes(xp):
    """Feeding 4 channels to Conv2d(3, 5, 3) is a ValueError naming the input and weight shapes."""
    layer = make_layer(xp, 3, 5, 3)
    with pytest.raises(ValueError, match=r"\(2, 4, 7, 9\).*\(5, 3, 3, 3\)"):
        layer.forward(xp.ones((2, 4, 7, 9), np.float32))


def test_integer_input_is_rejected(xp):
    """An integer image is a ValueError naming its dtype, not a silent cast."""
    with pytest.raises(ValueError, match="floating-point.*uint8"):
        make_layer(xp, 3, 5, 3).forward(xp.ones((1, 3, 7, 9), np.uint8))


@pytest.mark.torch
def test_matches_torch(xp, torch):
    """Output, dx, dweight and dbias of the layer equal torch.nn.Conv2d's with the same parameters."""
    layer = make_layer(xp, 16, 8, 3, stride=2, padding=1)
    layer.bias.data += xp.asarray(np.random.default_rng(11).standard_normal(8).astype(np.float32))
    x = np.random.default_rng(12).standard_normal((2, 16, 33, 31)).astype(np.float32)
    y = layer.forward(xp.asarray(x))
    dy = np.random.default_rng(13).standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(xp.asarray(dy))
    module = torch.nn.Conv2d(16, 8, 3, stride=2, padding=1)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(to_numpy(layer.weight.data)))
        module.bias.copy_(torch.from_numpy(to_numpy(layer.bias.data)))
    tx = torch.from_numpy(x).requires_grad_()
    module(tx).backward(torch.from_numpy(dy))
    assert relative_error(y, module(tx).detach().numpy()) <= 1e-5
    assert relative_error(dx, tx.grad.numpy()) <= 1e-5
    assert relative_error(layer.weight.grad, module.weight.grad.numpy()) <= 1e-5
    assert relative_error(layer.bias.grad, module.bias.grad.numpy()) <= 1e-5
