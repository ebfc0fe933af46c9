"""Tests for minifcn.ops.softmax_cross_entropy: the pixel-wise loss with an ignored label and class weights.

References: a loop over pixels in float64, numerical gradients, and torch.nn.functional.cross_entropy.
"""

import numpy as np
import pytest

from minifcn.backend import get_array_module, to_numpy
from minifcn.gradcheck import check_gradients, relative_error
from minifcn.ops.softmax_cross_entropy import (
    check_labels,
    loss_normaliser,
    pixel_weights,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)

IGNORE = 255


def make_problem(n, k, h, w, seed=0, ignored=0.2, scale=1.0, dtype=np.float64, label_dtype=np.int32):
    """Random scores, labels in [0, K) with a fraction replaced by the ignore index, and class weights."""
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((n, k, h, w)) * scale).astype(dtype)
    labels = rng.integers(0, k, (n, h, w))
    labels[rng.random((n, h, w)) < ignored] = IGNORE
    weights = rng.uniform(0.2, 3.0, k).astype(dtype)
    return scores, labels.astype(label_dtype), weights


def naive_loss_and_grad(scores, labels, ignore_index, normalize, weights):
    """Loss and dscores one pixel at a time: w[l] * (logsumexp(s) - s[l]), averaged by the sum of weights."""
    n, k, h, w = scores.shape
    total, normaliser = 0.0, 0.0
    grad = np.zeros(scores.shape)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                label = int(labels[b, i, j])
                if label == ignore_index:
                    continue
                s = scores[b, :, i, j].astype(np.float64)
                logsumexp = s.max() + np.log(np.exp(s - s.max()).sum())
                weight = 1.0 if weights is None else float(weights[label])
                total += weight * (logsumexp - s[label])
                normaliser += weight
                g = np.exp(s - logsumexp)
                g[label] -= 1
                grad[b, :, i, j] = weight * g
    divisor = normaliser if (normalize and normaliser > 0) else 1.0
    return total / divisor, grad / divisor


OPTIONS = [
    pytest.param(True, False, id="mean"),
    pytest.param(False, False, id="sum"),
    pytest.param(True, True, id="mean-weighted"),
    pytest.param(False, True, id="sum-weighted"),
]


@pytest.mark.parametrize("normalize, weighted", OPTIONS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (2, 3, 13, 11)])
def test_matches_naive_loop(xp, shape, normalize, weighted):
    """Loss and gradient equal the pixel loop, with ignored pixels, class weights, normalize on and off."""
    scores, labels, weights = make_problem(*shape)
    w = xp.asarray(weights) if weighted else None
    loss, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE, normalize, w)
    grad = softmax_cross_entropy_backward(cache)
    expected_loss, expected_grad = naive_loss_and_grad(scores, labels, IGNORE, normalize, weights if weighted else None)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-12)
    assert relative_error(grad, expected_grad) <= 1e-12


@pytest.mark.parametrize("normalize, weighted", OPTIONS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (2, 3, 13, 11)])
def test_gradients_numerically(xp, shape, normalize, weighted):
    """Central differences in float64 agree with the gradient to 1e-6 (ignored labels included)."""
    scores_host, labels_host, weights = make_problem(*shape, seed=1)
    scores, labels = xp.asarray(scores_host), xp.asarray(labels_host)
    w = xp.asarray(weights) if weighted else None
    state = {}

    def forward():
        loss, state["cache"] = softmax_cross_entropy(scores, labels, IGNORE, normalize, w)
        return loss

    def backward(dloss):
        return {"scores": softmax_cross_entropy_backward(state["cache"], dloss)}

    errors = check_gradients(forward, backward, {"scores": scores})
    assert errors["scores"] <= 1e-6


def test_loss_is_0d_on_the_scores_device_and_keeps_float32(xp):
    """A float32 problem gives a 0-d float32 loss on the scores' device and a float32 gradient,
    even with float64 class weights (no silent promotion)."""
    scores, labels, weights = make_problem(2, 4, 5, 6, dtype=np.float32)
    weights64 = xp.asarray(weights.astype(np.float64))
    loss, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE, True, weights64)
    assert loss.shape == () and loss.dtype == np.float32
    assert get_array_module(loss) is xp
    assert softmax_cross_entropy_backward(cache).dtype == np.float32


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_pixel_ignored_gives_zero_loss_and_gradient(xp, normalize, weighted):
    """All labels ignored: loss exactly 0 and an all-zero gradient, with no NaN from dividing by 0 pixels."""
    scores, labels, weights = make_problem(2, 5, 7, 9)
    labels[...] = IGNORE
    w = xp.asarray(weights) if weighted else None
    loss, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE, normalize, w)
    grad = to_numpy(softmax_cross_entropy_backward(cache))
    assert float(loss) == 0.0
    assert np.isfinite(grad).all()
    assert not grad.any()


