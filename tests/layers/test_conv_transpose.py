"""Tests for minifcn.layers.conv_transpose.ConvTranspose2d: initialisation, gradients, accumulation, freezing."""

import numpy as np
import pytest

from minifcn.backend import to_device, to_numpy
from minifcn.gradcheck import check_layer, relative_error
from minifcn.layers import ConvTranspose2d, bilinear_kernel


def device_for(xp):
    return "cpu" if xp is np else "gpu"


def make_input(xp, shape, seed=1, dtype=np.float32):
    return to_device(np.random.default_rng(seed).standard_normal(shape).astype(dtype), device_for(xp))


def test_default_weight_is_bilinear_when_channels_match():
    """Cin == Cout starts from the bilinear kernel (the reference's initialisation), with no bias."""
    layer = ConvTranspose2d(21, 21, 4, stride=2)
    np.testing.assert_array_equal(layer.weight.data, bilinear_kernel(21, 4))
    assert layer.bias is None and [name for name, _ in layer.parameters()] == ["weight"]
    assert repr(layer) == "ConvTranspose2d(21, 21, kernel_size=4, stride=2, padding=0, bias=False)"


def test_other_channel_counts_get_seeded_he_normal():
    """Cin != Cout draws (Cin, Cout, k, k) He-normal weights from the given generator."""
    layer = ConvTranspose2d(64, 32, 4, stride=2, bias=True, rng=np.random.default_rng(3))
    assert layer.weight.shape == (64, 32, 4, 4) and layer.weight.data.dtype == np.float32
    # 32,768 draws: sample std within 2% of sqrt(2 / (64 * 16)).
    assert layer.weight.data.std() == pytest.approx(np.sqrt(2 / 1024), rel=0.02)
    again = ConvTranspose2d(64, 32, 4, stride=2, bias=True, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(layer.weight.data, again.weight.data)
    assert layer.bias.shape == (32,) and not layer.bias.data.any()
    assert (layer.bias.lr_mult, layer.bias.decay_mult) == (2.0, 0.0)


# (Cin, Cout, kernel, stride, padding, bias, method, input (H, W), directional)
CONFIGS = {
    "k4s2-bilinear": (3, 3, 4, 2, 0, False, "auto", (4, 3), ()),
    "k4s2p1-bias": (3, 5, 4, 2, 1, True, "im2col", (5, 4), ()),
    "k3s1p1-shift-bias": (3, 5, 3, 1, 1, True, "shift", (7, 9), ()),
    "k3s1p1-stacked-bias": (3, 5, 3, 1, 1, True, "stacked", (7, 9), ()),
    "k1-pointwise-bias": (5, 3, 1, 1, 0, True, "pointwise", (7, 9), ()),
    "k16s8-bilinear": (2, 2, 16, 8, 0, False, "auto", (3, 2), ("weight",)),
    "k16s8p4-bias": (2, 3, 16, 8, 4, True, "im2col", (2, 3), ("weight",)),
}


@pytest.mark.parametrize(
    "cin, cout, kernel, stride, padding, bias, method, hw, directional", CONFIGS.values(), ids=CONFIGS.keys()
)
def test_gradients_numerically(xp, cin, cout, kernel, stride, padding, bias, method, hw, directional):
    """check_layer in float64 agrees to 1e-6 (kernel-16 weights along a random direction)."""
    layer = ConvTranspose2d(cin, cout, kernel, stride, padding, bias=bias, rng=np.random.default_rng(0), method=method)
    layer.to(device_for(xp))
    if bias:
        layer.bias.data += xp.asarray(np.random.default_rng(2).standard_normal(cout).astype(np.float32))
    errors = check_layer(layer, make_input(xp, (2, cin) + hw), directional=directional)
    assert set(errors) == ({"input", "weight", "bias"} if bias else {"input", "weight"})
    assert max(errors.values()) <= 1e-6, errors


def _one_pass(layer, x, dy):
    layer.forward(x)
    return layer.backward(dy)


def test_backward_adds_into_grad_and_zero_grad_clears(xp):
    """Two backward passes without zero_grad give twice the gradient of one; zero_grad clears it."""
    layer = ConvTranspose2d(3, 5, 4, 2, 1, bias=True, rng=np.random.default_rng(0)).to(device_for(xp))
    x = make_input(xp, (2, 3, 5, 4))
    dy = make_input(xp, (2, 5, 10, 8), seed=2)
    _one_pass(layer, x, dy)
    once = to_numpy(layer.weight.grad).copy(), to_numpy(layer.bias.grad).copy()
    _one_pass(layer, x, dy)
    np.testing.assert_allclose(to_numpy(layer.weight.grad), 2 * once[0], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer.bias.grad), 2 * once[1], rtol=1e-6)
    layer.zero_grad()
    assert not to_numpy(layer.weight.grad).any() and not to_numpy(layer.bias.grad).any()


