"""Faster ways to compute the convolution of ``minifcn/ops/conv.py``, and the rule that picks one.

Read the reference in ``conv.py`` first: every method here computes the same numbers (the tests in
``tests/ops/fast/`` hold each equal to it) and only moves memory differently around the matrix
products, which is where the time goes on a CPU.

- ``pointwise`` (1x1 kernels): one matrix product per image, the convolution as a per-pixel dense layer;
- ``im2col`` (any kernel and stride): the reference, with the weight gradient's product turned around;
- ``stacked`` (stride 1): the kh*kw shifted views of the flattened input stacked into one column
  matrix; the fastest where that matrix is affordable and the map not tiny;
- ``shift`` (stride 1): kh*kw shifted matrix products and no column matrix, memory-frugal on large maps;
- ``winograd`` (3x3 kernels, stride 1): Winograd's minimal filtering F(2x2, 3x3), 16 products per
  2x2 output tile where the others do 36, for transforms of the input and output around them; the
  fastest where channels are many (the deep layers) and each call has one core;
- ``gathered`` (any kernel and stride): every window in one gather, one batched product per pass, a
  scatter-add back: few kernels, which is what counts on a GPU (the method ``choose`` takes there);
- ``subpixel`` (transposed convolutions whose kernel is a multiple of the stride, FCN's upsamplings):
  one stride-1 convolution whose output channels are the stride's phases, then a pixel shuffle;
- ``max_pool_gathered``: max pooling (not a convolution) in a few kernels per pass, which
  ``max_pool.py`` uses for arrays on a GPU;
- ``products``: the two batched products the weight gradients reduce to, each in its faster form;
- ``choose``: ``choose_method`` and ``choose_transposed_method``, the rule behind ``method="auto"``;
- ``live_taps``: which taps of a kernel wider than its map ever meet it; ``method="auto"`` cuts the rest.

Each method module has the same four functions: ``prepare(x, padding)`` (the padded input the others
read), ``forward``, ``weight_grad`` and ``input_grad``; ``conv.conv2d`` and ``conv.conv2d_backward``
call them, and ``conv_transpose`` calls them with the roles of input and output exchanged. A method
may also have ``gradients``, both gradients from work they share (``stacked``: one column matrix of
dy), which ``conv2d_backward`` calls when a layer wants both (None: the layer is not one it takes),
and ``add_weight_grad``, the weight gradient added into a layer's a block at a time (``im2col``,
fc6's method, whose gradient is the largest array of a step) instead of built whole first.
"""

from . import gathered, im2col, pointwise, shift, stacked, subpixel, winograd
from .choose import choose_method, choose_transposed_method
from .live_taps import add_cut_kernel_grad, cut_kernel, live_taps, whole_kernel_grad

METHODS = {
    "gathered": gathered,
    "im2col": im2col,
    "stacked": stacked,
    "shift": shift,
    "pointwise": pointwise,
    "winograd": winograd,
}

__all__ = ["METHODS", "add_cut_kernel_grad", "choose_method", "choose_transposed_method", "cut_kernel",
           "live_taps", "subpixel", "whole_kernel_grad"]
