"""The ReLU layer."""

from ..ops.relu import relu, relu_backward
from .module import Module


class ReLU(Module):
    """y = max(x, 0), any shape."""

    def forward(self, x):
        y, positive = relu(x)
        self._save_for_backward(positive)
        return y

    def backward(self, dy):
        positive = self._saved()
        return None if positive is None else relu_backward(dy, positive)

    def __repr__(self):
        return "ReLU()"
