"""Transposed convolution ("deconvolution" in Caffe), the learnable upsampling of FCN.

A transposed convolution is the adjoint of a convolution with the same weight, stride and padding:
its forward pass is the convolution's input gradient (each input pixel spreads a weighted copy of
the kernel over the output, windows s pixels apart) and its backward pass is the convolution's
forward pass. So this file adds no arithmetic of its own: it calls the convolution methods of
``conv.py`` (the reference, or with ``method="auto"`` one of ``fast``) with the roles of input and
output exchanged.

    weight (Cin, Cout, kh, kw), as in Caffe and PyTorch
    OH = (H - 1) * stride + kh - 2 * padding
"""

from collections import namedtuple

from . import fast
from ..backend import get_array_module
from .conv import method_functions
from .padding import unpad2d
from .validation import pair, require_floating, require_ndim

ConvTransposeCache = namedtuple("ConvTransposeCache", "method x weight stride padding has_bias")


def conv_transpose_output_size(size, kernel, stride, padding):
    """Output length along one axis: (size - 1) * stride + kernel - 2 * padding."""
    return (size - 1) * stride + kernel - 2 * padding


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, method="auto"):
    """Upsample x (N, Cin, H, W) with weight (Cin, Cout, kh, kw); return ``(y, cache)``, y (N, Cout, OH, OW)."""
    require_floating("input", x)
    require_ndim("input", x, 4, "(N, C, H, W)")
    require_ndim("weight", weight, 4, "(Cin, Cout, kh, kw)")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(
            f"input has {x.shape[1]} channels (shape {tuple(x.shape)}) but the weight expects "
            f"{weight.shape[0]} (weight shape {tuple(weight.shape)})"
        )
    if bias is not None and bias.shape != (weight.shape[1],):
        raise ValueError(f"bias must have shape ({weight.shape[1]},), got {tuple(bias.shape)}")
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    if min(stride) < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    kernel = tuple(weight.shape[2:])
    n, _, h, w = x.shape
    padded_hw = ((h - 1) * stride[0] + kernel[0], (w - 1) * stride[1] + kernel[1])
    out_hw = (padded_hw[0] - 2 * padding[0], padded_hw[1] - 2 * padding[1])
    if min(out_hw) < 1:
        raise ValueError(f"padding {padding} leaves no output for input size {(h, w)} and kernel {kernel}")
    if method == "auto":
        conv_input_shape = (n, weight.shape[1]) + padded_hw
        method = fast.choose_method(conv_input_shape, kernel, stride, (h, w), x.dtype.itemsize,
                                    xp=get_array_module(x))
    ypad = method_functions(method, kernel, stride).input_grad(x, weight, stride, padded_hw)
    y = unpad2d(ypad, padding, out_hw)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y, ConvTransposeCache(method, x, weight, stride, padding, bias is not None)


def conv_transpose2d_backward(dy, cache, input_grad=True, weight_grad=True):
    """Gradients of ``conv_transpose2d`` for dy (N, Cout, OH, OW): ``(dx, dweight, dbias)``."""
    impl = method_functions(cache.method, cache.weight.shape[2:], cache.stride)
    prepared = impl.prepare(dy, cache.padding)
    dx = dweight = dbias = None
    if weight_grad:
        dweight = impl.weight_grad(prepared, cache.x, cache.weight.shape[2:], cache.stride)
        if cache.has_bias:
            dbias = dy.sum(axis=(0, 2, 3))
    if input_grad:
        dx = impl.forward(prepared, cache.weight, cache.stride, cache.x.shape[2:])
    return dx, dweight, dbias