def test_fixed_bilinear_upsampling_gets_no_weight_gradient(xp):
    """FCN keeps its upsampling fixed: with requires_grad False the weight gets no gradient and stays
    bilinear, while the input gradient (and a trainable bias's) is the same as unfrozen."""
    reference = ConvTranspose2d(3, 3, 4, 2, bias=True).to(device_for(xp))
    layer = ConvTranspose2d(3, 3, 4, 2, bias=True).to(device_for(xp))
    layer.weight.requires_grad = False
    x = make_input(xp, (2, 3, 5, 4))
    dy = make_input(xp, (2, 3, 12, 10), seed=3)  # (5 - 1) * 2 + 4 = 12, (4 - 1) * 2 + 4 = 10
    expected_dx = _one_pass(reference, x, dy)
    dx = _one_pass(layer, x, dy)
    assert not to_numpy(layer.weight.grad).any()
    np.testing.assert_array_equal(to_numpy(layer.weight.data), bilinear_kernel(3, 4))
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(expected_dx))
    np.testing.assert_allclose(to_numpy(layer.bias.grad), to_numpy(reference.bias.grad), rtol=1e-6)
    assert to_numpy(layer.bias.grad).any()


def test_wrong_channel_count_names_both_shapes(xp):
    """Feeding 4 channels to ConvTranspose2d(3, 5, 4) is a ValueError naming input and weight shapes."""
    layer = ConvTranspose2d(3, 5, 4, 2, rng=np.random.default_rng(0)).to(device_for(xp))
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 4\).*\(3, 5, 4, 4\)"):
        layer.forward(xp.ones((2, 4, 5, 4), np.float32))


@pytest.mark.torch
def test_matches_torch(xp, torch):
    """The layer's output and gradients equal torch.nn.ConvTranspose2d's with the same parameters."""
    layer = ConvTranspose2d(8, 5, 4, 2, 1, bias=True, rng=np.random.default_rng(4)).to(device_for(xp))
    layer.bias.data += xp.asarray(np.random.default_rng(5).standard_normal(5).astype(np.float32))
    x = np.random.default_rng(6).standard_normal((2, 8, 13, 11)).astype(np.float32)
    y = layer.forward(xp.asarray(x))
    dy = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(xp.asarray(dy))
    module = torch.nn.ConvTranspose2d(8, 5, 4, stride=2, padding=1)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(to_numpy(layer.weight.data)))
        module.bias.copy_(torch.from_numpy(to_numpy(layer.bias.data)))
    tx = torch.from_numpy(x).requires_grad_()
    ty = module(tx)
    ty.backward(torch.from_numpy(dy))
    assert relative_error(y, ty.detach().numpy()) <= 1e-5
    assert relative_error(dx, tx.grad.numpy()) <= 1e-5
    assert relative_error(layer.weight.grad, module.weight.grad.numpy()) <= 1e-5
    assert relative_error(layer.bias.grad, module.bias.grad.numpy()) <= 1e-5
