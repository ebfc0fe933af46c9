"""Tests for minifcn.ops.max_pool: Caffe/PyTorch ceil-mode max pooling and its first-maximum gradient.

Tied inputs (ReLU outputs full of zeros, integer images) have no numerical gradient, so they are
held to a naive loop that gives each window's gradient to its first maximum in raster order, and to
torch.max_pool2d(ceil_mode=True). Untied random inputs are gradient-checked numerically.
"""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_gradients, relative_error
from minifcn.ops.max_pool import max_pool2d, max_pool2d_backward, pool_output_size


def window_starts(size, kernel, stride, ceil_mode):
    """Where the windows along one axis start, by walking along the map.

    Floor mode keeps only windows that fit. Ceil mode keeps going until a window reaches the end of
    the map (that last one may hang over the edge), but never starts a window past the end.
    """
    starts = []
    start = 0
    while start < size:
        if not ceil_mode and start + kernel > size:
            break
        starts.append(start)
        if start + kernel >= size:
            break
        start += stride
    return starts


def naive_max_pool(x, kernel, stride, ceil_mode=True):
    """y and the index (into the window) of its first maximum, window by window."""
    n, c, h, w = x.shape
    rows, cols = window_starts(h, kernel, stride, ceil_mode), window_starts(w, kernel, stride, ceil_mode)
    y = np.zeros((n, c, len(rows), len(cols)), x.dtype)
    for b in range(n):
        for ch in range(c):
            for i, r in enumerate(rows):
                for j, q in enumerate(cols):
                    y[b, ch, i, j] = x[b, ch, r : r + kernel, q : q + kernel].max()
    return y


def naive_max_pool_backward(dy, x, kernel, stride, ceil_mode=True):
    """dx: each window's gradient added to its first maximum in raster order (np.argmax's choice)."""
    n, c, h, w = x.shape
    rows, cols = window_starts(h, kernel, stride, ceil_mode), window_starts(w, kernel, stride, ceil_mode)
    dx = np.zeros_like(x)
    for b in range(n):
        for ch in range(c):
            for i, r in enumerate(rows):
                for j, q in enumerate(cols):
                    window = x[b, ch, r : r + kernel, q : q + kernel]
                    a, e = np.unravel_index(np.argmax(window), window.shape)
                    dx[b, ch, r + a, q + e] += dy[b, ch, i, j]
    return dx


def tied_input(kind, shape, rng):
    """Inputs full of ties: ReLU outputs (many windows all zero), small integers as floats, a constant."""
    if kind == "relu":
        return np.maximum(rng.standard_normal(shape) - 0.7, 0)
    if kind == "integers":
        return rng.integers(0, 3, shape).astype(np.float64)
    if kind == "zeros":
        return np.zeros(shape)
    raise ValueError(kind)


# (kernel, stride, H, W): FCN's 2x2 stride 2 on odd sizes (the last window hangs over the edge),
# overlapping 3x3 stride 2, stride 1, gaps (kernel < stride), and maps smaller than the kernel.
GEOMETRIES = [
    (2, 2, 7, 9),
    (2, 2, 13, 11),
    (3, 2, 7, 9),
    (3, 2, 13, 11),
    (3, 1, 6, 7),
    (2, 1, 5, 6),
    (3, 3, 8, 10),
    (2, 3, 7, 8),
    (2, 3, 9, 6),  # ceil((9 - 2) / 3) + 1 = 4 windows, but the 4th would start at 9, past the edge
    (2, 2, 1, 1),
    (3, 2, 2, 3),
]


@pytest.mark.parametrize("ceil_mode", [True, False], ids=["ceil", "floor"])
@pytest.mark.parametrize("kernel, stride, h, w", GEOMETRIES)
def test_output_size_walks_the_map(kernel, stride, h, w, ceil_mode):
    """pool_output_size counts the windows found by walking along the map."""
    for size in (h, w):
        expected = len(window_starts(size, kernel, stride, ceil_mode))
        if expected:
            assert pool_output_size(size, kernel, stride, ceil_mode) == expected


def test_output_size_hand_computed():
    """Ceil mode on FCN's pools: 500 + 2 * 100 - 2 = 698 after conv1 -> 349 -> 175 -> 88 -> 44 -> 22
    (each odd size rounds up); floor mode rounds down: 349 -> 174."""
    sizes = [698]
    for _ in range(5):
        sizes.append(pool_output_size(sizes[-1], 2, 2))
    assert sizes == [698, 349, 175, 88, 44, 22]
    assert pool_output_size(349, 2, 2, ceil_mode=False) == 174


