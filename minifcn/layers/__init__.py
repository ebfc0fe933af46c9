"""Layers: classes that own their Parameters and call the pure functions in ``minifcn.ops``."""

from .bilinear import bilinear_filter, bilinear_kernel
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .crop import Crop
from .dropout import Dropout
from .layer import Layer
from .max_pool import MaxPool2d
from .parameter import Parameter
from .relu import ReLU
from .softmax_cross_entropy import SoftmaxCrossEntropy

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Crop",
    "Dropout",
    "Layer",
    "MaxPool2d",
    "Parameter",
    "ReLU",
    "SoftmaxCrossEntropy",
    "bilinear_filter",
    "bilinear_kernel",
]
