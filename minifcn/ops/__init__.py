"""Pure functions, one concept per file: ``y, cache = op(x, ...)`` and ``grads = op_backward(dy, cache)``.

They hold no state and take their array module from their inputs, so they run unchanged on NumPy
and CuPy, and a tutorial can check one numerically before any layer class exists.

``conv.py`` holds the reference convolution, the one to read first; ``fast/`` holds the faster
methods that ``method="auto"`` picks from, each tested equal to it.
"""

from .conv import conv2d, conv2d_backward, conv_output_size
from .conv_transpose import conv_transpose2d, conv_transpose2d_backward, conv_transpose_output_size
from .crop import crop, crop_backward
from .dropout import dropout, dropout_backward, dropout_mask
from .max_pool import max_pool2d, max_pool2d_backward, pool_output_size
from .relu import relu, relu_backward
from .softmax_cross_entropy import check_labels, softmax_cross_entropy, softmax_cross_entropy_backward

__all__ = [
    "check_labels",
    "conv2d",
    "conv2d_backward",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose_output_size",
    "crop",
    "crop_backward",
    "dropout",
    "dropout_backward",
    "dropout_mask",
    "max_pool2d",
    "max_pool2d_backward",
    "pool_output_size",
    "relu",
    "relu_backward",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
]
