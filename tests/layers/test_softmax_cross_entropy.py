"""Tests for minifcn.layers.softmax_cross_entropy.SoftmaxCrossEntropy: the loss layer of FCN."""

import numpy as np
import pytest

from minifcn.backend import get_array_module, to_numpy
from minifcn.gradcheck import check_layer, relative_error
from minifcn.layers import SoftmaxCrossEntropy

IGNORE = 255


def make_problem(xp, n=2, k=5, h=7, w=9, seed=0, ignored=0.2, scale=1.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((n, k, h, w)) * scale).astype(dtype)
    labels = rng.integers(0, k, (n, h, w)).astype(np.int32)
    labels[rng.random((n, h, w)) < ignored] = IGNORE
    return xp.asarray(scores), xp.asarray(labels)


def torch_loss_and_grad(torch, scores, labels, reduction="mean", weight=None):
    ts = torch.from_numpy(to_numpy(scores)).requires_grad_()
    loss = torch.nn.functional.cross_entropy(
        ts, torch.from_numpy(to_numpy(labels).astype(np.int64)), ignore_index=IGNORE, reduction=reduction,
        weight=None if weight is None else torch.from_numpy(np.asarray(weight, np.float32)),
    )
    loss.backward()
    return loss.detach().numpy(), ts.grad.numpy()


def test_defaults():
    """Label 255 is ignored and the loss is averaged unless asked otherwise; there are no parameters."""
    layer = SoftmaxCrossEntropy()
    assert (layer.ignore_index, layer.normalize, layer.class_weights) == (255, True, None)
    assert list(layer.parameters()) == []
    assert repr(layer) == "SoftmaxCrossEntropy(ignore_index=255, normalize=True)"


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0, 3.0, 0.25]])
def test_gradients_numerically(xp, normalize, weights):
    """check_layer in float64 with ignored labels agrees to 1e-6, with host class weights and either
    normalisation."""
    scores, labels = make_problem(xp, seed=1, dtype=np.float64)
    layer = SoftmaxCrossEntropy(normalize=normalize, class_weights=None if weights is None else np.array(weights))
    assert check_layer(layer, scores, labels)["input"] <= 1e-6


@pytest.mark.torch
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0, 3.0, 0.25]])
def test_matches_torch(xp, torch, normalize, weights):
    """Loss and dscores equal torch's cross_entropy (mean or sum, weighted or not) in float32 to 1e-5;
    the loss is a 0-d float32 array on the scores' device."""
    scores, labels = make_problem(xp, n=2, k=5, h=31, w=29, seed=2)
    layer = SoftmaxCrossEntropy(normalize=normalize, class_weights=weights)
    loss = layer.forward(scores, labels)
    assert loss.shape == () and loss.dtype == np.float32 and get_array_module(loss) is xp
    grad = layer.backward()
    expected_loss, expected_grad = torch_loss_and_grad(torch, scores, labels, "mean" if normalize else "sum", weights)
    assert relative_error(loss, expected_loss) <= 1e-5
    assert relative_error(grad, expected_grad) <= 1e-5


@pytest.mark.torch
def test_huge_logits_are_finite_and_match_torch(xp, torch):
    """Logits of magnitude 1e4 (exp would overflow) give a finite loss and gradient equal to torch's."""
    scores, labels = make_problem(xp, k=21, h=13, w=11, seed=3, scale=1e4)
    layer = SoftmaxCrossEntropy()
    loss = layer.forward(scores, labels)
    grad = layer.backward()
    assert np.isfinite(float(loss)) and np.isfinite(to_numpy(grad)).all()
    expected_loss, expected_grad = torch_loss_and_grad(torch, scores, labels)
    assert relative_error(loss, expected_loss) <= 1e-5
    assert relative_error(grad, expected_grad) <= 1e-5


