"""The max pooling layer (Caffe's ceil mode by default)."""

from ..ops.max_pool import max_pool2d, max_pool2d_backward
from .module import Module


class MaxPool2d(Module):
    """Max over kernel_size windows, ``stride`` apart; see ``minifcn.ops.max_pool`` for why ceil mode."""

    def __init__(self, kernel_size=2, stride=2, ceil_mode=True):
        self.kernel_size, self.stride, self.ceil_mode = kernel_size, stride, ceil_mode

    def forward(self, x):
        """x (N, C, H, W) -> y (N, C, OH, OW)."""
        y, cache = max_pool2d(x, self.kernel_size, self.stride, self.ceil_mode)
        self._save_for_backward(cache)
        return y

    def backward(self, dy):
        cache = self._saved()
        return None if cache is None else max_pool2d_backward(dy, cache)

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode})"
