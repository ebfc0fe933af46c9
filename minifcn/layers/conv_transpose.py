"""The transposed convolution layer (Caffe's "Deconvolution"), FCN's upsampling."""

import numpy as np

from ..ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward
from .bilinear import bilinear_kernel
from .layer import Layer
from .parameter import Parameter


class ConvTranspose2d(Layer):
    """Transposed convolution with weight (Cin, Cout, kh, kw), as in Caffe and PyTorch.

    By default the weight is the bilinear upsampling kernel when Cin == Cout (the reference's
    initialisation) and otherwise He-normal from ``rng``. No bias by default: FCN's upsampling has none.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 rng=None, method="auto"):
        if in_channels == out_channels:
            weight = bilinear_kernel(in_channels, kernel_size)
        else:
            rng = np.random.default_rng() if rng is None else rng
            fan_in = in_channels * kernel_size * kernel_size
            weight = rng.standard_normal((in_channels, out_channels, kernel_size, kernel_size), dtype=np.float32)
            weight *= np.float32(np.sqrt(2.0 / fan_in))
        self.weight = Parameter(weight)
        self.bias = Parameter(np.zeros(out_channels, np.float32), lr_mult=2.0, decay_mult=0.0) if bias else None
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.method = method

    def parameters(self):
        yield "weight", self.weight
        if self.bias is not None:
            yield "bias", self.bias

    def forward(self, x):
        """x (N, Cin, H, W) -> y (N, Cout, (H - 1) * stride + k - 2 * padding, ...)."""
        bias = None if self.bias is None else self.bias.data
        y, self._cache = conv_transpose2d(x, self.weight.data, bias, self.stride, self.padding, self.method)
        return y

    def backward(self, dy):
        """Add the parameter gradients; return dx (N, Cin, H, W), or None if ``input_grad`` is False."""
        weight_grad = self.weight.requires_grad
        bias_grad = self.bias is not None and self.bias.requires_grad
        dx, dweight, dbias = conv_transpose2d_backward(dy, self._take_cache(), self.input_grad, weight_grad)
        if weight_grad:
            self.weight.accumulate(dweight)
        if bias_grad:
            # A frozen weight may sit under a trainable bias; its gradient needs only dy, not the
            # (skipped) weight gradient.
            self.bias.accumulate(dy.sum(axis=(0, 2, 3)) if dbias is None else dbias)
        return dx

    def __repr__(self):
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")
