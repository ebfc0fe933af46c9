"""Segmentation scores from a confusion matrix, exactly as the FCN reference's ``score.py`` computes them.

The confusion matrix (K, K) counts pixels by (true class, predicted class). It is accumulated on the
device of the predictions, batch after batch, and read back to the host once, when the scores are
wanted; from it come pixel accuracy, mean class accuracy, mean IoU and frequency-weighted IoU.
"""

import numpy as np

from .backend import get_array_module, to_numpy


def confusion_matrix(pred, label, num_classes, ignore_index=255):
    """(K, K) int64 pixel counts, rows the true class, columns the predicted one.

    ``pred`` and ``label`` are integer arrays of one shape, e.g. (N, H, W), on one device; the result is
    on that device. Pixels whose label is ``ignore_index`` or otherwise outside [0, K) are left out (as
    in the reference), and so are predictions outside [0, K), which would otherwise land in another
    class's cell.
    """
    if pred.shape != label.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and label {tuple(label.shape)} must have the same shape")
    xp = get_array_module(pred, label)
    k = int(num_classes)
    pred = pred.ravel().astype(xp.int64)
    label = label.ravel().astype(xp.int64)
    valid = (label >= 0) & (label < k) & (label != ignore_index) & (pred >= 0) & (pred < k)
    # Excluded pixels go to the extra bin K*K, dropped below: a boolean mask would have to read its
    # count back from the GPU to size its result, this keeps every shape known in advance.
    cells = xp.where(valid, label * k + pred, k * k)
    counts = count_values(cells, k * k + 1, by_sorting=xp is not np)
    return counts[: k * k].reshape(k, k)


def count_values(values, length, by_sorting=False):
    """(length,) int64 occurrences of 0..length-1 in the 1-D integer array ``values`` (all in range).

    ``bincount`` on the host. On the GPU ``cupy.bincount`` reads max(values) back to size its output,
    a device sync per batch; sorting and then binary-searching the bin edges gives the same counts with
    every size known in advance, so evaluation never waits on the device.
    """
    xp = get_array_module(values)
    if not by_sorting:
        return xp.bincount(values, minlength=length)[:length].astype(xp.int64)
    edges = xp.searchsorted(xp.sort(values), xp.arange(length + 1, dtype=values.dtype), side="left")
    return (edges[1:] - edges[:-1]).astype(xp.int64)


class ConfusionMatrix:
    """A confusion matrix accumulated over batches on the device of the first ``update``.

    ``update(pred, label)`` adds a batch (any matching shapes, e.g. (N, H, W)); ``scores()`` reads the
    (K, K) counts back once and returns the FCN scores; ``reset()`` starts over.
    """

    def __init__(self, num_classes, ignore_index=255):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = None

    def update(self, pred, label):
        """Add the counts of one batch of predictions and labels (integer arrays of one shape)."""
        counts = confusion_matrix(pred, label, self.num_classes, self.ignore_index)
        if self.matrix is None:
            self.matrix = counts
        else:
            self.matrix += counts

    def reset(self):
        self.matrix = None

    def to_numpy(self):
        """The accumulated (K, K) int64 counts on the host (zeros before any update)."""
        if self.matrix is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return to_numpy(self.matrix)

    def scores(self):
        """The FCN scores of everything added so far; see ``scores_from_matrix``."""
        return scores_from_matrix(self.to_numpy())


def scores_from_matrix(hist):
    """Scores of a (K, K) confusion matrix (read back to the host if it is on the GPU) (rows truth, columns prediction), as in ``score.py``.

    Returns a dict of Python floats: ``pixel_accuracy`` = diag.sum() / hist.sum();
    ``mean_accuracy`` = nanmean(diag / hist.sum(1)); ``mean_iou`` = nanmean(iu) with
    iu = diag / (hist.sum(1) + hist.sum(0) - diag); ``frequency_weighted_iou`` = sum of iu weighted by
    each class's share of the true pixels; and the lists ``per_class_iou`` and ``per_class_accuracy``.
    A class absent from both truth and prediction has IoU NaN and is left out of the means; a class
    only predicted has IoU 0 (and accuracy NaN, having no true pixels). Every score is NaN when there
    are no counted pixels at all.
    """
    hist = to_numpy(hist).astype(np.float64)
    diag = np.diag(hist)
    truth, predicted, total = hist.sum(axis=1), hist.sum(axis=0), hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = diag.sum() / total if total else np.nan
        class_accuracy = diag / truth
        iou = diag / (truth + predicted - diag)
        frequency = truth / total if total else np.zeros_like(truth)
    present = frequency > 0
    return {
        "pixel_accuracy": float(accuracy),
        "mean_accuracy": _nanmean(class_accuracy),
        "mean_iou": _nanmean(iou),
        "frequency_weighted_iou": float((frequency[present] * iou[present]).sum()) if total else float("nan"),
        "per_class_iou": [float(v) for v in iou],
        "per_class_accuracy": [float(v) for v in class_accuracy],
    }


def _nanmean(values):
    # np.nanmean warns "Mean of empty slice" when everything is NaN; an empty evaluation is not an error.
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")
