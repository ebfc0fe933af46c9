"""Solutions to the exercises of 09_camvid_fine_tuning.ipynb.

``counts`` is a (K, K) confusion matrix: counts[i, j] pixels of true class i predicted as class j.
"""

import numpy as np


def class_iou(counts, k):
    """Pixels right over the union of "class k in the truth" (row k) and "class k predicted"
    (column k); the diagonal cell lies in both, so it is taken off once."""
    counts = np.asarray(counts)
    union = counts[k].sum() + counts[:, k].sum() - counts[k, k]
    return counts[k, k] / union if union else float("nan")


def mistaken_for(counts, k):
    """The column with the most pixels in row k, the diagonal left out."""
    row = np.asarray(counts)[k].astype(np.float64)
    row[k] = -1
    return int(row.argmax())
