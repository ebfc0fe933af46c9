"""Tests for minifcn.ops.conv_transpose: transposed convolution (FCN's upsampling), forward and backward.

References: a naive loop that stamps the kernel once per input pixel (float64), numerical gradients,
the adjoint identity with conv2d, the reference method, and torch.nn.functional.conv_transpose2d.
"""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_gradients, relative_error
from minifcn.layers.bilinear import bilinear_kernel
from minifcn.ops.conv import conv2d
from minifcn.ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward, conv_transpose_output_size


def applicable_methods(kernel, stride):
    methods = ["reference", "im2col"]
    if stride == 1:
        methods += ["shift", "stacked"]
    if kernel == 1:
        methods.append("pointwise")
    return methods


# (Cin, Cout, H, W, kernel, stride, padding): FCN's kernel 4 stride 2 and kernel 16 stride 8, with
# and without padding, overlapping and non-overlapping stamps, odd maps and channel counts.
GEOMETRIES = {
    "k4s2p0-4x3": (3, 5, 4, 3, 4, 2, 0),
    "k4s2p1-5x4": (3, 5, 5, 4, 4, 2, 1),
    "k3s1p1-7x9": (3, 5, 7, 9, 3, 1, 1),
    "k3s2p1-4x5": (5, 3, 4, 5, 3, 2, 1),
    "k2s2p0-4x5": (5, 3, 4, 5, 2, 2, 0),
    "k5s3p2-3x4": (3, 2, 3, 4, 5, 3, 2),
    "k1s1p0-7x9": (3, 5, 7, 9, 1, 1, 0),
    "k1s2p0-5x4": (3, 5, 5, 4, 1, 2, 0),
    "k16s8p0-3x2": (2, 3, 3, 2, 16, 8, 0),
    "k16s8p4-2x3": (3, 2, 2, 3, 16, 8, 4),
}

CASES = [
    pytest.param(*geometry, method, id=f"{name}-{method}")
    for name, geometry in GEOMETRIES.items()
    for method in applicable_methods(geometry[4], geometry[5])
]


def make_inputs(cin, cout, h, w, kernel, seed=0, n=2, dtype=np.float64, bias=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w)).astype(dtype)
    weight = rng.standard_normal((cin, cout, kernel, kernel)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, weight, b


def naive_conv_transpose2d(x, weight, bias, stride, padding):
    """Stamp weight[c] scaled by x[n, c, i, j] at (stride i, stride j), then crop the padding."""
    n, _, h, w = x.shape
    _, cout, k, _ = weight.shape
    full = np.zeros((n, cout, (h - 1) * stride + k, (w - 1) * stride + k))
    for b in range(n):
        for c in range(x.shape[1]):
            for i in range(h):
                for j in range(w):
                    full[b, :, stride * i : stride * i + k, stride * j : stride * j + k] += x[b, c, i, j] * weight[c]
    y = full[:, :, padding : full.shape[2] - padding, padding : full.shape[3] - padding]
    return y + (0.0 if bias is None else bias.reshape(1, -1, 1, 1))


def naive_conv_transpose2d_backward(dy, x, weight, stride, padding):
    """(dx, dweight, dbias): each input pixel collects the gradient of the stamp it made."""
    n, _, h, w = x.shape
    k = weight.shape[2]
    full = np.pad(dy, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dx = np.zeros_like(x)
    dweight = np.zeros_like(weight)
    for b in range(n):
        for c in range(x.shape[1]):
            for i in range(h):
                for j in range(w):
                    stamp = full[b, :, stride * i : stride * i + k, stride * j : stride * j + k]
                    dx[b, c, i, j] = (stamp * weight[c]).sum()
                    dweight[c] += x[b, c, i, j] * stamp
    return dx, dweight, dy.sum(axis=(0, 2, 3))


@pytest.mark.parametrize("cin, cout, h, w, kernel, stride, padding, method", CASES)
def test_forward_and_backward_match_naive_loop(xp, cin, cout, h, w, kernel, stride, padding, method):
    """Output and all three gradients equal the stamp-by-stamp loop, for every method."""
    x, weight, bias = make_inputs(cin, cout, h, w, kernel)
    y, cache = conv_transpose2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), stride, padding, method)
    expected = naive_conv_transpose2d(x, weight, bias, stride, padding)
    assert y.shape == expected.shape
    assert y.shape[2:] == (
        conv_transpose_output_size(h, kernel, stride, padding),
        conv_transpose_output_size(w, kernel, stride, padding),
    )
    assert relative_error(y, expected) <= 1e-12
    dy = np.random.default_rng(1).standard_normal(y.shape)
    grads = conv_transpose2d_backward(xp.asarray(dy), cache)
    for got, want in zip(grads, naive_conv_transpose2d_backward(dy, x, weight, stride, padding)):
        assert got.shape == want.shape
        assert relative_error(got, want) <= 1e-12


