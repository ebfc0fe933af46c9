"""The ReLU layer."""

from ..ops.relu import relu, relu_backward
from .layer import Layer


class ReLU(Layer):
    """y = max(x, 0), any shape."""

    def forward(self, x):
        y, positive = relu(x)
        self._keep(positive)
        return y

    def backward(self, dy):
        positive = self._take_cache()
        return relu_backward(dy, positive) if self.input_grad else None

    def __repr__(self):
        return "ReLU()"
