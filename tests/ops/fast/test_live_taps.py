"""A kernel wider than its map: ``method="auto"`` drops the taps that only meet padding, and the
convolution's output and gradients stay the reference's (which keeps every tap). And the weight
gradient added into a layer's (``weight_grad_into``): a cut kernel's at its taps, im2col's a block at
a time, neither building a weight-sized array."""

import tracemalloc

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import relative_error
from minifcn.ops.conv import conv2d, conv2d_backward, conv_output_size
from minifcn.ops.fast import add_cut_kernel_grad, cut_kernel, live_taps, products


def test_fc6_on_a_3x3_pool5_keeps_the_middle_5x5():
    # Output row i reads input rows i - 3 .. i + 3; rows 0 .. 2 exist, so taps 1 .. 5 meet one.
    assert live_taps((3, 3), (7, 7), (1, 1), (3, 3), (3, 3)) == ((slice(1, 6), slice(1, 6)), (2, 2))


def test_every_tap_live_on_a_large_map():
    assert live_taps((16, 16), (7, 7), (1, 1), (0, 0), (10, 10)) is None
    assert live_taps((96, 96), (3, 3), (1, 1), (1, 1), (96, 96)) is None


def test_only_the_axis_with_dead_taps_is_cut():
    # 3 rows but 20 columns: every column tap meets the map somewhere.
    assert live_taps((3, 20), (7, 7), (1, 1), (3, 3), (3, 20)) == ((slice(1, 6), slice(0, 7)), (2, 3))


def test_uneven_cut_keeps_the_axis_whole():
    # Stride 2 over a 2-row map padded by 3: one output row reads rows a - 3, so taps 3 and 4 are live,
    # three dead taps before them and two after: the padding would differ, so nothing is cut.
    assert live_taps((2, 2), (7, 7), (2, 2), (3, 3), (1, 1)) is None
    # Padding 4 on a 2-row map: output rows 0 .. 3 read rows i + a - 4, taps 1 .. 5 live: cut evenly.
    assert live_taps((2, 2), (7, 7), (1, 1), (4, 4), (4, 4)) == ((slice(1, 6), slice(1, 6)), (3, 3))


def _hand_live_taps(size, k, s, p, out):
    """Which taps meet a real cell for some output, counted by hand."""
    return [a for a in range(k) if any(0 <= s * i + a - p < size for i in range(out))]


@pytest.mark.parametrize("size, k, s, p", [(3, 7, 1, 3), (2, 7, 1, 4), (5, 7, 1, 3), (3, 5, 2, 3), (1, 3, 1, 1),
                                           (4, 7, 2, 3), (6, 7, 1, 1)])
def test_cut_matches_a_count_by_hand(size, k, s, p):
    out = conv_output_size(size, k, s, p)
    cut = live_taps((size, size), (k, k), (s, s), (p, p), (out, out))
    live = _hand_live_taps(size, k, s, p, out)
    if cut is None:  # nothing cut: every tap live, or the dead ones not as many at both ends
        assert live == list(range(k)) or live[0] != k - 1 - live[-1]
    else:
        (rows, _), (padding, _) = cut
        assert list(range(rows.start, rows.stop)) == live
        assert padding == p - live[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, c, o, h, w, k, s, p", [
    (2, 6, 5, 3, 3, 7, 1, 3),  # fc6 on the default model's pool5
    (3, 4, 3, 2, 2, 7, 1, 4),
    (2, 3, 4, 3, 20, 7, 1, 3),  # cut along the rows only
    (2, 3, 4, 1, 1, 7, 2, 3),  # strided
    (1, 2, 3, 1, 1, 3, 1, 1),  # a 1x1 map: only the centre tap
])
def test_auto_with_cut_taps_equals_the_reference(xp, dtype, n, c, o, h, w, k, s, p):
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((n, c, h, w)).astype(dtype))
    weight = xp.asarray(rng.standard_normal((o, c, k, k)).astype(dtype))
    bias = xp.asarray(rng.standard_normal(o).astype(dtype))
    y_auto, cache_auto = conv2d(x, weight, bias, s, p, "auto")
    y_ref, cache_ref = conv2d(x, weight, bias, s, p, "reference")
    assert (cache_auto.taps is not None) == (xp is np)  # these shapes are cut, on the CPU
    dy = xp.asarray(rng.standard_normal(y_ref.shape).astype(dtype))
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    assert relative_error(y_auto, y_ref) <= tolerance
    for got, want in zip(conv2d_backward(dy, cache_auto), conv2d_backward(dy, cache_ref)):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert relative_error(got, want) <= tolerance
    # The cut taps never met the map: the reference's gradient there is exactly zero too.
    if xp is not np:
        return
    _, dweight, _ = conv2d_backward(dy, cache_auto)
    (rows, cols) = cache_auto.taps[1]
    ring = np.ones((k, k), bool)
    ring[rows, cols] = False
    for kernel_grad in (dweight, conv2d_backward(dy, cache_ref)[1]):
        assert not np.any(to_numpy(kernel_grad)[:, :, ring])


