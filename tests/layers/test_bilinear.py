"""Tests for minifcn.layers.bilinear: the reference's upsample_filt and the kernel FCN upsamples with."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.layers import ConvTranspose2d, bilinear_filter, bilinear_kernel


@pytest.mark.parametrize(
    "k, ramp",
    [
        # upsample_filt: factor = (k + 1) // 2, center = factor - 0.5 for even k (factor - 1 for odd),
        # ramp[t] = 1 - |t - center| / factor.
        (2, [0.5, 0.5]),  # factor 1, center 0.5
        (3, [0.5, 1.0, 0.5]),  # factor 2, center 1
        (4, [0.25, 0.75, 0.75, 0.25]),  # factor 2, center 1.5
        # factor 8, center 7.5: 1 - (7.5 - t) / 8 = (2t + 1) / 16 for t < 8, mirrored after.
        (16, [(2 * t + 1) / 16 for t in range(8)] + [(15 - 2 * t) / 16 for t in range(8)]),
    ],
)
def test_filter_is_the_outer_product_of_the_ramp(k, ramp):
    """bilinear_filter(k) is outer(ramp, ramp) with the ramp computed by hand from upsample_filt."""
    ramp = np.array(ramp)
    filt = bilinear_filter(k)
    assert filt.shape == (k, k) and filt.dtype == np.float32
    np.testing.assert_allclose(filt, np.outer(ramp, ramp), rtol=0, atol=1e-7)


def test_kernel_for_k4_by_hand():
    """For k = 4 the filter is outer([.25, .75, .75, .25]): corners 1/16, centre 9/16, edges 3/16."""
    filt = bilinear_filter(4)
    assert filt[0, 0] == 0.0625 and filt[1, 1] == 0.5625 and filt[0, 1] == 0.1875 and filt[1, 0] == 0.1875


@pytest.mark.parametrize("channels, k", [(1, 4), (5, 4), (21, 16), (3, 64)])
def test_kernel_is_diagonal(channels, k):
    """bilinear_kernel puts the filter on the channel diagonal and zeros everywhere else."""
    weight = bilinear_kernel(channels, k)
    assert weight.shape == (channels, channels, k, k) and weight.dtype == np.float32
    filt = bilinear_filter(k)
    for c in range(channels):
        for d in range(channels):
            if c == d:
                np.testing.assert_array_equal(weight[c, d], filt)
            else:
                assert not weight[c, d].any()


def upsample(xp, x, stride, padding):
    layer = ConvTranspose2d(x.shape[1], x.shape[1], 2 * stride, stride, padding)
    layer.to("cpu" if xp is np else "gpu")
    return to_numpy(layer.forward(xp.asarray(x)))


# (stride, padding): FCN's kernel 4 stride 2 (padded to double exactly, and unpadded as upscore2),
# and kernel 16 stride 8 (upscore8).
UPSAMPLINGS = [(2, 1), (2, 0), (8, 4), (8, 0)]


def interior(y, stride, padding, h, w):
    """The output pixels that receive two stamps on each axis: [s - p, s H - p) (outside it the
    stamps of the border pixels are cut short)."""
    return y[..., stride - padding : stride * h - padding, stride - padding : stride * w - padding]


@pytest.mark.parametrize("stride, padding", UPSAMPLINGS)
def test_constant_map_stays_constant(xp, stride, padding):
    """Each channel's constant comes out as the same constant inside the border (the two overlapping
    ramps sum to 1: ramp[t] + ramp[t + s] = 1), and channels do not leak into each other."""
    constants = np.array([1.0, -2.5, 7.0], np.float32)
    x = np.broadcast_to(constants.reshape(1, 3, 1, 1), (2, 3, 5, 6)).copy()
    y = upsample(xp, x, stride, padding)
    assert y.shape == (2, 3, (5 - 1) * stride + 2 * stride - 2 * padding, (6 - 1) * stride + 2 * stride - 2 * padding)
    inner = interior(y, stride, padding, 5, 6)
    assert inner.size
    np.testing.assert_allclose(inner, np.broadcast_to(constants.reshape(1, 3, 1, 1), inner.shape), rtol=1e-6)


@pytest.mark.parametrize("stride, padding", UPSAMPLINGS)
def test_linear_ramp_stays_linear(xp, stride, padding):
    """x[i, j] = a i + b j + c comes out as a ramp with slope 1/s per output pixel inside the border.

    Output pixel o (o + p in the unpadded output) takes input pixels i0 = (o + p) // s and i0 - 1 with
    weights ramp[t] and ramp[t + s], t = (o + p) - s i0, so it holds i0 - ramp[t + s] =
    (o + p + 0.5) / s - 1 in input coordinates: for padding s / 2 that is (o + 0.5) / s - 0.5, the
    pixel-centre alignment of bilinear interpolation."""
    a, b, c = 0.75, -1.25, 3.0
    h, w = 6, 5
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x = (a * rows + b * cols + c).astype(np.float32)[None, None]
    y = upsample(xp, x, stride, padding)[0, 0]
    out_rows, out_cols = np.meshgrid(np.arange(y.shape[0]), np.arange(y.shape[1]), indexing="ij")
    position = lambda o: (o + padding + 0.5) / stride - 1  # noqa: E731
    expected = a * position(out_rows) + b * position(out_cols) + c
    got, want = interior(y, stride, padding, h, w), interior(expected, stride, padding, h, w)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    if padding == stride // 2:
        np.testing.assert_allclose(position(np.arange(4)), (np.arange(4) + 0.5) / stride - 0.5)