@pytest.mark.parametrize("normalize, weighted", OPTIONS)
def test_parts_with_the_batchs_normaliser_add_up_to_the_batch(xp, normalize, weighted):
    """A batch cut into parts, each part's loss divided by the whole batch's normaliser: the parts'
    losses add up to the batch's and their gradients are the batch's (the naive loop's on the whole
    batch), also for a part whose pixels are all ignored."""
    scores, labels, weights = make_problem(3, 4, 6, 7, seed=9)
    labels[2] = IGNORE
    w = xp.asarray(weights) if weighted else None
    expected_loss, expected_grad = naive_loss_and_grad(scores, labels, IGNORE, normalize, weights if weighted else None)
    kept = labels != IGNORE
    total_weight = (weights[labels[kept]].sum() if weighted else kept.sum()) if normalize else 1.0
    xp_labels = xp.asarray(labels)
    pixel_weight, _ = pixel_weights(xp_labels, IGNORE, w, np.dtype(np.float64))
    normaliser = loss_normaliser(pixel_weight, normalize)
    assert float(normaliser) == pytest.approx(total_weight, rel=1e-12)
    losses, grads = [], []
    for part in (slice(0, 1), slice(1, 3)):
        loss, cache = softmax_cross_entropy(xp.asarray(scores[part]), xp_labels[part], IGNORE, normalize, w,
                                            normaliser=normaliser)
        losses.append(float(loss))
        grads.append(to_numpy(softmax_cross_entropy_backward(cache)))
    assert sum(losses) == pytest.approx(expected_loss, rel=1e-12)
    assert relative_error(np.concatenate(grads), expected_grad) <= 1e-12


@pytest.mark.parametrize("weighted", [False, True])
def test_sum_is_mean_times_total_weight(xp, weighted):
    """normalize=False sums: it equals the mean times the number of kept pixels (or their total weight)."""
    scores, labels, weights = make_problem(2, 5, 7, 9, seed=2)
    w = xp.asarray(weights) if weighted else None
    args = (xp.asarray(scores), xp.asarray(labels), IGNORE)
    mean, mean_cache = softmax_cross_entropy(*args, True, w)
    total, total_cache = softmax_cross_entropy(*args, False, w)
    kept = labels != IGNORE
    divisor = weights[labels[kept]].sum() if weighted else kept.sum()
    assert float(total) == pytest.approx(float(mean) * divisor, rel=1e-12)
    np.testing.assert_allclose(
        to_numpy(softmax_cross_entropy_backward(total_cache)),
        to_numpy(softmax_cross_entropy_backward(mean_cache)) * divisor,
        rtol=1e-12, atol=1e-15,
    )


def test_uniform_weights_cancel_in_the_mean(xp):
    """Weighting every class by 2.5 leaves the mean unchanged and multiplies the sum by 2.5."""
    scores, labels, _ = make_problem(2, 5, 7, 9, seed=3)
    args = (xp.asarray(scores), xp.asarray(labels), IGNORE)
    uniform = xp.full(5, 2.5)
    def loss(normalize, weights=None):
        return float(softmax_cross_entropy(*args, normalize, weights)[0])

    assert loss(True, uniform) == pytest.approx(loss(True), rel=1e-12)
    assert loss(False, uniform) == pytest.approx(2.5 * loss(False), rel=1e-12)


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int64, np.int16])
def test_label_dtypes_agree(xp, label_dtype):
    """uint8 labels (as VOC's PNGs hold them, 255 ignored) and other integer types give the int32 result."""
    scores, labels, _ = make_problem(2, 5, 7, 9, seed=4)
    reference, ref_cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE)
    loss, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels.astype(label_dtype)), IGNORE)
    assert float(loss) == float(reference)
    np.testing.assert_array_equal(
        to_numpy(softmax_cross_entropy_backward(cache)), to_numpy(softmax_cross_entropy_backward(ref_cache))
    )


def test_other_ignore_index(xp):
    """ignore_index=-1 skips the pixels labelled -1 and no others."""
    scores, labels, _ = make_problem(2, 5, 7, 9, seed=5)
    moved = np.where(labels == IGNORE, -1, labels)
    loss, _ = softmax_cross_entropy(xp.asarray(scores), xp.asarray(moved), ignore_index=-1)
    expected, _ = naive_loss_and_grad(scores, moved, -1, True, None)
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_upstream_gradient_scales(xp):
    """backward(cache, dloss) is dloss times backward(cache), for a float and for a 0-d device array."""
    scores, labels, _ = make_problem(2, 5, 7, 9, seed=6)
    _, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE)
    unit = to_numpy(softmax_cross_entropy_backward(cache))
    np.testing.assert_allclose(to_numpy(softmax_cross_entropy_backward(cache, 2.0)), 2 * unit, rtol=1e-15)
    scaled = to_numpy(softmax_cross_entropy_backward(cache, xp.asarray(-0.5)))
    np.testing.assert_allclose(scaled, -0.5 * unit, rtol=1e-15)


