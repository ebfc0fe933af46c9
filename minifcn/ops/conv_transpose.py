"""Transposed convolution ("deconvolution" in Caffe), the learnable upsampling of FCN.

A transposed convolution is the adjoint of a convolution with the same weight, stride and padding:
its forward pass is the convolution's input gradient (each input pixel spreads a weighted copy of
the kernel over the output, windows s pixels apart) and its backward pass is the convolution's
forward pass. So this file adds no arithmetic of its own: it calls the convolution methods of
``conv.py`` (the reference, or with ``method="auto"`` one of ``fast``) with the roles of input and
output exchanged. One more method is the transposed convolution's own: ``"subpixel"``
(``fast/subpixel.py``), for a kernel a whole multiple of its stride, one stride-1 convolution of the
input followed by a pixel shuffle.

    weight (Cin, Cout, kh, kw), as in Caffe and PyTorch
    OH = (H - 1) * stride + kh - 2 * padding
"""

from collections import namedtuple

from . import fast
from ..backend import get_array_module
from .conv import method_functions
from .padding import unpad2d
from .validation import pair, require_floating, require_ndim

# ``inner`` is the cache of the stride-1 convolution that ``method="subpixel"`` runs, else None.
ConvTransposeCache = namedtuple("ConvTransposeCache", "method x weight stride padding has_bias inner")


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
        method = fast.choose_transposed_method(x.shape, weight.shape[1], kernel, stride, padded_hw,
                                               x.dtype.itemsize, xp=get_array_module(x))
    inner = None
    if method == "subpixel":
        if not fast.subpixel.applies(kernel, stride):
            raise ValueError(f"method 'subpixel' needs a kernel that is a multiple of a stride above 1, "
                             f"got kernel {kernel} and stride {stride}")
        y, inner = fast.subpixel.forward(x, weight, stride, padding)
    else:
        ypad = method_functions(method, kernel, stride).input_grad(x, weight, stride, padded_hw)
        y = unpad2d(ypad, padding, out_hw)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y, ConvTransposeCache(method, x, weight, stride, padding, bias is not None, inner)


def conv_transpose2d_backward(dy, cache, input_grad=True, weight_grad=True, weight_grad_into=None):
    """Gradients of ``conv_transpose2d`` for dy (N, Cout, OH, OW): ``(dx, dweight, dbias)``.
    ``weight_grad_into``, as for ``conv2d_backward``: an array the weight gradient is added into
    (dweight is then None)."""
    dbias = dy.sum(axis=(0, 2, 3)) if weight_grad and cache.has_bias else None
    if cache.method == "subpixel":
        dx, dweight = fast.subpixel.backward(dy, cache.inner, cache.weight.shape, cache.stride, cache.padding,
                                             input_grad, weight_grad)
    else:
        impl = method_functions(cache.method, cache.weight.shape[2:], cache.stride)
        prepared = impl.prepare(dy, cache.padding)
        dx = dweight = None
        if weight_grad:
            dweight = impl.weight_grad(prepared, cache.x, cache.weight.shape[2:], cache.stride)
        if input_grad:
            dx = impl.forward(prepared, cache.weight, cache.stride, cache.x.shape[2:])
    if weight_grad and weight_grad_into is not None:
        weight_grad_into += dweight
        dweight = None
    return dx, dweight, dbias
