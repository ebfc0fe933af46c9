"""The rectified linear unit, y = max(x, 0), and its gradient."""

import numpy as np

from ..backend import elementwise_kernel, get_array_module
from .validation import require_floating

# Both outputs in one launch on a GPU. y = x * positive, not max(x, 0): CUDA's max drops a NaN, and a
# NaN must reach the loss so training stops on it (an input of -inf gives NaN here, 0 on the CPU; an
# infinite activation has already broken the step either way).
_RELU_KERNEL = ("T x", "T y, bool positive", "positive = x > 0; y = x * positive;", "minifcn_relu")


def relu(x):
    """y = max(x, 0) for any shape; returns ``(y, cache)``. The cache is a boolean mask (a quarter
    of the memory of the float output it replaces)."""
    require_floating("input", x)
    xp = get_array_module(x)
    if xp is not np:
        return elementwise_kernel(xp, *_RELU_KERNEL)(x)
    positive = x > 0
    return xp.maximum(x, x.dtype.type(0)), positive


def relu_backward(dy, positive):
    """dx = dy where the input was positive, 0 elsewhere (the subgradient at exactly 0 is 0, as in PyTorch)."""
    return dy * positive
