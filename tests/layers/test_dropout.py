"""Tests for minifcn.layers.dropout.Dropout: Caffe's element dropout in training, identity in eval."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.gradcheck import check_layer
from minifcn.layers import Dropout


def test_eval_is_the_identity(xp):
    """In eval mode forward returns the input unchanged and backward returns dy unchanged."""
    x = np.random.default_rng(0).standard_normal((2, 8, 7, 7)).astype(np.float32)
    layer = Dropout(0.5, rng=np.random.default_rng(1)).eval()
    np.testing.assert_array_equal(to_numpy(layer.forward(xp.asarray(x))), x)
    np.testing.assert_array_equal(to_numpy(layer.backward(xp.asarray(2 * x))), 2 * x)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_training_drops_and_scales(xp, p):
    """In training each element is either 0 or x / (1 - p); the mask is last_mask, a host array."""
    x = np.random.default_rng(2).uniform(1.0, 2.0, (2, 16, 9, 9)).astype(np.float32)
    layer = Dropout(p, rng=np.random.default_rng(3))
    y = to_numpy(layer.forward(xp.asarray(x)))
    assert isinstance(layer.last_mask, np.ndarray) and layer.last_mask.shape == x.shape
    kept = y != 0
    assert kept.any() and (~kept).any()
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    np.testing.assert_array_equal(kept, layer.last_mask != 0)


@pytest.mark.parametrize("p", [0.5, 0.1])
def test_drop_fraction_is_close_to_p(xp, p):
    """On 10^6 elements the dropped fraction is within 0.003 of p (6 binomial standard deviations)."""
    layer = Dropout(p, rng=np.random.default_rng(4))
    y = to_numpy(layer.forward(xp.ones((1000, 1000), np.float32)))
    assert abs((y == 0).mean() - p) < 3e-3
    assert abs(y.mean() - 1.0) < 3e-3 / (1 - p)


def test_backward_uses_the_forward_mask(xp):
    """dx = dy * mask with the very mask of the forward pass."""
    layer = Dropout(0.5, rng=np.random.default_rng(5))
    layer.forward(xp.ones((3, 4, 5), np.float32))
    dy = np.random.default_rng(6).standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(to_numpy(layer.backward(xp.asarray(dy))), dy * layer.last_mask)


def test_same_seed_same_mask_on_every_backend(xp):
    """Two layers seeded alike drop the same elements, one on the host and one on xp's device:
    masks come from the host generator. Successive passes of one layer draw new masks."""
    x = np.random.default_rng(7).standard_normal((2, 8, 7, 7)).astype(np.float32)
    host_layer, device_layer = Dropout(0.5, rng=np.random.default_rng(8)), Dropout(0.5, rng=np.random.default_rng(8))
    host_y = host_layer.forward(x)
    device_y = device_layer.forward(xp.asarray(x))
    np.testing.assert_array_equal(to_numpy(device_y), host_y)
    np.testing.assert_array_equal(device_layer.last_mask, host_layer.last_mask)
    first_mask = host_layer.last_mask.copy()
    host_layer.forward(x)
    assert (host_layer.last_mask != first_mask).any()


def test_p_zero_is_the_identity_in_training(xp):
    """p = 0 keeps everything, unscaled."""
    x = np.random.default_rng(9).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_numpy(Dropout(0.0).forward(xp.asarray(x))), x)


@pytest.mark.parametrize("p", [1.0, -0.5])
def test_bad_probability_is_rejected(p):
    """p outside [0, 1) is a ValueError naming it."""
    with pytest.raises(ValueError, match=rf"\[0, 1\).*{p}"):
        Dropout(p)


def test_gradients_numerically(xp):
    """check_layer in float64 (generator rewound so every pass uses one mask) agrees to 1e-6."""
    x = xp.asarray(np.random.default_rng(10).standard_normal((2, 3, 7, 9)))
    assert check_layer(Dropout(0.3, rng=np.random.default_rng(11)), x)["input"] <= 1e-6


@pytest.mark.gpu
def test_device_masks_are_drawn_there_and_follow_the_rule(cupy_backend):
    """With device_masks, on a GPU the mask is drawn on the device (no host mask copied in a step, two kernels: the draw
    and the fused threshold), from a generator seeded once from the layer's host generator: the same
    seed repeats the same masks; the rate, the 1 / (1 - p) scaling and the backward mask are the CPU's."""
    from minifcn.backend import to_device, to_numpy
    from minifcn.layers import Dropout

    def masks(seed, steps=2):
        layer = Dropout(0.3, rng=np.random.default_rng(seed), device_masks=True).train()
        x = to_device(np.ones((4, 64, 32, 32), np.float32), "gpu")
        drawn = []
        for _ in range(steps):
            cupy_backend.reset_counters()
            y = layer.forward(x)
            dx = layer.backward(to_device(np.full(x.shape, 2, np.float32), "gpu"))
            drawn.append((to_numpy(y), to_numpy(dx), to_numpy(layer.last_mask)))
        return drawn, dict(cupy_backend.COUNTERS)

    first, counters = masks(5)
    again, _ = masks(5)
    other, _ = masks(6)
    y, dx, mask = first[0]
    scale = np.float32(1 / (1 - 0.3))
    assert set(np.unique(mask)) == {0, scale}
    np.testing.assert_array_equal(y, mask)  # the input was ones
    np.testing.assert_array_equal(dx, 2 * mask)
    assert abs((mask == 0).mean() - 0.3) < 0.01
    assert not np.array_equal(first[0][2], first[1][2])  # a new mask every step
    for (a, _, _), (b, _, _) in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][2], other[0][2])
    # The last step: the draw and the threshold kernel, the product and the backward product.
    assert counters["to_device"] == 1  # the gradient this test moves, no mask
    assert counters["launches"] == 4
