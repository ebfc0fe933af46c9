"""Where each feature map sits on the input image, and the crop offsets that follow from it.

Every map of a fully convolutional network is a grid laid over the input image. Cell u of a map
sits at image coordinate ``scale * u + shift`` (the centre of its receptive field), the same on both
axes. Each layer changes (scale, shift) in a fixed way:

- a convolution or pooling with kernel k, stride s, padding p reads window [s*u - p, s*u - p + k - 1]
  of its input, whose centre is s*u + (k - 1)/2 - p; so scale' = scale * s and
  shift' = shift + scale * ((k - 1)/2 - p);
- a transposed convolution inverts that map: scale' = scale / s, shift' = shift - scale' * ((k - 1)/2 - p).

To add two maps of the same scale cell by cell, the larger one is cropped at
offset = (shift_small - shift_large) / scale, which must be a non-negative integer. This is what
Caffe's crop layer computes from its coordinate maps. For the reference network (conv1_1 padded by
100 so that even a small image leaves fc6 a valid 7x7 window, fc6 unpadded) it gives 5 and 9 for the
pool4 and pool3 skips and 31 for the final crop of FCN-8s (19 for FCN-32s; 5 and 27 for FCN-16s). For
the compact geometry (conv1_1 padded by 1, fc6 by 3, upsampling padded by (k - s)/2) every offset
comes out 0: the maps are aligned by construction and the crops only trim the ceil-mode overhang.
"""

from dataclasses import dataclass
from fractions import Fraction

from ..layers import Conv2d, ConvTranspose2d, MaxPool2d


@dataclass(frozen=True)
class Window:
    """The window one layer slides over its input: kernel, stride, padding; ``transposed`` for an upsampling layer."""

    kernel: int
    stride: int = 1
    padding: int = 0
    transposed: bool = False


@dataclass(frozen=True)
class Placement:
    """Cell u of a map sits at image coordinate ``scale * u + shift`` (exact fractions)."""

    scale: Fraction = Fraction(1)
    shift: Fraction = Fraction(0)

    def through(self, layer):
        """The placement of the output of ``layer`` applied to a map placed like ``self``."""
        centre = Fraction(layer.kernel - 1, 2) - layer.padding
        if layer.transposed:
            scale = self.scale / layer.stride
            return Placement(scale, self.shift - scale * centre)
        return Placement(self.scale * layer.stride, self.shift + self.scale * centre)


def place(layers, start=Placement()):
    """The placement after a sequence of layers, starting from the image (or from ``start``)."""
    placement = start
    for layer in layers:
        placement = placement.through(layer)
    return placement


def crop_offset(large, small):
    """Offset at which to crop the map placed at ``large`` so that it lines up with ``small``."""
    if large.scale != small.scale:
        raise ValueError(f"cannot align maps of different scales {large.scale} and {small.scale}")
    offset = (small.shift - large.shift) / large.scale
    if offset.denominator != 1 or offset < 0:
        raise ValueError(f"maps are misaligned by {offset} cells: check kernels, strides and paddings")
    return int(offset)


def window_of(layer):
    """The Window of a layer that moves or rescales the grid, None for an element-wise one."""
    if isinstance(layer, ConvTranspose2d):
        return Window(layer.kernel_size, layer.stride, layer.padding, transposed=True)
    if isinstance(layer, Conv2d):
        return Window(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, MaxPool2d):
        return Window(layer.kernel_size, layer.stride, 0)
    return None


def placed(placement, *layers):
    """``placement`` carried through ``layers`` (Modules: single layers or chains of them)."""
    for item in layers:
        for _, layer in item.named_layers():
            window = window_of(layer)
            if window is not None:
                placement = placement.through(window)
    return placement
