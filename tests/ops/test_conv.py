"""Tests for minifcn.ops.conv: conv2d and conv2d_backward, the reference method and every fast one.

References: a naive loop over output pixels (float64, tiny shapes), numerical gradients (float64,
odd shapes) and torch.nn.functional.conv2d (float32, realistic shapes). Each fast method is also
held equal to the reference on more shapes in tests/ops/fast/, and the rule behind method="auto"
is tested there (test_choose.py).
"""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_gradients, relative_error
from minifcn.ops.conv import conv2d, conv2d_backward, conv_output_size


def pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def applicable_methods(kernel, stride):
    """The methods that support this geometry: pointwise needs a 1x1 kernel, shift and stacked stride 1
    (reference, im2col and gathered take any)."""
    methods = ["reference", "im2col", "gathered"]
    if pair(stride) == (1, 1):
        methods += ["shift", "stacked"]
    if pair(kernel) == (1, 1):
        methods.append("pointwise")
    return methods


# (C, O, H, W, kernel, stride, padding): odd maps and channel counts, strides > 1, padding > 0,
# padding larger than the kernel (as conv1_1's 100), gaps between windows, fc6's 7x7, non-square.
GEOMETRIES = {
    "k3s1p1-7x9": (3, 5, 7, 9, 3, 1, 1),
    "k3s2p1-13x11": (3, 5, 13, 11, 3, 2, 1),
    "k5s1p2-7x9": (5, 3, 7, 9, 5, 1, 2),
    "k3s1p0-13x11": (3, 5, 13, 11, 3, 1, 0),
    "k1s1p0-7x9": (3, 5, 7, 9, 1, 1, 0),
    "k1s2p1-13x11": (5, 3, 13, 11, 1, 2, 1),
    "k2s3p0-9x7": (3, 4, 9, 7, 2, 3, 0),
    "k7s1p0-7x9": (3, 2, 7, 9, 7, 1, 0),
    "k3s1p4-5x6": (2, 3, 5, 6, 3, 1, 4),
    "k3x1s2x1p1x0-7x9": (3, 5, 7, 9, (3, 1), (2, 1), (1, 0)),
    "k1x3s1p0x1-7x9": (3, 5, 7, 9, (1, 3), 1, (0, 1)),
}

CASES = [
    pytest.param(*geometry, method, id=f"{name}-{method}")
    for name, geometry in GEOMETRIES.items()
    for method in applicable_methods(geometry[4], geometry[5])
]


def make_inputs(c, o, h, w, kernel, seed=0, n=2, dtype=np.float64, bias=True):
    rng = np.random.default_rng(seed)
    kh, kw = pair(kernel)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    return x, weight, b


def naive_conv2d(x, weight, bias, stride, padding):
    """y[n, o, i, j] = bias[o] + sum(weight[o] * window(i, j)), one output pixel at a time."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, oh, ow))
    for b in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    window = xpad[b, :, sh * i : sh * i + kh, sw * j : sw * j + kw]
                    y[b, f, i, j] = (window * weight[f]).sum() + (0.0 if bias is None else bias[f])
    return y


def naive_conv2d_backward(dy, x, weight, stride, padding):
    """(dx, dweight, dbias) by sending each output pixel's gradient back over its window."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxpad = np.zeros_like(xpad)
    dweight = np.zeros_like(weight)
    for b in range(n):
        for f in range(o):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    rows, cols = slice(sh * i, sh * i + kh), slice(sw * j, sw * j + kw)
                    dxpad[b, :, rows, cols] += weight[f] * dy[b, f, i, j]
                    dweight[f] += xpad[b, :, rows, cols] * dy[b, f, i, j]
    return dxpad[:, :, ph : ph + h, pw : pw + w], dweight, dy.sum(axis=(0, 2, 3))


@pytest.mark.parametrize("c, o, h, w, kernel, stride, padding, method", CASES)
def test_forward_matches_naive_loop(xp, c, o, h, w, kernel, stride, padding, method):
    """Every method computes the same cross-correlation as the loop over output pixels."""
    x, weight, bias = make_inputs(c, o, h, w, kernel)
    y, _ = conv2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), stride, padding, method)
    expected = naive_conv2d(x, weight, bias, stride, padding)
    assert y.shape == expected.shape
    assert relative_error(y, expected) <= 1e-12


