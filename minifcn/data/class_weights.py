"""Median-frequency class balancing (Eigen & Fergus 2015, as used by SegNet on CamVid)."""

import numpy as np


def median_frequency_weights(pixel_counts, image_pixel_counts):
    """Weights (K,) float32: ``median(freq) / freq[c]``.

    ``pixel_counts`` (K,): pixels of class c over the dataset. ``image_pixel_counts`` (K,): total
    (non-ignored) pixels of the images in which class c appears. freq[c] is their ratio, so a class that
    is rare but large where present is not over-weighted. A class that never appears gets weight 0
    (it contributes no pixels to weigh) and is left out of the median.
    """
    pixel_counts = np.asarray(pixel_counts, dtype=np.float64)
    image_pixel_counts = np.asarray(image_pixel_counts, dtype=np.float64)
    present = (pixel_counts > 0) & (image_pixel_counts > 0)
    weights = np.zeros(pixel_counts.shape, dtype=np.float64)
    if present.any():
        freq = pixel_counts[present] / image_pixel_counts[present]
        weights[present] = np.median(freq) / freq
    return weights.astype(np.float32)


def count_label_pixels(labels, num_classes, ignore_index=255):
    """``(pixel_counts, image_pixel_counts)``, both (K,) int64, over an iterable of (H, W) label arrays."""
    pixel_counts = np.zeros(num_classes, dtype=np.int64)
    image_pixel_counts = np.zeros(num_classes, dtype=np.int64)
    for label in labels:
        valid = label[(label != ignore_index) & (label >= 0) & (label < num_classes)]
        counts = np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
        pixel_counts += counts
        image_pixel_counts += np.where(counts > 0, valid.size, 0)
    return pixel_counts, image_pixel_counts
