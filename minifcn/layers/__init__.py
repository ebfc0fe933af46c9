"""Layers: classes that own their Parameters and call the pure functions in ``minifcn.ops``."""

from .bilinear import bilinear_filter, bilinear_kernel
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .crop import Crop
from .dropout import Dropout
from .max_pool import MaxPool2d
from .module import Module
from .parameter import Parameter
from .relu import ReLU
from .sequential import Sequential
from .softmax_cross_entropy import SoftmaxCrossEntropy

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Crop",
    "Dropout",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "SoftmaxCrossEntropy",
    "bilinear_filter",
    "bilinear_kernel",
]
