"""Tests for minifcn.ops.windows: gather_windows (im2col) and its adjoint scatter_windows (col2im)."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.ops.windows import gather_windows, scatter_windows

# (H, W, kernel, stride): overlapping windows (kernel > stride), touching ones, gaps (kernel < stride),
# non-square kernels and strides, and FCN's upsampling geometry (kernel 16, stride 8).
GEOMETRIES = [
    (7, 9, (3, 3), (1, 1)),
    (13, 11, (3, 3), (2, 2)),
    (8, 10, (4, 4), (2, 2)),
    (9, 7, (2, 2), (3, 3)),
    (7, 9, (3, 1), (2, 1)),
    (11, 13, (1, 1), (2, 3)),
    (24, 32, (16, 16), (8, 8)),
]


def out_size(size, kernel, stride):
    return (size - kernel) // stride + 1


def naive_gather(x, kernel, stride, out_hw):
    """cols[c, a, b, n, i, j] = x[n, c, s*i + a, s*j + b], one window of one image at a time."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    cols = np.zeros((c, kh, kw, n, oh, ow), x.dtype)
    for image in range(n):
        for i in range(oh):
            for j in range(ow):
                cols[:, :, :, image, i, j] = x[image, :, sh * i : sh * i + kh, sw * j : sw * j + kw]
    return cols


@pytest.mark.parametrize("h, w, kernel, stride", GEOMETRIES)
def test_gather_matches_naive_windows(xp, h, w, kernel, stride):
    """Every column holds exactly the window it stands for."""
    x = np.random.default_rng(0).standard_normal((2, 3, h, w))
    out_hw = (out_size(h, kernel[0], stride[0]), out_size(w, kernel[1], stride[1]))
    cols = gather_windows(xp.asarray(x), kernel, stride, out_hw)
    np.testing.assert_array_equal(to_numpy(cols), naive_gather(x, kernel, stride, out_hw))


@pytest.mark.parametrize("h, w, kernel, stride", GEOMETRIES)
def test_gather_and_scatter_are_adjoint(xp, h, w, kernel, stride):
    """<gather(x), c> == <x, scatter(c)> for random x and c, in float64."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, h, w))
    out_hw = (out_size(h, kernel[0], stride[0]), out_size(w, kernel[1], stride[1]))
    c = rng.standard_normal((3,) + tuple(kernel) + (2,) + out_hw)
    gathered = to_numpy(gather_windows(xp.asarray(x), kernel, stride, out_hw))
    scattered = to_numpy(scatter_windows(xp.asarray(c), (h, w), stride))
    assert scattered.shape == x.shape
    left, right = float((gathered * c).sum()), float((x * scattered).sum())
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("h, w, kernel, stride", GEOMETRIES)
def test_scatter_of_ones_counts_covering_windows(xp, h, w, kernel, stride):
    """Scattering ones adds up overlaps (no dropped repeated indices): each cell gets the number of
    windows that cover it, counted by a loop over windows."""
    out_hw = (out_size(h, kernel[0], stride[0]), out_size(w, kernel[1], stride[1]))
    ones = xp.ones((2,) + tuple(kernel) + (1,) + out_hw)
    counts = np.zeros((1, 2, h, w))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            counts[:, :, stride[0] * i : stride[0] * i + kernel[0], stride[1] * j : stride[1] * j + kernel[1]] += 1
    np.testing.assert_array_equal(to_numpy(scatter_windows(ones, (h, w), stride)), counts)


def test_scatter_keeps_dtype(xp):
    """float32 columns scatter into a float32 map (no promotion)."""
    cols = xp.ones((1, 3, 3, 1, 2, 2), dtype=np.float32)
    assert scatter_windows(cols, (5, 5), (2, 2)).dtype == np.float32
    assert gather_windows(xp.ones((1, 1, 5, 5), np.float32), (3, 3), (2, 2), (2, 2)).dtype == np.float32