def transpose_gradient_errors(xp, x, weight, bias, stride, padding, method, directional=()):
    arrays = {"x": xp.asarray(x), "weight": xp.asarray(weight)}
    if bias is not None:
        arrays["bias"] = xp.asarray(bias)
    state = {}

    def forward():
        y, state["cache"] = conv_transpose2d(arrays["x"], arrays["weight"], arrays.get("bias"), stride, padding, method)
        return y

    def backward(dy):
        dx, dweight, dbias = conv_transpose2d_backward(dy, state["cache"])
        return {"x": dx, "weight": dweight, "bias": dbias}

    return check_gradients(forward, backward, arrays, directional=directional)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("cin, cout, h, w, kernel, stride, padding, method", CASES)
def test_gradients_numerically(xp, cin, cout, h, w, kernel, stride, padding, method, bias):
    """Central differences in float64 agree with every method's gradients to 1e-6, with and without bias.

    The kernel-16 weights (1,536 numbers) are checked along a random direction; the next test checks
    a single-channel kernel 16 element by element."""
    x, weight, b = make_inputs(cin, cout, h, w, kernel, seed=2, bias=bias)
    directional = ("weight",) if kernel == 16 else ()
    errors = transpose_gradient_errors(xp, x, weight, b, stride, padding, method, directional)
    assert set(errors) == ({"x", "weight", "bias"} if bias else {"x", "weight"})
    assert max(errors.values()) <= 1e-6, errors


@pytest.mark.parametrize("padding", [0, 4])
def test_kernel16_weight_gradient_element_by_element(padding):
    """Every one of the 256 kernel-16 weights gets the right gradient (stride 8, 2x3 map)."""
    x, weight, bias = make_inputs(1, 1, 2, 3, 16, seed=3, n=2)
    errors = transpose_gradient_errors(np, x, weight, bias, 8, padding, "im2col")
    assert max(errors.values()) <= 1e-6, errors


@pytest.mark.parametrize("cin, cout, h, w, kernel, stride, padding, method", CASES)
def test_is_the_adjoint_of_conv2d(xp, cin, cout, h, w, kernel, stride, padding, method):
    """<conv_transpose(x, W), y> == <x, conv2d(y, W)> with the same weight, stride and padding."""
    x, weight, _ = make_inputs(cin, cout, h, w, kernel, seed=4)
    up, _ = conv_transpose2d(xp.asarray(x), xp.asarray(weight), None, stride, padding, method)
    y = np.random.default_rng(5).standard_normal(up.shape)
    down, _ = conv2d(xp.asarray(y), xp.asarray(weight), None, stride, padding)
    assert down.shape == x.shape
    assert float((to_numpy(up) * y).sum()) == pytest.approx(float((x * to_numpy(down)).sum()), rel=1e-12)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize(
    "cin, cout, h, w, kernel, stride, padding", [(5, 7, 9, 11, 3, 1, 1), (5, 7, 9, 11, 1, 1, 0), (7, 4, 6, 5, 5, 1, 0)]
)
def test_methods_agree(xp, cin, cout, h, w, kernel, stride, padding, dtype, tolerance):
    """im2col, shift, stacked and pointwise (where each applies) give the reference's output and gradients."""
    x, weight, bias = make_inputs(cin, cout, h, w, kernel, seed=6, dtype=dtype)
    results = {}
    dy = None
    for method in applicable_methods(kernel, stride):
        y, cache = conv_transpose2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), stride, padding, method)
        if dy is None:
            dy = xp.asarray(np.random.default_rng(7).standard_normal(y.shape).astype(dtype))
        results[method] = (y,) + conv_transpose2d_backward(dy, cache)
    reference = results.pop("reference")
    assert results
    for method, outputs in results.items():
        for name, got, expected in zip(("y", "dx", "dweight", "dbias"), outputs, reference):
            assert got.dtype == dtype, (method, name)
            assert relative_error(got, expected) <= tolerance, (method, name)