@pytest.mark.parametrize("c, o, h, w, kernel, stride, padding, method", CASES)
def test_backward_matches_naive_loop(xp, c, o, h, w, kernel, stride, padding, method):
    """Every method's dx, dweight and dbias equal the loop that sends gradients back window by window."""
    x, weight, bias = make_inputs(c, o, h, w, kernel)
    y, cache = conv2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), stride, padding, method)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    grads = conv2d_backward(xp.asarray(dy), cache)
    for got, expected in zip(grads, naive_conv2d_backward(dy, x, weight, stride, padding)):
        assert got.shape == expected.shape
        assert relative_error(got, expected) <= 1e-12


def conv_gradient_errors(xp, x, weight, bias, stride, padding, method):
    """check_gradients on conv2d for x, weight and (if given) bias, all float64 on xp."""
    arrays = {"x": xp.asarray(x), "weight": xp.asarray(weight)}
    if bias is not None:
        arrays["bias"] = xp.asarray(bias)
    state = {}

    def forward():
        y, state["cache"] = conv2d(arrays["x"], arrays["weight"], arrays.get("bias"), stride, padding, method)
        return y

    def backward(dy):
        dx, dweight, dbias = conv2d_backward(dy, state["cache"])
        return {"x": dx, "weight": dweight, "bias": dbias}

    return check_gradients(forward, backward, arrays)


@pytest.mark.parametrize("c, o, h, w, kernel, stride, padding, method", CASES)
def test_gradients_numerically(xp, c, o, h, w, kernel, stride, padding, method):
    """Central differences in float64 agree with every method's gradients to 1e-6."""
    errors = conv_gradient_errors(xp, *make_inputs(c, o, h, w, kernel, seed=2), stride, padding, method)
    assert set(errors) == {"x", "weight", "bias"}
    assert max(errors.values()) <= 1e-6, errors


@pytest.mark.parametrize("method", ["reference", "im2col", "shift", "stacked"])
def test_gradients_numerically_without_bias(xp, method):
    """Without a bias, dbias is None and the other gradients are still right."""
    x, weight, _ = make_inputs(3, 5, 7, 9, 3, seed=3, bias=False)
    errors = conv_gradient_errors(xp, x, weight, None, 1, 1, method)
    assert max(errors.values()) <= 1e-6, errors
    _, cache = conv2d(xp.asarray(x), xp.asarray(weight), None, 1, 1, method)
    assert conv2d_backward(xp.ones((2, 5, 7, 9)), cache)[2] is None


@pytest.mark.parametrize("method", ["reference", "im2col", "shift", "stacked", "pointwise"])
def test_float32_stays_float32(xp, method):
    """A float32 input and weight give float32 output and gradients (no silent float64)."""
    x, weight, bias = make_inputs(3, 4, 6, 5, 1, dtype=np.float32)
    y, cache = conv2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), 1, 1, method)
    assert y.dtype == np.float32
    for grad in conv2d_backward(xp.ones(y.shape, dtype=np.float32), cache):
        assert grad.dtype == np.float32


@pytest.mark.parametrize("method", ["reference", "im2col", "shift", "stacked", "pointwise"])
def test_backward_leaves_dy_and_input_alone(xp, method):
    """Neither pass writes into its arguments: x, weight and dy are unchanged afterwards."""
    x, weight, bias = make_inputs(3, 4, 6, 5, 1)
    xs, ws, bs = xp.asarray(x), xp.asarray(weight), xp.asarray(bias)
    y, cache = conv2d(xs, ws, bs, 1, 0, method)
    dy_host = np.random.default_rng(6).standard_normal(y.shape)
    dy = xp.asarray(dy_host)
    conv2d_backward(dy, cache)
    conv2d_backward(dy, cache)
    np.testing.assert_array_equal(to_numpy(dy), dy_host)
    np.testing.assert_array_equal(to_numpy(xs), x)
    np.testing.assert_array_equal(to_numpy(ws), weight)
    np.testing.assert_array_equal(to_numpy(bs), bias)


