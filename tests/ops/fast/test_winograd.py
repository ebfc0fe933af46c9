"""Tests for minifcn.ops.fast.winograd: the transforms themselves, then the three passes against the
reference on the geometries Winograd's tiling makes awkward (maps that do not divide into tiles,
batches, padding other than 1), and the float32 error against a float64 reference.

tests/ops/fast/test_equal_to_reference.py holds the method equal to the reference through conv2d
and conv_transpose2d as it holds every other method.
"""

import numpy as np
import pytest

from minifcn.gradcheck import relative_error
from minifcn.ops.conv import method_functions, reference_forward, reference_input_grad, reference_weight_grad
from minifcn.ops.fast import winograd
from minifcn.ops.fast.cores import on_cores
from minifcn.ops.fast.winograd import F2x2_3x3, F4x4_3x3
from minifcn.ops.padding import pad2d

BOTH_TILES = pytest.mark.parametrize("tiles", [F2x2_3x3, F4x4_3x3], ids=["F2x2", "F4x4"])


def correlate_1d(d, g):
    """The m = len(d) - 2 outputs of the 3-tap correlation of d with g, written out directly."""
    return np.array([d[i] * g[0] + d[i + 1] * g[1] + d[i + 2] * g[2] for i in range(len(d) - 2)])


def test_f2_3_by_hand():
    """F(2, 3) on numbers small enough to check by hand: d = (1, 2, 3, 4), g = (1, 0, -1):
    y0 = 1 - 3 = -2, y1 = 2 - 4 = -2, from the 4 products (B^T d) * (G g)."""
    d, g = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, -1.0])
    transformed_d = F2x2_3x3.B_T @ d  # (d0 - d2, d1 + d2, d2 - d1, d1 - d3) = (-2, 5, 1, -2)
    transformed_g = F2x2_3x3.G @ g  # (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2) = (1, 0, 0, -1)
    np.testing.assert_array_equal(transformed_d, [-2, 5, 1, -2])
    np.testing.assert_array_equal(transformed_g, [1, 0, 0, -1])
    np.testing.assert_array_equal(F2x2_3x3.A_T @ (transformed_d * transformed_g), [-2, -2])


@BOTH_TILES
def test_one_dimensional_algorithm_is_a_correlation(tiles):
    """A^T [(G g) * (B^T d)] equals the direct 3-tap correlation for random d and g."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, g = rng.standard_normal(tiles.alpha), rng.standard_normal(3)
        y = tiles.A_T @ ((tiles.G @ g) * (tiles.B_T @ d))
        np.testing.assert_allclose(y, correlate_1d(d, g), atol=1e-12)


@BOTH_TILES
def test_one_tile_in_two_dimensions(tiles):
    """Y = A^T [(G g G^T) * (B^T d B)] A equals the m x m outputs of the 3x3 correlation of one tile."""
    rng = np.random.default_rng(1)
    d, g = rng.standard_normal((tiles.alpha, tiles.alpha)), rng.standard_normal((3, 3))
    y = tiles.A_T @ ((tiles.G @ g @ tiles.G.T) * (tiles.B_T @ d @ tiles.B_T.T)) @ tiles.A_T.T
    direct = [[np.sum(d[i : i + 3, j : j + 3] * g) for j in range(tiles.m)] for i in range(tiles.m)]
    np.testing.assert_allclose(y, direct, atol=1e-12)


@BOTH_TILES
def test_kernel_transform_is_g_g_gt(tiles):
    """``transform_weight``'s one product with kron(G, G) gives G g G^T for every (o, c) pair."""
    weight = np.random.default_rng(2).standard_normal((3, 2, 3, 3))
    u = winograd.transform_weight(weight, tiles).reshape(tiles.alpha, tiles.alpha, 3, 2)
    for o in range(3):
        for c in range(2):
            np.testing.assert_allclose(u[:, :, o, c], tiles.G @ weight[o, c] @ tiles.G.T, atol=1e-12)


def test_flipped_tiles_correlate_with_the_flipped_kernel():
    """F(2x2, 3x3)'s flipped tiles, with the kernel's own transform G g G^T, give the outputs of one
    tile correlated with the kernel turned by 180 degrees (in 1-D and in 2-D); F(4x4, 3x3) has none,
    and its input gradient flips the kernel itself (its passes are held to the reference below)."""
    flipped = winograd.flipped_tiles(F2x2_3x3)
    np.testing.assert_array_equal(flipped.B_T, F2x2_3x3.B_T[[3, 1, 2, 0]])
    rng = np.random.default_rng(3)
    d, g = rng.standard_normal(4), rng.standard_normal(3)
    np.testing.assert_allclose(flipped.A_T @ ((F2x2_3x3.G @ g) * (flipped.B_T @ d)), correlate_1d(d, g[::-1]),
                               atol=1e-12)
    d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    u = F2x2_3x3.G @ g @ F2x2_3x3.G.T
    y = flipped.A_T @ (u * (flipped.B_T @ d @ flipped.B_T.T)) @ flipped.A_T.T
    turned = g[::-1, ::-1]
    np.testing.assert_allclose(y, [[np.sum(d[i : i + 3, j : j + 3] * turned) for j in range(2)] for i in range(2)],
                               atol=1e-12)
    assert winograd.flipped_tiles(F4x4_3x3) is None