def test_cut_kernel_is_the_slice():
    weight = np.arange(2 * 3 * 7 * 6, dtype=np.float32).reshape(2, 3, 7, 6)
    taps = (slice(1, 6), slice(2, 4))
    cut = cut_kernel(weight, taps)
    assert cut.flags.c_contiguous
    np.testing.assert_array_equal(cut, weight[:, :, 1:6, 2:4])


@pytest.mark.parametrize("n, c, o, h, w, k, s, p", [
    (2, 6, 5, 3, 3, 7, 1, 3),  # cut
    (2, 3, 4, 3, 20, 7, 1, 3),  # cut along the rows only
    (2, 3, 4, 8, 8, 3, 1, 1),  # not cut
    (2, 6, 5, 6, 6, 7, 1, 3),  # not cut, by im2col: added a block at a time (``add_weight_grad``)
])
def test_weight_grad_added_into_a_layers_gradient(xp, n, c, o, h, w, k, s, p):
    """``weight_grad_into`` gets the reference's whole-kernel gradient added to what it held, and
    the backward pass then returns no dweight; dx and dbias are as without it."""
    rng = np.random.default_rng(1)
    x = xp.asarray(rng.standard_normal((n, c, h, w)))
    weight = xp.asarray(rng.standard_normal((o, c, k, k)))
    bias = xp.asarray(rng.standard_normal(o))
    y, cache = conv2d(x, weight, bias, s, p, "auto")
    _, cache_ref = conv2d(x, weight, bias, s, p, "reference")
    dy = xp.asarray(rng.standard_normal(y.shape))
    held = rng.standard_normal(weight.shape)  # what the layer's gradient already held
    into = xp.asarray(held.copy())
    dx, dweight, dbias = conv2d_backward(dy, cache, weight_grad_into=into)
    dx_ref, dweight_ref, dbias_ref = conv2d_backward(dy, cache_ref)
    assert dweight is None
    assert relative_error(into, held + to_numpy(dweight_ref)) <= 1e-12
    assert relative_error(dx, dx_ref) <= 1e-12 and relative_error(dbias, dbias_ref) <= 1e-12


def _largest_allocation(call):
    """The most bytes ``call()`` holds allocated at once (tracemalloc, which sees NumPy's arrays)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_cut_kernels_gradient_is_added_without_building_the_whole_one():
    """fc6 on the default model's 3x3 pool5: the backward pass adds the 5x5 taps' gradient into the
    layer's 7x7 one in place. Its largest allocation stays below the whole kernel's size (the whole
    kernel's gradient, zero on the ring, is what it no longer builds)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 32, 3, 3), dtype=np.float32)
    weight = rng.standard_normal((64, 32, 7, 7), dtype=np.float32)
    y, cache = conv2d(x, weight, None, 1, 3, "auto")
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    into = np.zeros_like(weight)
    assert _largest_allocation(lambda: conv2d_backward(dy, cache, weight_grad_into=into)) < weight.nbytes
    assert not np.any(into[:, :, [0, 6], :]) and not np.any(into[:, :, :, [0, 6]])


@pytest.mark.parametrize("o, taps", [
    (37, (slice(1, 6), slice(1, 6))),
    (16, (slice(2, 5), slice(0, 7))),
    (3, (slice(3, 4), slice(3, 4))),
])
def test_add_cut_kernel_grad_adds_at_the_taps(o, taps):
    """Block by block of output channels (a last block cut short too): the same as adding into the
    taps' view, and nothing added elsewhere."""
    rng = np.random.default_rng(3)
    into = rng.standard_normal((o, 5, 7, 7))
    dweight = rng.standard_normal((o, 5, taps[0].stop - taps[0].start, taps[1].stop - taps[1].start))
    expected = into.copy()
    expected[:, :, taps[0], taps[1]] += dweight
    add_cut_kernel_grad(into, dweight, taps)
    np.testing.assert_array_equal(into, expected)


def test_a_wide_kernels_gradient_is_added_a_block_at_a_time(monkeypatch):
    """fc6 on a map it covers whole (CamVid's, a 500x500 image's): im2col adds the weight gradient
    into the layer's one block of columns at a time, and the pass's largest allocation stays below
    the weight's size."""
    monkeypatch.setattr(products, "ADD_BLOCK_BYTES", 2**16)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 32, 6, 6), dtype=np.float32)
    weight = rng.standard_normal((128, 32, 7, 7), dtype=np.float32)
    y, cache = conv2d(x, weight, None, 1, 3, "auto")
    assert cache.method == "im2col" and cache.taps is None
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    _, want, _ = conv2d_backward(dy, cache)
    into = np.zeros_like(weight)
    assert _largest_allocation(lambda: conv2d_backward(dy, cache, weight_grad_into=into)) < weight.nbytes
    np.testing.assert_allclose(into, want, rtol=1e-5, atol=1e-4)
