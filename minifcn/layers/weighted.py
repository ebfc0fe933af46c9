"""What Conv2d and ConvTranspose2d share: a weight, an optional bias, and a pure op pair around them."""

import numpy as np

from .module import Module
from .parameter import Parameter


def he_normal(shape, fan_in, rng):
    """He-normal weights (std sqrt(2 / fan_in), suited to the ReLUs that follow) drawn on the host."""
    rng = np.random.default_rng() if rng is None else rng
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))


class WeightedLayer(Module):
    """A layer computing ``op(x, weight, bias, stride, padding, method)`` with ``op_backward`` its gradient.

    Biases start at zero and, as in the reference, learn at twice the rate with no weight decay.
    """

    op = op_backward = None  # set by subclasses to a pure forward function and its backward

    def __init__(self, weight, in_channels, out_channels, kernel_size, stride, padding, bias, method):
        self.weight = Parameter(weight)
        self.bias = Parameter(np.zeros(out_channels, np.float32), lr_mult=2.0, decay_mult=0.0) if bias else None
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.method = method

    def forward(self, x):
        bias = None if self.bias is None else self.bias.data
        y, cache = type(self).op(x, self.weight.data, bias, self.stride, self.padding, self.method)
        self._save_for_backward(cache)
        return y

    def backward(self, dy):
        """Add dweight and dbias into the parameters' grads; return dx, or None if ``input_grad`` is False."""
        cache = self._saved()
        if cache is None:
            return None
        weight_grad = self.weight.requires_grad
        bias_grad = self.bias is not None and self.bias.requires_grad
        # The weight gradient goes straight into the parameter's (the op adds it there).
        into = self.weight.grad if weight_grad else None
        dx, _, dbias = type(self).op_backward(dy, cache, self.input_grad, weight_grad, weight_grad_into=into)
        if bias_grad:
            # A frozen weight may sit under a trainable bias; its gradient needs only dy, not the
            # (skipped) weight gradient.
            self.bias.accumulate(dy.sum(axis=(0, 2, 3)) if dbias is None else dbias)
        return dx

    def __repr__(self):
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")