@pytest.mark.parametrize("normalize", [True, False])
def test_every_pixel_ignored(xp, normalize):
    """With every label 255 the loss is exactly 0 and the gradient all zeros, with no NaN."""
    scores, labels = make_problem(xp, seed=4)
    labels[...] = IGNORE
    layer = SoftmaxCrossEntropy(normalize=normalize, class_weights=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert float(layer.forward(scores, labels)) == 0.0
    grad = to_numpy(layer.backward())
    assert np.isfinite(grad).all() and not grad.any()


def test_normalize_false_sums(xp):
    """normalize=False gives the sum over kept pixels: the mean times their number, for loss and gradient."""
    scores, labels = make_problem(xp, seed=5, dtype=np.float64)
    kept = int((to_numpy(labels) != IGNORE).sum())
    mean_layer, sum_layer = SoftmaxCrossEntropy(), SoftmaxCrossEntropy(normalize=False)
    mean, total = float(mean_layer.forward(scores, labels)), float(sum_layer.forward(scores, labels))
    assert total == pytest.approx(mean * kept, rel=1e-12)
    np.testing.assert_allclose(to_numpy(sum_layer.backward()), to_numpy(mean_layer.backward()) * kept, rtol=1e-12)


def test_backward_scales_by_dloss(xp):
    """backward(dloss) is dloss times backward()."""
    scores, labels = make_problem(xp, seed=6, dtype=np.float64)
    layer = SoftmaxCrossEntropy()
    layer.forward(scores, labels)
    unit = to_numpy(layer.backward())
    layer.forward(scores, labels)
    np.testing.assert_allclose(to_numpy(layer.backward(0.25)), 0.25 * unit, rtol=1e-15)


def test_predictions_are_the_argmax_of_the_scores(xp):
    """predictions() is scores.argmax(1) as int32 on the scores' device, ties going to the first class."""
    scores, labels = make_problem(xp, k=21, h=13, w=11, seed=7)
    scores[0, 3] = scores[0, 7] = scores[0].max(axis=0) + 1  # class 3 and class 7 tie on image 0
    layer = SoftmaxCrossEntropy()
    layer.forward(scores, labels)
    predictions = layer.predictions()
    assert predictions.dtype == np.int32 and predictions.shape == (2, 13, 11)
    assert get_array_module(predictions) is xp
    np.testing.assert_array_equal(to_numpy(predictions), to_numpy(scores).argmax(axis=1))
    assert (to_numpy(predictions)[0] == 3).all()


def test_predictions_need_a_forward_pass(xp):
    """predictions() before any forward pass, or after backward released the cache, is a RuntimeError."""
    layer = SoftmaxCrossEntropy()
    with pytest.raises(RuntimeError, match="forward"):
        layer.predictions()
    scores, labels = make_problem(xp)
    layer.forward(scores, labels)
    layer.backward()
    with pytest.raises(RuntimeError, match="forward"):
        layer.predictions()


def test_bad_labels_are_rejected(xp):
    """Labels of the wrong shape, values outside [0, K) other than 255, and float labels are ValueErrors
    naming what was expected and what came."""
    scores, labels = make_problem(xp)
    layer = SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"\(2, 7, 9\).*got \(2, 7, 8\)"):
        layer.forward(scores, labels[:, :, :8])
    bad = labels.copy()
    bad[0, 0, 0] = 5
    with pytest.raises(ValueError, match=r"\[0, 5\).*255.*\[5\]"):
        layer.forward(scores, bad)
    with pytest.raises(ValueError, match="integer.*float32"):
        layer.forward(scores, labels.astype(np.float32))


@pytest.mark.gpu
def test_class_weights_are_moved_to_the_device_once(cupy_backend):
    """Host class weights are copied to the device on the first forward and kept, and give the loss
    the CPU gives; new weights are moved again."""
    from minifcn.backend import to_device, to_numpy
    from minifcn.layers import SoftmaxCrossEntropy

    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 5, 4)).astype(np.int32)
    weights = np.array([0.5, 2.0, 1.0], np.float32)
    on_cpu = SoftmaxCrossEntropy(class_weights=weights).forward(scores, labels)
    layer = SoftmaxCrossEntropy(class_weights=weights, check_labels=False)
    device_scores, device_labels = to_device(scores, "gpu"), to_device(labels, "gpu")
    for _ in range(3):
        cupy_backend.reset_counters()
        loss = layer.forward(device_scores, device_labels)
        moved = cupy_backend.COUNTERS["to_device"]
    assert moved == 0
    np.testing.assert_allclose(to_numpy(loss), on_cpu, rtol=1e-6)
    layer.class_weights = np.array([1.0, 1.0, 1.0], np.float32)
    cupy_backend.reset_counters()
    loss = layer.forward(device_scores, device_labels)
    assert cupy_backend.COUNTERS["to_device"] == 1
    np.testing.assert_allclose(to_numpy(loss), SoftmaxCrossEntropy().forward(scores, labels), rtol=1e-6)
