"""Tests for minifcn.ops.fast.subpixel: the transposed convolution with a kernel a whole multiple of
its stride, as a stride-1 convolution and a pixel shuffle, against the reference method."""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward
from minifcn.ops.fast import subpixel
from minifcn.ops.fast.choose import SUBPIXEL_MIN_PIXELS, choose_transposed_method

# (N, Cin, Cout, H, W, kernel, stride, padding): FCN's upsamplings by 2 and by 8 (cropped and not),
# a kernel equal to its stride, non-square kernels and strides, a stride of 1 along one axis.
SHAPES = {
    "k4s2p1-upsampling-by-2": (2, 3, 4, 5, 6, 4, 2, 1),
    "k16s8p4-upsampling-by-8": (2, 3, 2, 4, 3, 16, 8, 4),
    "k16s8p0-uncropped": (1, 2, 3, 3, 4, 16, 8, 0),
    "k2s2p0-kernel-equals-stride": (2, 3, 3, 4, 5, 2, 2, 0),
    "k4x9s2x3p1x2-non-square": (2, 2, 3, 5, 4, (4, 9), (2, 3), (1, 2)),
    "k4x3s2x1p0x1-stride-1-across": (1, 3, 2, 4, 6, (4, 3), (2, 1), (0, 1)),
}
FLAGS = [(True, True), (False, True), (True, False)]


@pytest.mark.parametrize("input_grad, weight_grad", FLAGS)
@pytest.mark.parametrize("name", SHAPES)
def test_equals_the_reference(xp, name, input_grad, weight_grad):
    """Output, dx, dweight and dbias of method="subpixel" equal the reference method's (float64)."""
    n, cin, cout, h, w, kernel, stride, padding = SHAPES[name]
    kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    rng = np.random.default_rng(5)
    x = xp.asarray(rng.standard_normal((n, cin, h, w)))
    weight = xp.asarray(rng.standard_normal((cin, cout) + kernel))
    bias = xp.asarray(rng.standard_normal(cout))

    def run(method):
        y, cache = conv_transpose2d(x, weight, bias, stride, padding, method)
        assert cache.method == method
        dy = xp.asarray(np.random.default_rng(6).standard_normal(y.shape))
        return (y,) + conv_transpose2d_backward(dy, cache, input_grad=input_grad, weight_grad=weight_grad)

    for got, want in zip(run("subpixel"), run("reference")):
        if want is None:
            assert got is None
        else:
            assert got.shape == want.shape
            assert relative_error(got, want) <= 1e-12


def test_applies_to_kernels_that_are_multiples_of_a_stride_above_one():
    assert subpixel.applies((16, 16), (8, 8)) and subpixel.applies((4, 3), (2, 1))
    assert not subpixel.applies((3, 3), (2, 2))  # 3 is no multiple of 2
    assert not subpixel.applies((3, 3), (1, 1))  # stride 1: an ordinary convolution
    with pytest.raises(ValueError, match="multiple of a stride"):
        conv_transpose2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), stride=2, method="subpixel")


def test_shuffles_put_each_phase_in_its_place():
    """depth_to_space puts phase (r, t) of a channel at row 2i + r, column 2j + t (by hand); space_to_depth
    undoes it; the phase weight and its adjoint give back the weight."""
    phases = np.arange(2 * 4 * 1 * 2).reshape(1, 2 * 4, 1, 2)  # channels (o, r, t), one row, two columns
    maps = subpixel.depth_to_space(phases, 2, (2, 2))
    np.testing.assert_array_equal(maps[0, 0], [[0, 2, 1, 3], [4, 6, 5, 7]])
    np.testing.assert_array_equal(maps[0, 1], [[8, 10, 9, 11], [12, 14, 13, 15]])
    np.testing.assert_array_equal(subpixel.space_to_depth(np.ascontiguousarray(maps), (2, 2)), phases)
    weight = np.random.default_rng(7).standard_normal((3, 2, 4, 6))
    phase = subpixel.phase_weight(weight, (2, 3))
    assert phase.shape == (2 * 2 * 3, 3, 2, 2)
    assert phase[1 * 6 + 1 * 3 + 2, 2, 1, 0] == weight[2, 1, 0 * 2 + 1, 1 * 3 + 2]  # tap (q, p) = (0, 1) flipped
    np.testing.assert_array_equal(subpixel.weight_from_phases(phase, weight.shape, (2, 3)), weight)


def test_choose_takes_subpixel_for_large_outputs_on_the_cpu():
    """The default model's upsampling by 8 (4 maps of 12x12 to 104x104 before the crop) takes subpixel;
    its upsampling by 2 of a 3x3 map, a kernel no multiple of its stride and arrays on a GPU do not.
    The threshold counts the padded output's pixels over the batch."""
    assert choose_transposed_method((4, 6, 12, 12), 6, (16, 16), (8, 8), (104, 104), 4) == "subpixel"
    assert choose_transposed_method((4, 6, 3, 3), 6, (4, 4), (2, 2), (8, 8), 4) == "im2col"
    assert choose_transposed_method((4, 6, 12, 12), 6, (3, 3), (2, 2), (25, 25), 4) == "im2col"
    side = int(np.ceil(np.sqrt(SUBPIXEL_MIN_PIXELS)))
    assert choose_transposed_method((1, 6, side, side), 6, (2, 2), (1, 2), (side + 1, 2 * side), 4) == "subpixel"
    assert choose_transposed_method((1, 6, 3, 3), 6, (4, 4), (2, 2), (1, SUBPIXEL_MIN_PIXELS - 1), 4) == "im2col"

    class OtherArrays:  # stands for CuPy: any module but NumPy
        pass

    assert choose_transposed_method((4, 6, 12, 12), 6, (16, 16), (8, 8), (104, 104), 4, xp=OtherArrays) == "gathered"
