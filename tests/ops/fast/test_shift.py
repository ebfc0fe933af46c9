"""Tests for minifcn.ops.fast.shift: shift (stride 1), kh*kw shifted matrix products.

It must compute what the reference method computes (see reference_check.py)."""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv import conv2d, conv2d_backward
from minifcn.ops.fast import shift

from .reference_check import (
    FLAGS,
    SHAPES,
    assert_conv_equals_reference,
    assert_transpose_equals_reference,
    shapes_for,
)

METHOD = "shift"


@pytest.mark.parametrize("input_grad, weight_grad", FLAGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", shapes_for(METHOD))
def test_conv_equals_reference(xp, name, dtype, input_grad, weight_grad):
    """Output, dx, dweight and dbias equal the reference's, with either gradient left out."""
    assert_conv_equals_reference(xp, METHOD, SHAPES[name], dtype, input_grad, weight_grad)


@pytest.mark.parametrize("input_grad, weight_grad", FLAGS)
@pytest.mark.parametrize("name", shapes_for(METHOD))
def test_transpose_equals_reference(xp, name, input_grad, weight_grad):
    """As a transposed convolution (input and output exchanged) it equals the reference too."""
    assert_transpose_equals_reference(xp, METHOD, SHAPES[name], np.float64, input_grad, weight_grad)


@pytest.mark.parametrize("band_bytes", [1, 3 * 9 * 11 * 8 * 2])
def test_weight_gradient_by_bands_equals_by_offsets(xp, monkeypatch, band_bytes):
    """shift's weight gradient stacks the shifted views a band of rows at a time when the channels are
    few, and takes one product per offset otherwise; both forms give the same gradient, whatever the
    band height (1 byte forces one row per band; the other value two rows, leaving a shorter last band)."""
    rng = np.random.default_rng(12)
    x, weight = xp.asarray(rng.standard_normal((2, 3, 7, 9))), xp.asarray(rng.standard_normal((5, 3, 3, 3)))
    y, cache = conv2d(x, weight, None, 1, 1, METHOD)
    dy = xp.asarray(np.random.default_rng(13).standard_normal(y.shape))
    monkeypatch.setattr(shift, "STACK_MAX_ROWS", 0)
    by_offsets = conv2d_backward(dy, cache, input_grad=False)[1]
    monkeypatch.setattr(shift, "STACK_MAX_ROWS", 3 * 9)
    monkeypatch.setattr(shift, "BAND_BYTES", band_bytes)
    by_bands = conv2d_backward(dy, cache, input_grad=False)[1]
    assert relative_error(by_bands, by_offsets) <= 1e-12
