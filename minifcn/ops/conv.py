"""2-D convolution (cross-correlation, as in Caffe and PyTorch): forward and backward.

    x       (N, C, H, W)      input
    weight  (O, C, kh, kw)    one (C, kh, kw) filter per output channel
    bias    (O,)              optional
    y       (N, O, OH, OW)    OH = (H + 2 * ph - kh) // sh + 1, OW likewise

    y[n, o, i, j] = bias[o] + sum over c, a, b of weight[o, c, a, b] * xpad[n, c, sh*i + a, sw*j + b]

where xpad is x with ph rows and pw columns of zeros on each side.

The reference method below is im2col: copy every window into a column (``windows.gather_windows``),
so that the whole convolution of the whole batch is one matrix product. Each pass is then one
product: the forward pass weight @ columns, the weight gradient dy @ columns^T (dW is a correlation
of the input with dy), the input gradient weight^T @ dy followed by ``scatter_windows``, which adds
each column back over the window it came from (dx is a transposed convolution of dy).

``method="reference"`` runs it. ``method="auto"`` (the default) lets ``fast.choose_method`` pick one
of the faster methods in ``minifcn/ops/fast/``, each tested equal to the reference, after cutting
the taps of a kernel wider than its map that only ever meet padding (``fast.live_taps``); a method
can also be named: ``"im2col"``, ``"stacked"``, ``"shift"`` (stride 1), ``"winograd"`` (3x3 kernels,
stride 1) or ``"pointwise"`` (1x1 kernels).
"""

from collections import namedtuple
from types import SimpleNamespace

from ..backend import get_array_module
from . import fast
from .padding import pad2d, unpad2d
from .validation import pair, require_floating, require_ndim
from .windows import gather_windows, scatter_windows

REFERENCE = "reference"

# ``weight`` and ``padding`` are those the method ran with; ``taps`` is None, or where ``method="auto"``
# cut the kernel (``fast.live_taps``), (the whole kernel's size, the (rows, cols) slices kept).
ConvCache = namedtuple("ConvCache", "method prepared weight input_hw stride padding has_bias taps",
                       defaults=(None,))


def conv_output_size(size, kernel, stride, padding):
    """Output length along one axis: floor((size + 2 * padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


# ---- The reference method. Each function works on the padded input xpad (N, C, Hp, Wp). ----


def dy_as_matrix(dy):
    """dy (N, O, OH, OW) as the matrix (O, N*OH*OW) whose columns line up with the window columns."""
    xp = get_array_module(dy)
    return xp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(dy.shape[1], -1)


def reference_forward(xpad, weight, stride, out_hw, gather=gather_windows):
    """y (N, O, OH, OW) = weight (O, C, kh, kw) correlated with xpad (N, C, Hp, Wp).

    ``gather`` copies the windows into columns; ``fast/im2col.py`` passes one that makes the same
    columns in fewer NumPy calls."""
    xp = get_array_module(xpad, weight)
    n, o = xpad.shape[0], weight.shape[0]
    columns = gather(xpad, weight.shape[2:], stride, out_hw)  # (C, kh, kw, N, OH, OW)
    y = weight.reshape(o, -1) @ columns.reshape(-1, n * out_hw[0] * out_hw[1])  # (O, N*OH*OW)
    return xp.ascontiguousarray(y.reshape(o, n, *out_hw).transpose(1, 0, 2, 3))


def reference_weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw) = dy (N, O, OH, OW) times the windows of xpad (N, C, Hp, Wp) it came from."""
    n, o, oh, ow = dy.shape
    c = xpad.shape[1]
    columns = gather_windows(xpad, kernel, stride, (oh, ow)).reshape(-1, n * oh * ow)
    return (dy_as_matrix(dy) @ columns.T).reshape(o, c, *kernel)


def reference_input_grad(dy, weight, stride, padded_hw, scatter=scatter_windows):
    """dxpad (N, C, Hp, Wp): each output's gradient dy (N, O, OH, OW) spread back over its window
    (by ``scatter``, the adjoint of the forward pass's ``gather``)."""
    n, o, oh, ow = dy.shape
    _, c, kh, kw = weight.shape
    dcolumns = weight.reshape(o, -1).T @ dy_as_matrix(dy)  # (C*kh*kw, N*OH*OW)
    return scatter(dcolumns.reshape(c, kh, kw, n, oh, ow), padded_hw, stride)


# The reference as a method like the fast ones: prepare the input, forward, and the two gradients.
_REFERENCE_METHOD = SimpleNamespace(
    prepare=pad2d,
    forward=reference_forward,
    weight_grad=reference_weight_grad,
    input_grad=reference_input_grad,
)


