"""Solutions to the exercises of 10_training_from_scratch.ipynb.

Shapes: labels (N, H, W) int; a parameter and its gradient and moments share one shape.
"""

import numpy as np


def prior_loss(pixel_share):
    """The cross-entropy of predicting the shares p everywhere: a pixel of class k costs -ln p_k, and a
    share p_k of the pixels are of class k, so the mean is the entropy -sum_k p_k ln p_k."""
    p = np.asarray(pixel_share, dtype=np.float64)
    p = p[p > 0]                       # a class that never occurs adds nothing (0 ln 0 = 0)
    return float(-(p * np.log(p)).sum())


def adam_update(w, g, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step at step number t (from 1): new running means of g and g^2, each divided by its
    bias correction (both start at zero), then a step of lr times their ratio."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def activation_ratio(preprocessing_from_scratch):
    """About the mean of the std that the from-scratch convention divides by (about 57.6).

    Without the division every input channel c is std_c times larger. With zero biases, a convolution
    is linear, and ReLU and max pooling commute with multiplication by a positive number, so the
    untrained network is positively homogeneous: multiplying the input by c multiplies every activation
    by c. The three stds differ by about 2%, so the factor lies between them, near their mean.
    """
    return float(np.mean(preprocessing_from_scratch["std"]))


def median_frequency_weights(labels, num_classes):
    """w_c = median(f) / f_c with f_c = (pixels of class c) / (pixels of the images that contain c).

    Classes that never occur get weight 0 and are left out of the median."""
    labels = np.asarray(labels)
    pixels = np.zeros(num_classes)
    image_pixels = np.zeros(num_classes)
    for label in labels:
        counts = np.bincount(label.ravel(), minlength=num_classes)[:num_classes]
        pixels += counts
        image_pixels += np.where(counts > 0, label.size, 0)
    present = pixels > 0
    frequency = pixels[present] / image_pixels[present]
    weights = np.zeros(num_classes)
    weights[present] = np.median(frequency) / frequency
    return weights.astype(np.float32)
