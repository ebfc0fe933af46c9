"""The convolution layer: a weight (O, C, kh, kw) and a bias (O,) around ``ops.conv2d``."""

from ..ops.conv import conv2d, conv2d_backward
from .weighted import WeightedLayer, he_normal


class Conv2d(WeightedLayer):
    """2-D convolution: x (N, C, H, W) -> y (N, O, OH, OW). A 1x1 kernel is a fully connected layer
    applied at every pixel and takes a plain matrix-product path.

    Weights start He-normal from ``rng`` (a NumPy Generator on the host); biases at zero.
    """

    op = staticmethod(conv2d)
    op_backward = staticmethod(conv2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 rng=None, method="auto"):
        weight = he_normal((out_channels, in_channels, kernel_size, kernel_size),
                           in_channels * kernel_size * kernel_size, rng)
        super().__init__(weight, in_channels, out_channels, kernel_size, stride, padding, bias, method)
