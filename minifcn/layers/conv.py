"""The convolution layer: a weight (O, C, kh, kw) and a bias (O,) around ``ops.conv2d``."""

import numpy as np

from ..ops.conv import conv2d, conv2d_backward
from .layer import Layer
from .parameter import Parameter


class Conv2d(Layer):
    """2-D convolution. A 1x1 kernel is a fully connected layer applied at every pixel and takes a
    plain matrix-product path.

    Weights start He-normal (std sqrt(2 / fan_in), suited to the ReLUs that follow), drawn from
    ``rng`` (a NumPy Generator) on the host; biases start at zero and, as in the reference, learn at
    twice the rate with no weight decay.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 rng=None, method="auto"):
        rng = np.random.default_rng() if rng is None else rng
        fan_in = in_channels * kernel_size * kernel_size
        weight = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size), dtype=np.float32)
        self.weight = Parameter(weight * np.float32(np.sqrt(2.0 / fan_in)))
        self.bias = Parameter(np.zeros(out_channels, np.float32), lr_mult=2.0, decay_mult=0.0) if bias else None
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.method = method

    def parameters(self):
        yield "weight", self.weight
        if self.bias is not None:
            yield "bias", self.bias

    def forward(self, x):
        """x (N, C, H, W) -> y (N, O, OH, OW)."""
        bias = None if self.bias is None else self.bias.data
        y, self._cache = conv2d(x, self.weight.data, bias, self.stride, self.padding, self.method)
        return y

    def backward(self, dy):
        """Add dweight, dbias into the parameters' grads; return dx (N, C, H, W) or None."""
        weight_grad = self.weight.requires_grad
        bias_grad = self.bias is not None and self.bias.requires_grad
        dx, dweight, dbias = conv2d_backward(dy, self._take_cache(), self.input_grad, weight_grad)
        if weight_grad:
            self.weight.accumulate(dweight)
        if bias_grad:
            # A frozen weight may sit under a trainable bias; its gradient needs only dy, not the
            # (skipped) weight gradient.
            self.bias.accumulate(dy.sum(axis=(0, 2, 3)) if dbias is None else dbias)
        return dx

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")