@pytest.mark.parametrize("input_grad, weight_grad", [(True, False), (False, True)])
def test_backward_skips_unwanted_gradients(xp, input_grad, weight_grad):
    """input_grad=False gives dx None; weight_grad=False gives dweight and dbias None."""
    x, weight, bias = make_inputs(3, 5, 4, 3, 4)
    y, cache = conv_transpose2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), 2, 1)
    dy = xp.asarray(np.random.default_rng(8).standard_normal(y.shape))
    full = conv_transpose2d_backward(dy, cache)
    dx, dweight, dbias = conv_transpose2d_backward(dy, cache, input_grad=input_grad, weight_grad=weight_grad)
    assert (dx is None) is (not input_grad)
    assert (dweight is None) is (not weight_grad) and (dbias is None) is (not weight_grad)
    for got, expected in zip((dx, dweight, dbias), full):
        if got is not None:
            np.testing.assert_array_equal(to_numpy(got), to_numpy(expected))


@pytest.mark.parametrize("method", ["im2col", "subpixel"])
def test_weight_grad_added_into_a_layers_gradient(xp, method):
    """``weight_grad_into`` gets the naive loop's dweight added to what it held; dweight is then None."""
    x, weight, bias = make_inputs(3, 5, 4, 3, 4)
    y, cache = conv_transpose2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), 2, 1, method)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    held = np.random.default_rng(10).standard_normal(weight.shape)
    into = xp.asarray(held.copy())
    dx, dweight, dbias = conv_transpose2d_backward(xp.asarray(dy), cache, weight_grad_into=into)
    dx_want, dweight_want, dbias_want = naive_conv_transpose2d_backward(dy, x, weight, 2, 1)
    assert dweight is None
    assert relative_error(into, held + dweight_want) <= 1e-12
    assert relative_error(dx, dx_want) <= 1e-12 and relative_error(dbias, dbias_want) <= 1e-12


def test_backward_leaves_dy_and_input_alone(xp):
    """Backward (twice) writes into neither dy nor the cached input and weight."""
    x, weight, bias = make_inputs(3, 5, 4, 3, 4)
    xs, ws = xp.asarray(x), xp.asarray(weight)
    y, cache = conv_transpose2d(xs, ws, xp.asarray(bias), 2, 1)
    dy_host = np.random.default_rng(9).standard_normal(y.shape)
    dy = xp.asarray(dy_host)
    first = conv_transpose2d_backward(dy, cache)
    second = conv_transpose2d_backward(dy, cache)
    np.testing.assert_array_equal(to_numpy(dy), dy_host)
    np.testing.assert_array_equal(to_numpy(xs), x)
    np.testing.assert_array_equal(to_numpy(ws), weight)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_output_size_hand_computed():
    """(H - 1) * stride + kernel - 2 * padding: kernel 4 stride 2 pad 1 doubles (11 -> 22); FCN's
    upscore2 on a 22x22 score map gives 46; upscore8 (kernel 16 stride 8) on 69 gives 560."""
    assert conv_transpose_output_size(11, 4, 2, 1) == 22
    assert conv_transpose_output_size(22, 4, 2, 0) == 46
    assert conv_transpose_output_size(69, 16, 8, 0) == 560