@pytest.mark.parametrize(
    "kernel, padding, method",
    [(3, 0, "reference"), (3, 1, "reference"), (3, 0, "im2col"), (3, 1, "im2col"), (3, 0, "shift"),
     (3, 1, "stacked"), (1, 0, "pointwise"), (1, 1, "pointwise")],
)
def test_strided_views_give_the_same_result(xp, kernel, padding, method):
    """A non-contiguous input (a strided, flipped view) and a Fortran-ordered dy give the same output
    and gradients as contiguous copies: no method assumes a memory layout it does not make itself."""
    rng = np.random.default_rng(11)
    big = xp.asarray(rng.standard_normal((2, 6, 9, 11)))
    x = big[:, ::2, ::-1, 1:]
    weight = xp.asarray(rng.standard_normal((4, 3, kernel, kernel)))
    y, cache = conv2d(x, weight, None, 1, padding, method)
    y_ref, cache_ref = conv2d(xp.ascontiguousarray(x), weight, None, 1, padding, method)
    dy = xp.asarray(rng.standard_normal(y.shape))
    grads = conv2d_backward(xp.asfortranarray(dy), cache)
    grads_ref = conv2d_backward(dy, cache_ref)
    np.testing.assert_allclose(to_numpy(y), to_numpy(y_ref), rtol=1e-12, atol=1e-12)
    for got, expected in zip(grads[:2], grads_ref[:2]):
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("input_grad, weight_grad", [(True, False), (False, True), (False, False)])
def test_backward_skips_unwanted_gradients(xp, input_grad, weight_grad):
    """input_grad=False gives dx None; weight_grad=False gives dweight and dbias None; the rest is unchanged."""
    x, weight, bias = make_inputs(3, 5, 7, 9, 3)
    y, cache = conv2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), 1, 1)
    dy = xp.asarray(np.random.default_rng(7).standard_normal(y.shape))
    full = conv2d_backward(dy, cache)
    dx, dweight, dbias = conv2d_backward(dy, cache, input_grad=input_grad, weight_grad=weight_grad)
    assert (dx is None) is (not input_grad)
    assert (dweight is None) is (not weight_grad) and (dbias is None) is (not weight_grad)
    for got, expected in zip((dx, dweight, dbias), full):
        if got is not None:
            np.testing.assert_array_equal(to_numpy(got), to_numpy(expected))


def test_output_size_hand_computed():
    """floor((size + 2 padding - kernel) / stride) + 1: 7 -> 7 (3x3 pad 1), 13 -> 7 (stride 2),
    500 -> 698 (conv1_1's pad 100), 9 -> 3 (kernel 2 stride 3 leaves the last row unused)."""
    assert conv_output_size(7, 3, 1, 1) == 7
    assert conv_output_size(13, 3, 2, 1) == 7
    assert conv_output_size(500, 3, 1, 100) == 698
    assert conv_output_size(9, 2, 3, 0) == 3


@pytest.mark.parametrize(
    "c, o, h, w, kernel, stride, padding", [(3, 5, 7, 9, 3, 1, 1), (3, 5, 13, 11, 3, 2, 1), (5, 3, 7, 9, 1, 1, 0)]
)
def test_auto_equals_explicit_methods(xp, c, o, h, w, kernel, stride, padding):
    """method='auto' gives the same result as the method it stands for."""
    x, weight, bias = make_inputs(c, o, h, w, kernel)
    args = (xp.asarray(x), xp.asarray(weight), xp.asarray(bias), stride, padding)
    y_auto, cache = conv2d(*args)
    assert cache.method in applicable_methods(kernel, stride) and cache.method != "reference"
    y_explicit, _ = conv2d(*args, method=cache.method)
    np.testing.assert_array_equal(to_numpy(y_auto), to_numpy(y_explicit))


def test_wrong_channel_count_names_both_shapes(xp):
    """An input with 4 channels for a weight expecting 3 is a ValueError naming both shapes."""
    x, weight, _ = make_inputs(4, 5, 7, 9, 3)
    with pytest.raises(ValueError, match=r"4 channels.*\(2, 4, 7, 9\).*expects 3.*\(5, 3, 3, 3\)"):
        conv2d(xp.asarray(x), xp.asarray(weight[:, :3]))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_non_floating_input_is_rejected(xp, dtype):
    """Integer or boolean images are refused rather than silently promoted."""
    x = xp.ones((1, 3, 5, 5), dtype=dtype)
    with pytest.raises(ValueError, match=rf"floating-point.*{np.dtype(dtype).name}"):
        conv2d(x, xp.ones((2, 3, 3, 3), np.float32))