@pytest.mark.parametrize("padding", [(0, 0), (1, 1), (2, 3)])
@BOTH_TILES
def test_stride_phases_are_the_padded_input(tiles, padding):
    """phases[r, s, n, i, j, c] = xpad[n, c, m*i + r, m*j + s], zeros where that is past the edge."""
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 5))
    size = (4, 3)
    phases = winograd.stride_phases(x, padding, size, tiles)
    m = tiles.m
    big = np.zeros((2, 3, m * size[0] + 8, m * size[1] + 8))  # the padded input with room past every edge
    big[:, :, padding[0] : padding[0] + 7, padding[1] : padding[1] + 5] = x
    for r in range(m):
        for s in range(m):
            expected = big[:, :, r : r + m * size[0] : m, s : s + m * size[1] : m].transpose(0, 2, 3, 1)
            np.testing.assert_array_equal(phases[r, s], expected)


# (N, C, O, H, W, padding): maps that divide into neither 2x2 nor 4x4 tiles, a 1x1 output, one row of
# output, no padding, padding wider than the kernel, and batches of one and several images.
GEOMETRIES = {
    "7x5-batch-3": (3, 4, 5, 7, 5, 1),
    "1x1-map": (2, 3, 2, 1, 1, 1),
    "one-output-row": (1, 2, 3, 3, 9, 0),
    "9x6-no-padding": (2, 3, 4, 9, 6, 0),
    "6x7-padding-2": (2, 3, 4, 6, 7, 2),
    "4x5-padding-3": (2, 2, 3, 4, 5, 3),
    "16x16-divides": (2, 3, 3, 14, 14, 1),
}


@pytest.mark.parametrize("name", GEOMETRIES)
@BOTH_TILES
def test_passes_equal_the_reference(tiles, name):
    """forward, weight_grad and input_grad equal the reference's in float64, tile overhang included."""
    n, c, o, h, w, p = GEOMETRIES[name]
    rng = np.random.default_rng(4)
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3))
    out_hw = (h + 2 * p - 2, w + 2 * p - 2)
    dy = rng.standard_normal((n, o) + out_hw)
    xpad = pad2d(x, (p, p))
    prepared = winograd.prepare(x, (p, p), tiles)
    got = (
        winograd.forward(prepared, weight, (1, 1), out_hw, tiles),
        winograd.weight_grad(prepared, dy, (3, 3), (1, 1), tiles),
        winograd.input_grad(dy, weight, (1, 1), xpad.shape[2:], tiles),
    )
    want = (
        reference_forward(xpad, weight, (1, 1), out_hw),
        reference_weight_grad(xpad, dy, (3, 3), (1, 1)),
        reference_input_grad(dy, weight, (1, 1), xpad.shape[2:]),
    )
    for what, a, b in zip(("y", "dweight", "dxpad"), got, want):
        assert a.shape == b.shape, what
        assert relative_error(a, b) < 1e-13, what


@pytest.mark.parametrize("name", GEOMETRIES)
@BOTH_TILES
def test_gradients_equal_the_reference(tiles, name):
    """``gradients`` (both gradients at once) gives the reference's dweight and the input's own cells
    of its dxpad, for paddings up to 2; for a deeper one None, the two passes then computing them."""
    n, c, o, h, w, p = GEOMETRIES[name]
    rng = np.random.default_rng(6)
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3))
    dy = rng.standard_normal((n, o, h + 2 * p - 2, w + 2 * p - 2))
    xpad = pad2d(x, (p, p))
    both = winograd.gradients(winograd.prepare(x, (p, p), tiles), dy, weight, (p, p), (h, w), tiles)
    if p > 2:
        assert both is None
        return
    dx, dweight = both
    want_dx = reference_input_grad(dy, weight, (1, 1), xpad.shape[2:])[:, :, p : p + h, p : p + w]
    assert dx.shape == want_dx.shape
    assert relative_error(dx, want_dx) < 1e-13
    assert relative_error(dweight, reference_weight_grad(xpad, dy, (3, 3), (1, 1))) < 1e-13


@BOTH_TILES
def test_bands_of_tile_rows(tiles, monkeypatch):
    """Split into bands of one tile row each (BAND_BYTES = 1), the passes still equal the reference: every
    band reads the phase row below it, and the weight gradient sums over the bands."""
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)
    assert winograd.band_rows(tiles, 3, 2, 4, 8) == 1
    test_passes_equal_the_reference(tiles, "7x5-batch-3")
    test_passes_equal_the_reference(tiles, "9x6-no-padding")


