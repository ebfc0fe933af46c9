"""The transposed convolution layer (Caffe's "Deconvolution"), FCN's upsampling."""

from ..ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward
from .bilinear import bilinear_kernel
from .weighted import WeightedLayer, he_normal


class ConvTranspose2d(WeightedLayer):
    """Transposed convolution x (N, Cin, H, W) -> y (N, Cout, (H - 1) * stride + k - 2 * padding, ...),
    with weight (Cin, Cout, kh, kw) as in Caffe and PyTorch.

    The weight starts as the bilinear upsampling kernel when Cin == Cout (the reference's
    initialisation) and otherwise He-normal from ``rng``. No bias by default: FCN's upsampling has none.
    """

    op = staticmethod(conv_transpose2d)
    op_backward = staticmethod(conv_transpose2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 rng=None, method="auto"):
        if in_channels == out_channels:
            weight = bilinear_kernel(in_channels, kernel_size)
        else:
            weight = he_normal((in_channels, out_channels, kernel_size, kernel_size),
                               in_channels * kernel_size * kernel_size, rng)
        super().__init__(weight, in_channels, out_channels, kernel_size, stride, padding, bias, method)