@pytest.mark.parametrize("kind", ["relu", "integers", "zeros"])
@pytest.mark.parametrize("kernel, stride, h, w", GEOMETRIES)
def test_tied_inputs_match_naive_first_maximum(xp, kernel, stride, h, w, kind):
    """With ties, forward equals the window max and each window's gradient goes to its first maximum
    only; the gradient's total is the total of dy (nothing doubled, nothing lost)."""
    rng = np.random.default_rng(0)
    x = tied_input(kind, (2, 3, h, w), rng)
    y, cache = max_pool2d(xp.asarray(x), kernel, stride)
    np.testing.assert_array_equal(to_numpy(y), naive_max_pool(x, kernel, stride))
    dy = rng.standard_normal(y.shape)
    dx = to_numpy(max_pool2d_backward(xp.asarray(dy), cache))
    np.testing.assert_allclose(dx, naive_max_pool_backward(dy, x, kernel, stride), rtol=1e-14, atol=1e-14)
    assert dx.sum() == pytest.approx(dy.sum(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("kernel, stride, h, w", [(2, 2, 7, 9), (3, 2, 13, 11), (3, 1, 6, 7)])
def test_floor_mode_matches_naive(xp, kernel, stride, h, w):
    """ceil_mode=False drops the partial windows at the bottom and right, forward and backward."""
    rng = np.random.default_rng(1)
    x = tied_input("integers", (2, 3, h, w), rng)
    y, cache = max_pool2d(xp.asarray(x), kernel, stride, ceil_mode=False)
    np.testing.assert_array_equal(to_numpy(y), naive_max_pool(x, kernel, stride, ceil_mode=False))
    dy = rng.standard_normal(y.shape)
    dx = to_numpy(max_pool2d_backward(xp.asarray(dy), cache))
    expected = naive_max_pool_backward(dy, x, kernel, stride, ceil_mode=False)
    np.testing.assert_allclose(dx, expected, rtol=1e-14, atol=1e-14)


# Every geometry in both modes, except maps smaller than the kernel in floor mode (no window fits).
GRADCHECK_CASES = [
    pytest.param(*geometry, ceil_mode, id=f"{'-'.join(map(str, geometry))}-{'ceil' if ceil_mode else 'floor'}")
    for geometry in GEOMETRIES
    for ceil_mode in (True, False)
    if all(window_starts(size, geometry[0], geometry[1], ceil_mode) for size in geometry[2:])
]


@pytest.mark.parametrize("kernel, stride, h, w, ceil_mode", GRADCHECK_CASES)
def test_gradients_numerically(xp, kernel, stride, h, w, ceil_mode):
    """On untied random input, central differences in float64 agree with the gradient to 1e-6."""
    x = xp.asarray(np.random.default_rng(2).standard_normal((2, 3, h, w)))
    state = {}

    def forward():
        y, state["cache"] = max_pool2d(x, kernel, stride, ceil_mode)
        return y

    errors = check_gradients(forward, lambda dy: {"x": max_pool2d_backward(dy, state["cache"])}, {"x": x})
    assert errors["x"] <= 1e-6


def test_backward_leaves_dy_alone(xp):
    """Backward does not write into dy or the cached input."""
    rng = np.random.default_rng(3)
    x_host = tied_input("relu", (2, 3, 7, 9), rng)
    x = xp.asarray(x_host)
    y, cache = max_pool2d(x, 3, 2)
    dy_host = rng.standard_normal(y.shape)
    dy = xp.asarray(dy_host)
    first = to_numpy(max_pool2d_backward(dy, cache))
    second = to_numpy(max_pool2d_backward(dy, cache))
    np.testing.assert_array_equal(to_numpy(dy), dy_host)
    np.testing.assert_array_equal(to_numpy(x), x_host)
    np.testing.assert_array_equal(first, second)


def test_strided_views_give_the_same_result(xp):
    """A non-contiguous input and a Fortran-ordered dy pool exactly like contiguous copies."""
    rng = np.random.default_rng(6)
    x = xp.asarray(tied_input("integers", (2, 6, 9, 11), rng))[:, ::2, ::-1, 1:]
    y, cache = max_pool2d(x, 3, 2)
    y_ref, cache_ref = max_pool2d(xp.ascontiguousarray(x), 3, 2)
    dy = xp.asarray(rng.standard_normal(y.shape))
    np.testing.assert_array_equal(to_numpy(y), to_numpy(y_ref))
    np.testing.assert_array_equal(
        to_numpy(max_pool2d_backward(xp.asfortranarray(dy), cache)), to_numpy(max_pool2d_backward(dy, cache_ref))
    )


def test_float32_stays_float32(xp):
    """float32 in, float32 out and float32 gradient."""
    x = xp.ones((1, 2, 5, 5), np.float32)
    y, cache = max_pool2d(x)
    assert y.dtype == np.float32
    assert max_pool2d_backward(xp.ones(y.shape, np.float32), cache).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_non_floating_input_is_rejected(xp, dtype):
    """Integer images must be cast on purpose: pooling them is a ValueError naming the dtype."""
    with pytest.raises(ValueError, match=rf"floating-point.*{np.dtype(dtype).name}"):
        max_pool2d(xp.ones((1, 1, 4, 4), dtype))


def test_bad_shapes_are_rejected(xp):
    """A 3-D input, a zero kernel and a map smaller than a stride-1 window raise ValueError saying why."""
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 4, 4\)"):
        max_pool2d(xp.ones((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="at least 1"):
        max_pool2d(xp.ones((1, 1, 4, 4), np.float32), kernel_size=0)
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3, 3\)"):
        max_pool2d(xp.ones((1, 1, 2, 2), np.float32), kernel_size=3, stride=1)


def torch_max_pool(torch, x, dy, kernel, stride):
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.max_pool2d(tx, kernel, stride, ceil_mode=True)
    ty.backward(torch.from_numpy(dy))
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["relu", "integers", "zeros"])
@pytest.mark.parametrize("kernel, stride, h, w", GEOMETRIES)
def test_tied_inputs_match_torch(xp, torch, kernel, stride, h, w, kind):
    """With ties, forward and gradient equal torch.max_pool2d(ceil_mode=True) exactly (same first maximum).

    dy holds distinct integers: a gradient sent to the wrong cell shows, and sums where windows
    overlap are exact in float32 whatever order the two libraries add them in."""
    rng = np.random.default_rng(4)
    x = tied_input(kind, (2, 3, h, w), rng).astype(np.float32)
    y, cache = max_pool2d(xp.asarray(x), kernel, stride)
    dy = (rng.permutation(int(np.prod(y.shape))) + 1).reshape(y.shape).astype(np.float32)
    dx = max_pool2d_backward(xp.asarray(dy), cache)
    ty, tdx = torch_max_pool(torch, x, dy, kernel, stride)
    np.testing.assert_array_equal(to_numpy(y), ty)
    np.testing.assert_array_equal(to_numpy(dx), tdx)


# (N, C, H, W, kernel, stride, input kind): FCN's pools on realistic maps, odd and even.
TORCH_CASES = {
    "pool1-64x111x111-relu": (2, 64, 111, 111, 2, 2, "relu"),
    "pool4-512x23x23": (1, 512, 23, 23, 2, 2, "normal"),
    "pool-21x70x70-k3s2": (2, 21, 70, 70, 3, 2, "normal"),
    "pool-21x69x71-k3s2-relu": (2, 21, 69, 71, 3, 2, "relu"),
}


@pytest.mark.torch
@pytest.mark.parametrize("n, c, h, w, kernel, stride, kind", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_matches_torch(xp, torch, n, c, h, w, kernel, stride, kind):
    """Forward and gradient equal torch.max_pool2d(ceil_mode=True) in float32 on realistic maps."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    if kind == "relu":
        x = np.maximum(x, np.float32(0))
    y, cache = max_pool2d(xp.asarray(x), kernel, stride)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = max_pool2d_backward(xp.asarray(dy), cache)
    ty, tdx = torch_max_pool(torch, x, dy, kernel, stride)
    assert y.shape == ty.shape and y.dtype == np.float32 and dx.dtype == np.float32
    assert relative_error(y, ty) <= 1e-5
    assert relative_error(dx, tdx) <= 1e-5


@pytest.mark.gpu
def test_on_the_device_a_few_kernels_per_pass(cupy_backend):
    """On a GPU both passes take a handful of kernels (not several per window cell), and give the
    CPU's output and gradient, ties and overhanging windows included."""
    from minifcn.backend import to_device

    x = np.maximum(np.random.default_rng(0).standard_normal((2, 3, 9, 7)), 0).astype(np.float32)  # ties at 0
    dy = np.random.default_rng(1).standard_normal((2, 3, 5, 4)).astype(np.float32)
    y_cpu, cache_cpu = max_pool2d(x)
    dx_cpu = max_pool2d_backward(dy, cache_cpu)
    device_x, device_dy = to_device(x, "gpu"), to_device(dy, "gpu")
    cupy_backend.reset_counters()
    y, cache = max_pool2d(device_x)
    forward_launches = cupy_backend.COUNTERS["launches"]
    dx = max_pool2d_backward(device_dy, cache)
    assert forward_launches <= 5 and cupy_backend.COUNTERS["launches"] - forward_launches <= 7
    np.testing.assert_array_equal(to_numpy(y), y_cpu)
    np.testing.assert_array_equal(to_numpy(dx), dx_cpu)