def test_wrong_channel_count_names_both_shapes(xp):
    """A 4-channel input for a weight (3, 5, 4, 4) is a ValueError naming both shapes."""
    with pytest.raises(ValueError, match=r"4 channels.*\(2, 4, 5, 5\).*expects 3.*\(3, 5, 4, 4\)"):
        conv_transpose2d(xp.ones((2, 4, 5, 5), np.float32), xp.ones((3, 5, 4, 4), np.float32), stride=2)


def test_bad_inputs_are_rejected(xp):
    """Integer input, wrong bias shape and a padding that leaves nothing each raise ValueError."""
    weight = xp.ones((3, 5, 4, 4), np.float32)
    with pytest.raises(ValueError, match="floating-point.*int32"):
        conv_transpose2d(xp.ones((1, 3, 5, 5), np.int32), weight)
    with pytest.raises(ValueError, match=r"\(5,\).*\(3,\)"):
        conv_transpose2d(xp.ones((1, 3, 5, 5), np.float32), weight, xp.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 5, 5\)"):
        conv_transpose2d(xp.ones((3, 5, 5), np.float32), weight)
    with pytest.raises(ValueError, match="padding"):
        conv_transpose2d(xp.ones((1, 3, 1, 1), np.float32), weight, padding=2)


# (N, Cin, Cout, H, W, kernel, stride, padding, bilinear, bias) as in FCN-8s and variants.
TORCH_CASES = {
    "upscore2-21-k4s2-bilinear": (1, 21, 21, 22, 22, 4, 2, 0, True, False),
    "upscore8-21-k16s8-bilinear": (1, 21, 21, 35, 35, 16, 8, 0, True, False),
    "k16s8-random-bias": (2, 21, 21, 9, 11, 16, 8, 4, False, True),
    "k4s2p1-random-bias": (2, 8, 5, 13, 11, 4, 2, 1, False, True),
    "k3s1p1-random": (2, 16, 8, 17, 15, 3, 1, 1, False, True),
}


@pytest.mark.torch
@pytest.mark.parametrize(
    "n, cin, cout, h, w, kernel, stride, padding, bilinear, bias", TORCH_CASES.values(), ids=TORCH_CASES.keys()
)
def test_matches_torch(xp, torch, n, cin, cout, h, w, kernel, stride, padding, bilinear, bias):
    """Forward, dx, dweight (and dbias) equal torch.nn.functional.conv_transpose2d in float32 to 1e-5."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((n, cin, h, w), dtype=np.float32)
    if bilinear:
        weight = bilinear_kernel(cin, kernel)
    else:
        weight = rng.standard_normal((cin, cout, kernel, kernel), dtype=np.float32)
    b = rng.standard_normal(cout, dtype=np.float32) if bias else None
    bias_array = None if b is None else xp.asarray(b)
    y, cache = conv_transpose2d(xp.asarray(x), xp.asarray(weight), bias_array, stride, padding)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx, dweight, dbias = conv_transpose2d_backward(xp.asarray(dy), cache)

    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(weight).requires_grad_()
    tb = None if b is None else torch.from_numpy(b).requires_grad_()
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, stride=stride, padding=padding)
    ty.backward(torch.from_numpy(dy))
    pairs = [("y", y, ty), ("dx", dx, tx.grad), ("dweight", dweight, tw.grad)]
    if bias:
        pairs.append(("dbias", dbias, tb.grad))
    else:
        assert dbias is None
    for name, got, expected in pairs:
        assert got.dtype == np.float32, name
        assert got.shape == tuple(expected.shape), name
        assert relative_error(got, expected.detach().numpy()) <= 1e-5, name
