"""Confusion matrix and FCN scores, against matrices written out by hand, a naive loop and score.py."""

import math
import warnings

import numpy as np
import pytest

from minifcn import backend
from minifcn.metrics import ConfusionMatrix, confusion_matrix, count_values, scores_from_matrix

# Three classes, one ignored pixel. Pairs (truth, prediction) of the seven counted pixels:
# (0,0) (0,1) (1,1) (2,2) (1,2) (1,1) (0,0).
LABEL = [[0, 0, 1, 255], [2, 1, 1, 0]]
PRED = [[0, 1, 1, 2], [2, 2, 1, 0]]
HIST = [[2, 1, 0], [0, 2, 1], [0, 0, 1]]


def test_confusion_matrix_by_hand(xp):
    hist = confusion_matrix(xp.asarray(PRED, dtype=xp.int32), xp.asarray(LABEL, dtype=xp.int32), 3)
    assert backend.get_array_module(hist) is xp, "computed on the inputs' device"
    assert hist.dtype == np.int64 and hist.shape == (3, 3)
    np.testing.assert_array_equal(backend.to_numpy(hist), HIST)


def test_scores_by_hand():
    scores = scores_from_matrix(np.array(HIST))
    # diag 2,2,1 of 7; truth 3,3,1; predicted 2,3,2.
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert scores["per_class_accuracy"] == pytest.approx([2 / 3, 2 / 3, 1])
    assert scores["mean_accuracy"] == pytest.approx(7 / 9)
    assert scores["per_class_iou"] == pytest.approx([2 / 3, 1 / 2, 1 / 2])
    assert scores["mean_iou"] == pytest.approx(5 / 9)
    assert scores["frequency_weighted_iou"] == pytest.approx(3 / 7 * 2 / 3 + 3 / 7 * 1 / 2 + 1 / 7 * 1 / 2)
    assert all(isinstance(v, float) for v in (scores["mean_iou"], scores["pixel_accuracy"]))


def test_absent_and_prediction_only_classes():
    # Four classes: 2 is only predicted (IoU 0, accuracy NaN), 3 appears nowhere (NaN, left out).
    label = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])
    hist = confusion_matrix(pred, label, 4)
    np.testing.assert_array_equal(hist, [[1, 0, 1, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = scores_from_matrix(hist)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 4)
    iou = scores["per_class_iou"]
    assert iou[:3] == pytest.approx([1 / 2, 1, 0]) and math.isnan(iou[3])
    accuracy = scores["per_class_accuracy"]
    assert accuracy[:2] == pytest.approx([1 / 2, 1]) and math.isnan(accuracy[2]) and math.isnan(accuracy[3])
    assert scores["mean_iou"] == pytest.approx(1 / 2)
    assert scores["mean_accuracy"] == pytest.approx(3 / 4)
    assert scores["frequency_weighted_iou"] == pytest.approx(1 / 2 * 1 / 2 + 1 / 2 * 1)


def test_all_ignored_gives_nan_without_warnings():
    label = np.full((2, 3), 255)
    metric = ConfusionMatrix(3)
    metric.update(np.zeros((2, 3), np.int64), label)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = metric.scores()
        empty = ConfusionMatrix(3).scores()
    for result in (scores, empty):
        assert all(math.isnan(result[k]) for k in ("pixel_accuracy", "mean_accuracy", "mean_iou",
                                                     "frequency_weighted_iou"))
        assert all(math.isnan(v) for v in result["per_class_iou"])


def naive_confusion(pred, label, num_classes, ignore_index):
    hist = np.zeros((num_classes, num_classes), np.int64)
    for p, t in zip(pred.ravel().tolist(), label.ravel().tolist()):
        if t != ignore_index and 0 <= t < num_classes:
            hist[t, p] += 1
    return hist


def reference_scores(hist):
    """score.py of the FCN reference, as published (with its NumPy warnings silenced)."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acc = np.diag(hist).sum() / hist.sum()
        acc_cls = np.nanmean(np.diag(hist) / hist.sum(1))
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        mean_iu = np.nanmean(iu)
        freq = hist.sum(1) / hist.sum()
        fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    return acc, acc_cls, mean_iu, fwavacc, iu


def test_against_a_naive_loop_and_score_py(xp):
    rng = np.random.default_rng(0)
    k = 5
    metric = ConfusionMatrix(k, ignore_index=255)
    pred_all, label_all = [], []
    for _ in range(3):
        label = rng.integers(0, k, (2, 7, 9))
        label[rng.random(label.shape) < 0.2] = 255
        label[label == 4] = 3  # class 4 only ever predicted
        pred = rng.integers(0, k, label.shape)
        metric.update(xp.asarray(pred), xp.asarray(label))
        pred_all.append(pred)
        label_all.append(label)
    pred_all, label_all = np.concatenate(pred_all), np.concatenate(label_all)
    expected = naive_confusion(pred_all, label_all, k, 255)
    np.testing.assert_array_equal(metric.to_numpy(), expected)
    scores = metric.scores()
    acc, acc_cls, mean_iu, fwavacc, iu = reference_scores(expected)
    assert scores["pixel_accuracy"] == pytest.approx(acc)
    assert scores["mean_accuracy"] == pytest.approx(acc_cls)
    assert scores["mean_iou"] == pytest.approx(mean_iu)
    assert scores["frequency_weighted_iou"] == pytest.approx(fwavacc)
    np.testing.assert_allclose(scores["per_class_iou"], iu)
    assert scores["per_class_iou"][4] == 0.0
    metric.reset()
    assert metric.to_numpy().sum() == 0


def test_out_of_range_values_are_not_counted():
    label = np.array([0, 1, -1, 7, 255, 1])
    pred = np.array([0, 1, 0, 0, 0, 9])
    np.testing.assert_array_equal(confusion_matrix(pred, label, 2), [[1, 0], [0, 1]])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), 2)


@pytest.mark.parametrize("by_sorting", [False, True])
def test_count_values_both_ways(by_sorting):
    values = np.array([3, 0, 3, 5, 3, 0], dtype=np.int64)
    np.testing.assert_array_equal(count_values(values, 6, by_sorting), [2, 0, 0, 3, 0, 1])
    np.testing.assert_array_equal(count_values(values[:0], 3, by_sorting), [0, 0, 0])
