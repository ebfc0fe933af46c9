"""2-D convolution (cross-correlation, as in Caffe and PyTorch): forward and backward.

    y[n, o, i, j] = bias[o] + sum over c, a, b of weight[o, c, a, b] * xpad[n, c, s*i + a, s*j + b]

Four interchangeable methods compute it, each a module with the same four functions
(``prepare``, ``forward``, ``weight_grad``, ``input_grad``):

- ``pointwise`` (kernel 1x1): one matrix product, the convolution as a per-pixel dense layer;
- ``stacked`` (stride 1): the kh*kw shifted views of the flat input stacked into one column matrix
  and one matrix product; the fastest where that matrix is affordable and the map not tiny;
- ``shift`` (stride 1): kh*kw shifted matrix products, memory-frugal on large maps;
- ``im2col`` (any kernel and stride): gathered windows and one matrix product; for strides, and for
  kernels nearly as wide as the map (fc6), where ``stacked`` would waste most of its product.

``method="auto"`` picks one by these rules (``choose_method`` has the measurements); the tests hold
all four equal.
"""

from collections import namedtuple

from . import conv_im2col, conv_pointwise, conv_shift, conv_stacked
from .padding import unpad2d
from .validation import pair, require_floating, require_ndim

METHODS = {"im2col": conv_im2col, "stacked": conv_stacked, "shift": conv_shift, "pointwise": conv_pointwise}

# Above this size a column matrix (im2col's or stacked's) costs more in page faults and memory traffic
# than the shifted products (measured on conv1_2 of a 500x500 input, whose column matrix is 1.1 GB).
IM2COL_MAX_BYTES = 64 * 2**20
# stacked computes kw - 1 wasted columns in every row of Wp; above this fraction im2col is faster.
STACKED_MAX_WASTE = 0.25
# Where shift beats stacked below the memory limit (see choose_method): at most this many input
# channels, no more output channels than input ones, and output maps of at least this many pixels.
SHIFT_MAX_CHANNELS = 64
SHIFT_MIN_PIXELS = 400

ConvCache = namedtuple("ConvCache", "method prepared weight input_hw stride padding has_bias")


def conv_output_size(size, kernel, stride, padding):
    """Output length along one axis: floor((size + 2 * padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def choose_method(x_shape, kernel, stride, out_hw, itemsize, out_channels=None):
    """The fastest method for this geometry that keeps memory bounded (see the module docstring)."""
    if tuple(kernel) == (1, 1):
        return "pointwise"
    if tuple(stride) != (1, 1):
        return "im2col"
    n, c = x_shape[:2]
    column_bytes = n * c * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * itemsize
    if column_bytes > IM2COL_MAX_BYTES:
        return "shift"
    padded_width = out_hw[1] + kernel[1] - 1
    if kernel[1] - 1 > STACKED_MAX_WASTE * padded_width:
        return "im2col"
    if n == 1 and c * kernel[0] * kernel[1] < (out_channels or 0):
        # The image layer (conv1_1: 27 column rows, 64 outputs): for one image im2col's product is
        # already the output, while stacked must copy 64 wide rows out; conv1_1 of a 500x500 image,
        # forward + weight gradient, took 74 ms with im2col and 112 with stacked.
        return "im2col"
    # stacked's cost beyond the product is copying C * kh * kw rows of the whole batch, twice; shift's
    # is adding up kh * kw products of O rows. In the default model's training step (8 images,
    # forward + backward, this machine, alternating in one process) shift was faster for 16->16 at
    # 96x96 (16.9 vs 18.5 ms backward, 5.4 vs 9.0 forward) and 32->32 at 48x48 (10.5 vs 11.8, 3.8 vs
    # 5.5), equal for 64->64 at 24x24, and slower wherever the channels grow or the map is small.
    # (In runs where the whole machine was slower, about 1 in 4, stacked won everywhere by 10-20%.)
    few_channels = c <= SHIFT_MAX_CHANNELS and (out_channels is None or out_channels <= c)
    return "shift" if few_channels and out_hw[0] * out_hw[1] >= SHIFT_MIN_PIXELS else "stacked"


def check_method(method, kernel, stride):
    if method not in METHODS:
        raise ValueError(f"method must be 'auto' or one of {sorted(METHODS)}, got {method!r}")
    if method == "pointwise" and tuple(kernel) != (1, 1):
        raise ValueError(f"method 'pointwise' needs a 1x1 kernel, got {tuple(kernel)}")
    if method in ("shift", "stacked") and tuple(stride) != (1, 1):
        raise ValueError(f"method {method!r} needs stride 1, got {tuple(stride)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, method="auto"):
    """Convolve x (N, C, H, W) with weight (O, C, kh, kw) and add bias (O,).

    Returns ``(y, cache)`` with y (N, O, OH, OW), OH = (H + 2 * padding - kh) // stride + 1.
    """
    require_floating("input", x)
    require_ndim("input", x, 4, "(N, C, H, W)")
    require_ndim("weight", weight, 4, "(O, C, kh, kw)")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"input has {x.shape[1]} channels (shape {tuple(x.shape)}) but the weight expects "
            f"{weight.shape[1]} (weight shape {tuple(weight.shape)})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    if min(stride) < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    kernel = tuple(weight.shape[2:])
    h, w = x.shape[2:]
    out_hw = (
        conv_output_size(h, kernel[0], stride[0], padding[0]),
        conv_output_size(w, kernel[1], stride[1], padding[1]),
    )
    if min(out_hw) < 1:
        raise ValueError(
            f"input of spatial size {(h, w)} is too small for a {kernel} kernel with padding {padding}"
        )
    if method == "auto":
        method = choose_method(x.shape, kernel, stride, out_hw, x.dtype.itemsize, weight.shape[0])
    check_method(method, kernel, stride)
    impl = METHODS[method]
    prepared = impl.prepare(x, padding)
    y = impl.forward(prepared, weight, stride, out_hw)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y, ConvCache(method, prepared, weight, (h, w), stride, padding, bias is not None)


def conv2d_backward(dy, cache, input_grad=True, weight_grad=True):
    """Gradients of ``conv2d`` for dy (N, O, OH, OW).

    Returns ``(dx, dweight, dbias)``; dx is None when ``input_grad`` is False (the layer below is
    frozen or is the image), dweight and dbias are None when ``weight_grad`` is False or there is no bias.
    """
    impl = METHODS[cache.method]
    ph, pw = cache.padding
    h, w = cache.input_hw
    dx = dweight = dbias = None
    if weight_grad:
        dweight = impl.weight_grad(cache.prepared, dy, cache.weight.shape[2:], cache.stride)
        if cache.has_bias:
            dbias = dy.sum(axis=(0, 2, 3))
    if input_grad:
        dxpad = impl.input_grad(dy, cache.weight, cache.stride, (h + 2 * ph, w + 2 * pw))
        dx = unpad2d(dxpad, cache.padding, (h, w))
    return dx, dweight, dbias
