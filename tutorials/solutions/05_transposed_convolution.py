"""Solutions to the exercises of 05_transposed_convolution.ipynb.

Shapes: x (N, C, H, W); a transposed convolution's weight (Cin, Cout, kh, kw).
"""

import numpy as np

from minifcn.ops import conv_transpose2d


def bilinear_filter(kernel_size):
    """The (k, k) bilinear filter: the outer product of a tent of half-width f = ceil(k / 2).

    Its centre c is f - 1 for an odd k and f - 1/2 for an even k; each tap weighs 1 - |a - c| / f.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    tent = 1 - np.abs(np.arange(kernel_size) - center) / factor
    return np.outer(tent, tent)


def unpadded_crop_offset(stride):
    """Where an unpadded upsampling (kernel 2s, stride s) must be cropped to match padding s / 2.

    Padding p removes p rows and columns from each border of the full output, so cropping the
    unpadded output at offset p = s / 2 to s times the input's size gives the same map.
    """
    return stride // 2


def nearest_by_transposed_conv(x, stride):
    """Nearest-neighbour upsampling x (N, C, H, W) -> (N, C, sH, sW) as a transposed convolution.

    A kernel of ones of size s with stride s stamps each pixel on an s x s block, without overlap; on
    the channel diagonal, so that channels stay apart.
    """
    channels = x.shape[1]
    weight = np.zeros((channels, channels, stride, stride), dtype=x.dtype)
    weight[np.arange(channels), np.arange(channels)] = 1
    y, _ = conv_transpose2d(x, weight, stride=stride)
    return y