def test_bad_shapes_and_options_are_rejected(xp):
    """Wrong ranks, bias shape, method, stride and too-small inputs each raise ValueError saying why."""
    x = xp.ones((2, 3, 7, 9), np.float32)
    weight = xp.ones((5, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 7, 9\)"):
        conv2d(x[0], weight)
    with pytest.raises(ValueError, match=r"\(O, C, kh, kw\).*\(3, 3, 3\)"):
        conv2d(x, weight[0])
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        conv2d(x, weight, xp.ones(4, np.float32))
    with pytest.raises(ValueError, match="1x1 kernel.*\\(3, 3\\)"):
        conv2d(x, weight, method="pointwise")
    with pytest.raises(ValueError, match="stride 1.*\\(2, 2\\)"):
        conv2d(x, weight, stride=2, method="shift")
    with pytest.raises(ValueError, match="stride 1.*\\(2, 2\\)"):
        conv2d(x, weight, stride=2, method="stacked")
    with pytest.raises(ValueError, match="stride 1.*\\(2, 2\\)"):
        conv2d(x, weight, stride=2, method="winograd")
    with pytest.raises(ValueError, match="fft"):
        conv2d(x, weight, method="fft")
    with pytest.raises(ValueError, match="stride must be at least 1"):
        conv2d(x, weight, stride=0)
    with pytest.raises(ValueError, match=r"\(2, 2\) is too small.*\(3, 3\) kernel"):
        conv2d(xp.ones((1, 3, 2, 2), np.float32), weight)


# (N, C, O, H, W, kernel, stride, padding, method) as found in FCN-8s, scaled to run in seconds.
TORCH_CASES = {
    "64to64-64x64-reference": (2, 64, 64, 64, 64, 3, 1, 1, "reference"),
    "64to64-64x64-im2col": (2, 64, 64, 64, 64, 3, 1, 1, "im2col"),
    "64to64-64x64-shift": (2, 64, 64, 64, 64, 3, 1, 1, "shift"),
    "64to64-64x64-stacked": (2, 64, 64, 64, 64, 3, 1, 1, "stacked"),
    "512to512-22x22": (1, 512, 512, 22, 22, 3, 1, 1, "auto"),
    "512to512-22x22-shift": (1, 512, 512, 22, 22, 3, 1, 1, "shift"),
    "conv1_1-pad100": (1, 3, 64, 37, 41, 3, 1, 100, "auto"),
    "fc6-like-7x7": (1, 512, 256, 9, 9, 7, 1, 0, "auto"),
    "fc6-like-7x7-pad3": (1, 512, 64, 9, 9, 7, 1, 3, "shift"),
    "fc6-like-7x7-pad3-stacked": (3, 128, 32, 3, 3, 7, 1, 3, "stacked"),
    "fc6-like-7x7-pad3-batch": (3, 128, 32, 3, 3, 7, 1, 3, "auto"),
    "score-1x1": (2, 512, 21, 22, 22, 1, 1, 0, "pointwise"),
    "stride2": (2, 64, 32, 33, 31, 3, 2, 1, "im2col"),
    "stride2-reference": (2, 64, 32, 33, 31, 3, 2, 1, "reference"),
    "fc6-like-7x7-reference": (1, 512, 256, 9, 9, 7, 1, 0, "reference"),
}


@pytest.mark.torch
@pytest.mark.parametrize("n, c, o, h, w, kernel, stride, padding, method", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_matches_torch(xp, torch, n, c, o, h, w, kernel, stride, padding, method):
    """Forward, dx, dweight and dbias equal torch.nn.functional.conv2d in float32 to 1e-5."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    weight = rng.standard_normal((o, c, kernel, kernel), dtype=np.float32) * np.float32(np.sqrt(2 / (c * kernel**2)))
    bias = rng.standard_normal(o, dtype=np.float32)
    y, cache = conv2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), stride, padding, method)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx, dweight, dbias = conv2d_backward(xp.asarray(dy), cache)

    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, weight, bias))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    ty.backward(torch.from_numpy(dy))
    pairs = (("y", y, ty), ("dx", dx, tx.grad), ("dweight", dweight, tw.grad), ("dbias", dbias, tb.grad))
    for name, got, expected in pairs:
        assert got.dtype == np.float32, name
        assert relative_error(got, expected.detach().numpy()) <= 1e-5, name
