"""Solutions to the exercises of 08_vgg16_weights.ipynb.

A preprocessing dict (``channel_order``, ``scale``, ``mean``, ``std``) turns a pixel p in 0..255 into
network channel c as x_c = (p_{order(c)} * scale / 255 - mean_c) / std_c.
"""

import numpy as np


def _affine(preprocessing):
    # For R, G, B (j = 0, 1, 2): the network channel that holds it, and x = a_j * p_j + c_j.
    order = [2, 1, 0] if preprocessing["channel_order"] == "BGR" else [0, 1, 2]
    factor = preprocessing["scale"] / 255.0
    mean = np.asarray(preprocessing["mean"], np.float64)
    std = np.asarray(preprocessing["std"], np.float64)
    slope = np.array([factor / std[order[j]] for j in range(3)])
    offset = np.array([-mean[order[j]] / std[order[j]] for j in range(3)])
    return order, slope, offset


def fold_convention(weight, bias, trained_on, fed_with):
    """``conv1_1`` weight (O, 3, kh, kw) and bias (O,) for inputs prepared with ``fed_with`` that compute
    what ``weight``, ``bias`` compute on inputs prepared with ``trained_on``.

    For colour j both conventions are affine in the pixel: x = a p + c (trained) and z = a' p + c' (fed),
    so x = (a / a') z + (c - a c' / a'). The weight of x's channel, times a / a', moves to z's channel;
    the constant part, summed over the kernel window, moves into the bias. This holds wherever the
    whole window lies on the image. On the border the windows reach into the zero padding, and a zero
    stands for the convention's mean colour: Caffe's VGG16 mean (123.7, 116.8, 103.9) in RGB on one
    side, torchvision's ImageNet mean times 255 (123.7, 116.3, 103.5) on the other. The two means differ
    by at most half a grey level, so the border differs, but only slightly.
    """
    weight = np.asarray(weight, np.float64)
    old_order, old_slope, old_offset = _affine(trained_on)
    new_order, new_slope, new_offset = _affine(fed_with)
    folded = np.zeros_like(weight)
    folded_bias = np.asarray(bias, np.float64).copy()
    for j in range(3):
        ratio = old_slope[j] / new_slope[j]
        constant = old_offset[j] - ratio * new_offset[j]
        folded[:, new_order[j]] = weight[:, old_order[j]] * ratio
        folded_bias += weight[:, old_order[j]].sum(axis=(1, 2)) * constant
    return folded.astype(np.float32), folded_bias.astype(np.float32)


def geometry_changes_no_array():
    """No array differs: the geometry moves paddings and crops, never a parameter's shape, and both
    models draw fc6/fc7 from the same seed, copy the same convolutions and start the score layers at
    zero and the upsampling bilinear. Only ``options["geometry"]`` in the metadata tells them apart."""
    return set()


def pth_of_caffe_weights_row():
    """The .pth format implies torchvision's convention (RGB, 0..1, ImageNet mean and std), so these
    Caffe weights would be fed the "torchvision's convention" row: features unrelated to the right ones."""
    return "torchvision's convention"
