"""Tests for minifcn.ops.fast.im2col: im2col (any kernel and stride), the reference with its
weight-gradient product turned around.

It must compute what the reference method computes (see reference_check.py)."""

import numpy as np
import pytest

from .reference_check import (
    FLAGS,
    SHAPES,
    assert_conv_equals_reference,
    assert_transpose_equals_reference,
    shapes_for,
)

METHOD = "im2col"


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
