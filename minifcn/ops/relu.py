"""The rectified linear unit, y = max(x, 0), and its gradient."""

from ..backend import get_array_module
from .validation import require_floating


def relu(x):
    """y = max(x, 0) for any shape; returns ``(y, cache)``. The cache is a boolean mask (a quarter
    of the memory of the float output it replaces)."""
    require_floating("input", x)
    xp = get_array_module(x)
    positive = x > 0
    return xp.maximum(x, x.dtype.type(0)), positive


def relu_backward(dy, positive):
    """dx = dy where the input was positive, 0 elsewhere (the subgradient at exactly 0 is 0, as in PyTorch)."""
    return dy * positive