def method_functions(method, kernel, stride):
    """The method named ``method`` (its prepare, forward, weight_grad, input_grad), checked against
    the kernel and stride it must handle; ValueError for an unknown or unsuitable method."""
    if method == REFERENCE:
        return _REFERENCE_METHOD
    if method not in fast.METHODS:
        names = sorted([REFERENCE, *fast.METHODS])
        raise ValueError(f"method must be 'auto' or one of {names}, got {method!r}")
    if method == "pointwise" and tuple(kernel) != (1, 1):
        raise ValueError(f"method 'pointwise' needs a 1x1 kernel, got {tuple(kernel)}")
    if method in ("shift", "stacked", "winograd") and tuple(stride) != (1, 1):
        raise ValueError(f"method {method!r} needs stride 1, got {tuple(stride)}")
    if method == "winograd" and tuple(kernel) != (3, 3):
        raise ValueError(f"method 'winograd' needs a 3x3 kernel, got {tuple(kernel)}")
    return fast.METHODS[method]


def conv2d(x, weight, bias=None, stride=1, padding=0, method="auto"):
    """Convolve x (N, C, H, W) with weight (O, C, kh, kw) and add bias (O,).

    ``stride`` and ``padding`` are an int or a pair (height, width). Returns ``(y, cache)`` with
    y (N, O, OH, OW), OH = (H + 2 * padding - kh) // stride + 1; the cache is for ``conv2d_backward``.
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
    taps = None
    if method == "auto":
        xp = get_array_module(x)
        cut = fast.live_taps((h, w), kernel, stride, padding, out_hw, xp)
        if cut is not None:  # a kernel reaching past a small map: drop the taps that only see padding
            (kept, padding), taps = cut, (kernel, cut[0])
            weight = fast.cut_kernel(weight, kept)
            kernel = tuple(weight.shape[2:])
        method = fast.choose_method(x.shape, kernel, stride, out_hw, x.dtype.itemsize, weight.shape[0], xp=xp)
    impl = method_functions(method, kernel, stride)
    prepared = impl.prepare(x, padding)
    y = impl.forward(prepared, weight, stride, out_hw)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y, ConvCache(method, prepared, weight, (h, w), stride, padding, bias is not None, taps)


def conv2d_backward(dy, cache, input_grad=True, weight_grad=True, weight_grad_into=None):
    """Gradients of ``conv2d`` for dy (N, O, OH, OW).

    Returns ``(dx, dweight, dbias)`` with dx (N, C, H, W), dweight (O, C, kh, kw), dbias (O,); dx is
    None when ``input_grad`` is False (the layer below is frozen or is the image), dweight and dbias
    are None when ``weight_grad`` is False (this layer is frozen), dbias also when there is no bias.

    ``weight_grad_into``, an array of the weight's shape (a layer's gradient), gets the weight
    gradient added into it instead, and dweight is returned as None. Where ``method="auto"`` cut the
    kernel, only the cut kernel's taps are added to: the whole kernel's gradient, zero on the other
    taps, is never built (fc6's on the default model: 6.4 MB a pass, the largest array of its step).
    """
    impl = method_functions(cache.method, cache.weight.shape[2:], cache.stride)
    ph, pw = cache.padding
    h, w = cache.input_hw
    dx = dweight = None
    dbias = dy.sum(axis=(0, 2, 3)) if weight_grad and cache.has_bias else None
    both = None
    if input_grad and weight_grad and hasattr(impl, "gradients"):  # both from the work they share
        both = impl.gradients(cache.prepared, dy, cache.weight, cache.padding, cache.input_hw)
    if both is not None:
        dx, dweight = both
        dweight = _deliver_weight_grad(dweight, cache.taps, weight_grad_into)
    else:  # each alone, or both where the method's ``gradients`` does not take the layer
        if weight_grad:  # delivered before the input gradient's work, so the two never hold memory at once
            dweight = _weight_grad(impl, cache, dy, weight_grad_into)
        if input_grad:
            dxpad = impl.input_grad(dy, cache.weight, cache.stride, (h + 2 * ph, w + 2 * pw))
            dx = unpad2d(dxpad, cache.padding, (h, w))
    return dx, dweight, dbias


def _weight_grad(impl, cache, dy, into):
    """The weight gradient alone: returned whole, or None once added into ``into``; by the method's
    ``add_weight_grad`` where it has one (a block at a time, never built whole)."""
    kernel = cache.weight.shape[2:]
    if into is not None and cache.taps is None and into.flags.c_contiguous and hasattr(impl, "add_weight_grad"):
        impl.add_weight_grad(cache.prepared, dy, kernel, cache.stride, into)
        return None
    dweight = impl.weight_grad(cache.prepared, dy, kernel, cache.stride)
    return _deliver_weight_grad(dweight, cache.taps, into)


def _deliver_weight_grad(dweight, taps, into):
    """The whole kernel's gradient from the method's ``dweight`` (of the cut kernel where ``taps``
    says so), or None once added into ``into``."""
    if into is None:
        return dweight if taps is None else fast.whole_kernel_grad(dweight, *taps)
    if taps is None:
        into += dweight
    else:
        fast.add_cut_kernel_grad(into, dweight, taps[1])
    return None