@pytest.mark.parametrize("threads", [2, 3])
@BOTH_TILES
def test_tile_rows_split_over_the_cores(tiles, threads, monkeypatch):
    """With BLAS on several threads (one image on all the cores) each pass cuts the tile rows into one
    run per thread and computes the runs at once, band by band; the passes still equal the reference,
    the weight gradient summed over the runs."""
    monkeypatch.setattr(winograd, "blas_threads", lambda: threads)
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)
    splits = []

    def recorded(work, parts):
        splits.append(parts)
        return on_cores(work, parts)

    monkeypatch.setattr(winograd, "on_cores", recorded)
    test_passes_equal_the_reference(tiles, "7x5-batch-3")
    test_passes_equal_the_reference(tiles, "16x16-divides")
    # One run per thread, fewer only where the map has fewer tile rows (parts[-1] ends at the last).
    assert splits and all(len(parts) == min(threads, parts[-1][1]) for parts in splits)
    assert any(len(parts) == threads for parts in splits)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_row_parts_cover_the_tile_rows(threads, monkeypatch):
    """The runs cover tile rows 0 .. th - 1 once each, in order, at most one per thread and as equal
    as possible; on another array module than NumPy (a GPU) one run, whatever BLAS does."""
    monkeypatch.setattr(winograd, "blas_threads", lambda: threads)
    for th in range(1, 10):
        parts = winograd.row_parts(th, np)
        assert len(parts) == min(th, threads)
        assert [row for start, stop in parts for row in range(start, stop)] == list(range(th))
        sizes = [stop - start for start, stop in parts]
        assert max(sizes) - min(sizes) <= 1
        assert winograd.row_parts(th, object()) == [(0, th)]


# F(2x2, 3x3) in float32 against float64: 5e-7 to 7e-7 on CamVid's deep layers, 1.3-2x the error of
# the matrix-product methods on the same numbers. F(4x4, 3x3) is not held to it: its error is 10-50x
# larger, one reason TILES is F(2x2, 3x3).
FLOAT32_BOUND = 1e-6


def test_float32_error_near_im2col():
    """On ReLU-like inputs and 256 channels, the float32 forward and gradients of F(2x2, 3x3) stay within
    FLOAT32_BOUND of the float64 reference and within 4x of the float32 reference method's error."""
    rng = np.random.default_rng(5)
    n, c, o, h, w = 2, 256, 64, 13, 11
    x64 = np.maximum(rng.standard_normal((n, c, h, w)), 0)
    w64 = rng.standard_normal((o, c, 3, 3)) * np.sqrt(2 / (9 * c))
    dy64 = rng.standard_normal((n, o, h, w))
    x32, w32, dy32 = (a.astype(np.float32) for a in (x64, w64, dy64))

    def passes(prepared_x, xpad, weight, dy, impl_forward, impl_weight_grad, impl_input_grad):
        return (
            impl_forward(prepared_x, weight, (1, 1), (h, w)),
            impl_weight_grad(prepared_x, dy, (3, 3), (1, 1)),
            impl_input_grad(dy, weight, (1, 1), xpad.shape[2:]),
        )

    reference_passes = (reference_forward, reference_weight_grad, reference_input_grad)
    exact = passes(pad2d(x64, (1, 1)), pad2d(x64, (1, 1)), w64, dy64, *reference_passes)
    im2col32 = passes(pad2d(x32, (1, 1)), pad2d(x32, (1, 1)), w32, dy32, *reference_passes)
    wino32 = passes(winograd.prepare(x32, (1, 1)), pad2d(x32, (1, 1)), w32, dy32,
                    winograd.forward, winograd.weight_grad, winograd.input_grad)
    for what, got, baseline, want in zip(("y", "dweight", "dxpad"), wino32, im2col32, exact):
        assert got.dtype == np.float32, what
        error = relative_error(got, want)
        assert error < FLOAT32_BOUND, (what, error)
        assert error < 4 * relative_error(baseline, want), (what, error)


def test_the_module_uses_f2x2():
    assert winograd.TILES is F2x2_3x3


@pytest.mark.parametrize("kernel, stride", [((5, 5), (1, 1)), ((3, 3), (2, 2)), ((1, 1), (1, 1)), ((3, 1), (1, 1))],
                         ids=["5x5", "stride-2", "1x1", "3x1"])
def test_method_functions_refuse_other_geometries(kernel, stride):
    """Winograd F(m x m, 3x3) is written for 3x3 kernels at stride 1 only; asked for more it says so."""
    with pytest.raises(ValueError, match="winograd"):
        method_functions("winograd", kernel, stride)


def test_method_functions_accept_3x3_stride_1():
    assert method_functions("winograd", (3, 3), (1, 1)) is winograd
