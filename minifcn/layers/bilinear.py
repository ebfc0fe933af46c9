"""The bilinear upsampling kernel that FCN's transposed convolutions start from."""

import numpy as np


def bilinear_filter(kernel_size):
    """A (k, k) bilinear interpolation filter, as in the reference's ``upsample_filt``.

    For stride s = k / 2 (kernel 4 for stride 2, 16 for stride 8, 64 for stride 32) a transposed
    convolution with this filter is exact bilinear interpolation: every output pixel is a weighted
    mean of the (up to 4) input pixels around it, with weights that fall off linearly.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(kernel_size) - center) / factor
    return np.outer(ramp, ramp).astype(np.float32)


def bilinear_kernel(channels, kernel_size):
    """Weight (channels, channels, k, k) upsampling each channel on its own: the bilinear filter on
    the channel diagonal, zeros elsewhere (class c's scores never leak into class d's)."""
    weight = np.zeros((channels, channels, kernel_size, kernel_size), np.float32)
    weight[np.arange(channels), np.arange(channels)] = bilinear_filter(kernel_size)
    return weight