def test_backward_leaves_cache_alone(xp):
    """Backward twice gives the same gradient: it does not write into its cache."""
    scores, labels, _ = make_problem(2, 5, 7, 9, seed=7)
    _, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE)
    first = to_numpy(softmax_cross_entropy_backward(cache, 3.0))
    second = to_numpy(softmax_cross_entropy_backward(cache, 3.0))
    np.testing.assert_array_equal(first, second)


def test_labels_of_wrong_shape_name_both_shapes(xp):
    """Labels (2, 9, 7) for scores (2, 5, 7, 9) are a ValueError naming expected and received shapes."""
    scores = xp.zeros((2, 5, 7, 9), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 7, 9\).*\(2, 5, 7, 9\).*got \(2, 9, 7\)"):
        softmax_cross_entropy(scores, xp.zeros((2, 9, 7), np.int32))
    with pytest.raises(ValueError, match=r"\(2, 7, 9\).*got \(7, 9\)"):
        softmax_cross_entropy(scores, xp.zeros((7, 9), np.int32))


@pytest.mark.parametrize("bad", [5, -1, 21, 254])
def test_labels_out_of_range_are_rejected(xp, bad):
    """Labels outside [0, K) other than the ignore index are a ValueError naming the range and the values."""
    scores, labels, _ = make_problem(2, 5, 7, 9)
    labels[1, 3, 4] = bad
    with pytest.raises(ValueError, match=rf"\[0, 5\).*ignore index 255.*\[{bad}\]"):
        softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels))
    with pytest.raises(ValueError, match=rf"\[{bad}\]"):
        check_labels(xp.asarray(labels), 5, IGNORE)


def test_label_check_can_be_turned_off(xp):
    """check=False skips the device round trip; valid labels give the same loss either way."""
    scores, labels, _ = make_problem(2, 5, 7, 9)
    checked, _ = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels))
    unchecked, _ = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), check=False)
    assert float(checked) == float(unchecked)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_])
def test_non_integer_labels_are_rejected(xp, dtype):
    """Float (or boolean) labels are a ValueError naming the dtype."""
    with pytest.raises(ValueError, match=rf"integer.*{np.dtype(dtype).name}"):
        softmax_cross_entropy(xp.zeros((2, 5, 7, 9), np.float32), xp.zeros((2, 7, 9), dtype))


def test_other_bad_inputs_are_rejected(xp):
    """Integer scores, 3-D scores and class weights of the wrong length each raise ValueError saying why."""
    labels = xp.zeros((2, 7, 9), np.int32)
    with pytest.raises(ValueError, match="floating-point.*int32"):
        softmax_cross_entropy(xp.zeros((2, 5, 7, 9), np.int32), labels)
    with pytest.raises(ValueError, match=r"\(N, K, H, W\).*\(5, 7, 9\)"):
        softmax_cross_entropy(xp.zeros((5, 7, 9), np.float32), labels)
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        softmax_cross_entropy(xp.zeros((2, 5, 7, 9), np.float32), labels, class_weights=xp.ones(4, np.float32))


def torch_loss_and_grad(torch, scores, labels, normalize, weights):
    ts = torch.from_numpy(scores).requires_grad_()
    tw = None if weights is None else torch.from_numpy(weights)
    loss = torch.nn.functional.cross_entropy(
        ts, torch.from_numpy(labels.astype(np.int64)), weight=tw, ignore_index=IGNORE,
        reduction="mean" if normalize else "sum",
    )
    loss.backward()
    return loss.detach().numpy(), ts.grad.numpy()


@pytest.mark.torch
@pytest.mark.parametrize("normalize, weighted", OPTIONS)
@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["logits-1", "logits-1e4"])
def test_matches_torch(xp, torch, normalize, weighted, scale):
    """Loss and gradient equal torch's cross_entropy(ignore_index=255, weight=..., reduction='mean'/'sum')
    on 21 classes at 70x70 in float32 to 1e-5, also with logits of magnitude 1e4 (finite, no overflow)."""
    scores, labels, weights = make_problem(2, 21, 70, 70, seed=8, ignored=0.1, scale=scale, dtype=np.float32)
    weights = weights if weighted else None
    loss, cache = softmax_cross_entropy(xp.asarray(scores), xp.asarray(labels), IGNORE, normalize,
                                        None if weights is None else xp.asarray(weights))
    grad = softmax_cross_entropy_backward(cache)
    assert np.isfinite(float(loss)) and np.isfinite(to_numpy(grad)).all()
    expected_loss, expected_grad = torch_loss_and_grad(torch, scores, labels, normalize, weights)
    assert relative_error(loss, expected_loss) <= 1e-5
    assert relative_error(grad, expected_grad) <= 1e-5
