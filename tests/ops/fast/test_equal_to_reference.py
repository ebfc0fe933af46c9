"""Every fast convolution method (minifcn/ops/fast/) computes what the reference method computes.

``minifcn.ops.conv``'s reference method is itself tested against a naive loop and numerical
gradients (tests/ops/test_conv.py); here each fast method is compared with it on the same inputs,
as a convolution and as a transposed convolution, with every combination of frozen input and
frozen weight that a layer can ask for.
"""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv import conv2d, conv2d_backward
from minifcn.ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward
from minifcn.ops.fast import METHODS

# (N, C, O, H, W, kernel, stride, padding): batches of one and several images, odd maps and channel
# counts, strides and gaps between windows, padding larger than the kernel (as conv1_1's 100),
# non-square kernels, strides and paddings, kernels that are (or are not) whole multiples of the
# stride, as the upsamplings' 2x stride, fc6's 7x7 on a map smaller than the kernel, and enough
# channels (140 * 9 rows) that shift's weight gradient takes one product per offset.
SHAPES = {
    "k3s1p1-17x19": (2, 5, 7, 17, 19, 3, 1, 1),
    "k3s1p0-17x19": (2, 5, 7, 17, 19, 3, 1, 0),
    "k5s1p3-15x13": (2, 4, 6, 15, 13, 5, 1, 3),
    "k3s1p4-5x6-one-image": (1, 2, 3, 5, 6, 3, 1, 4),
    "k7s1p3-3x3-fc6-like": (3, 6, 4, 3, 3, 7, 1, 3),
    "k2x3s1p1x0-8x10": (2, 3, 4, 8, 10, (2, 3), 1, (1, 0)),
    "k3s1p1-140-channels": (2, 140, 6, 6, 5, 3, 1, 1),
    "k3s2p1-13x11": (2, 3, 5, 13, 11, 3, 2, 1),
    "k2s3p0-9x7": (2, 3, 4, 9, 7, 2, 3, 0),
    "k3x1s2x1p1x0-7x9": (2, 3, 5, 7, 9, (3, 1), (2, 1), (1, 0)),
    "k5s2p2-11x9": (2, 3, 4, 11, 9, 5, 2, 2),
    "k4s2p1-14x10-upsampling-by-2": (2, 3, 4, 14, 10, 4, 2, 1),
    "k16s8p4-32x24-upsampling-by-8": (2, 3, 2, 32, 24, 16, 8, 4),
    "k16s8p0-37x29-upsampling-by-8": (1, 2, 3, 37, 29, 16, 8, 0),
    "k3x2s2p1x0-9x9": (2, 3, 2, 9, 9, (3, 2), 2, (1, 0)),
    "k1s1p0-17x19": (2, 7, 5, 17, 19, 1, 1, 0),
    "k1s1p2-17x19": (2, 7, 5, 17, 19, 1, 1, 2),
    "k1s2p1-13x11": (3, 5, 3, 13, 11, 1, 2, 1),
    "k1x3s1p0x1-7x9": (2, 3, 5, 7, 9, (1, 3), 1, (0, 1)),
}

# (input_grad, weight_grad): a trained layer, a layer above frozen ones or on the image, a frozen layer.
FLAGS = [(True, True), (False, True), (True, False)]
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def handles(method, kernel, stride):
    """Whether ``method`` supports this geometry: pointwise needs a 1x1 kernel, shift and stacked stride 1,
    winograd a 3x3 kernel at stride 1."""
    if method == "pointwise":
        return pair(kernel) == (1, 1)
    if method == "winograd":
        return pair(kernel) == (3, 3) and pair(stride) == (1, 1)
    if method in ("shift", "stacked"):
        return pair(stride) == (1, 1)
    return True


def shapes_for(method):
    """The names of the SHAPES that ``method`` handles."""
    return [name for name, shape in SHAPES.items() if handles(method, shape[5], shape[6])]


def _random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _assert_same(results, expected, dtype, what):
    for name, got, want in zip(("y", "dx", "dweight", "dbias"), results, expected):
        if want is None:
            assert got is None, (what, name)
            continue
        assert got.dtype == dtype, (what, name)
        assert got.shape == want.shape, (what, name)
        assert relative_error(got, want) <= TOLERANCE[dtype], (what, name)


def assert_conv_equals_reference(xp, method, shape, dtype, input_grad, weight_grad):
    """conv2d and conv2d_backward with ``method`` equal the reference method's, for one SHAPES entry."""
    n, c, o, h, w, kernel, stride, padding = shape
    rng = np.random.default_rng(0)
    x = xp.asarray(_random(rng, (n, c, h, w), dtype))
    weight = xp.asarray(_random(rng, (o, c) + pair(kernel), dtype))
    bias = xp.asarray(_random(rng, (o,), dtype))

    def run(name):
        y, cache = conv2d(x, weight, bias, stride, padding, name)
        assert cache.method == name
        dy = xp.asarray(_random(np.random.default_rng(1), y.shape, dtype))
        return (y,) + conv2d_backward(dy, cache, input_grad=input_grad, weight_grad=weight_grad)

    _assert_same(run(method), run("reference"), dtype, f"conv2d {method}")


def assert_transpose_equals_reference(xp, method, shape, dtype, input_grad, weight_grad):
    """conv_transpose2d and its backward with ``method`` equal the reference method's. The SHAPES
    entry is read as the convolution whose adjoint this is: the transposed input is its output."""
    n, c, o, h, w, kernel, stride, padding = shape
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    in_hw = ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    rng = np.random.default_rng(2)
    x = xp.asarray(_random(rng, (n, o) + in_hw, dtype))
    weight = xp.asarray(_random(rng, (o, c, kh, kw), dtype))
    bias = xp.asarray(_random(rng, (c,), dtype))

    def run(name):
        y, cache = conv_transpose2d(x, weight, bias, stride, padding, name)
        assert cache.method == name
        dy = xp.asarray(_random(np.random.default_rng(3), y.shape, dtype))
        return (y,) + conv_transpose2d_backward(dy, cache, input_grad=input_grad, weight_grad=weight_grad)

    _assert_same(run(method), run("reference"), dtype, f"conv_transpose2d {method}")


# Every fast method with every shape it handles.
CASES = [(method, name) for method in sorted(METHODS) for name in shapes_for(method)]


@pytest.mark.parametrize("input_grad, weight_grad", FLAGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method, name", CASES)
def test_conv_equals_reference(xp, method, name, dtype, input_grad, weight_grad):
    """Output, dx, dweight and dbias equal the reference's, with either gradient left out."""
    assert_conv_equals_reference(xp, method, SHAPES[name], dtype, input_grad, weight_grad)


@pytest.mark.parametrize("input_grad, weight_grad", FLAGS)
@pytest.mark.parametrize("method, name", CASES)
def test_transpose_equals_reference(xp, method, name, input_grad, weight_grad):
    """As a transposed convolution (input and output exchanged) it equals the reference too."""
    assert_transpose_equals_reference(xp, method, SHAPES[name], np.float64, input_grad, weight_grad)
