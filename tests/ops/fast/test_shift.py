"""Tests for minifcn.ops.fast.shift beyond its equality with the reference (test_equal_to_reference.py):
the banded weight gradient equals the per-offset one, and the forward pass's bands the reference."""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv import conv2d, conv2d_backward
from minifcn.ops.fast import shift


@pytest.mark.parametrize("band_bytes", [1, 3 * 9 * 11 * 8 * 2])
def test_weight_gradient_by_bands_equals_by_offsets(xp, monkeypatch, band_bytes):
    """shift's weight gradient stacks the shifted views a band of rows at a time when the channels are
    few, and takes one product per offset otherwise; both forms give the same gradient, whatever the
    band height (1 byte forces one row per band; the other value two rows, leaving a shorter last band)."""
    rng = np.random.default_rng(12)
    x, weight = xp.asarray(rng.standard_normal((2, 3, 7, 9))), xp.asarray(rng.standard_normal((5, 3, 3, 3)))
    y, cache = conv2d(x, weight, None, 1, 1, "shift")
    dy = xp.asarray(np.random.default_rng(13).standard_normal(y.shape))
    monkeypatch.setattr(shift, "STACK_MAX_ROWS", 0)
    by_offsets = conv2d_backward(dy, cache, input_grad=False)[1]
    monkeypatch.setattr(shift, "STACK_MAX_ROWS", 3 * 9)
    monkeypatch.setattr(shift, "BAND_BYTES", band_bytes)
    by_bands = conv2d_backward(dy, cache, input_grad=False)[1]
    assert relative_error(by_bands, by_offsets) <= 1e-12


@pytest.mark.parametrize("band_bytes", [1, 2 * 2 * 5 * 11 * 8 * 3])
def test_forward_by_bands_equals_the_reference(xp, monkeypatch, band_bytes):
    """The forward pass sums its products a band of output rows at a time: one row per band (1 byte),
    or three rows of the 7, leaving a last band of one; the output is the reference's."""
    monkeypatch.setattr(shift, "SUM_BAND_BYTES", band_bytes)
    rng = np.random.default_rng(14)
    x, weight = xp.asarray(rng.standard_normal((2, 3, 7, 9))), xp.asarray(rng.standard_normal((5, 3, 3, 3)))
    bias = xp.asarray(rng.standard_normal(5))
    y, _ = conv2d(x, weight, bias, 1, 1, "shift")
    want, _ = conv2d(x, weight, bias, 1, 1, "reference")
    assert relative_error(y, want) <= 1e-12
