"""Solutions to the exercises of 02_convolution.ipynb.

Shapes: x (N, C, H, W), weight (O, C, kh, kw), bias (O,), y and dy (N, O, OH, OW).
"""

import numpy as np

from minifcn.ops import conv2d


def conv_forward_matmul(x, w, b, stride=1, padding=0):
    """The convolution as ONE matrix product: y (N, O, OH, OW).

    Copy, for every kernel offset (a, b), the strided sub-map it sees into a column matrix of shape
    (C * kh * kw, N * OH * OW) ("im2col"); the weight reshaped to (O, C * kh * kw) times it is the
    whole convolution for the whole batch.
    """
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    columns = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for a in range(kh):
        for bb in range(kw):
            sub_map = xpad[:, :, a : a + stride * oh : stride, bb : bb + stride * ow : stride]  # (N, C, OH, OW)
            columns[:, a, bb] = sub_map.transpose(1, 0, 2, 3)
    y = w.reshape(o, -1) @ columns.reshape(c * kh * kw, n * oh * ow)                        # (O, N*OH*OW)
    return y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3) + b.reshape(1, o, 1, 1)


def conv_input_grad_by_convolution(dy, w, stride, padding, input_hw):
    """dx (N, C, H, W) of a convolution, computed as a convolution of dy, for any stride.

    Spread dy out by inserting stride - 1 zeros between neighbouring pixels, pad it by k - 1 - padding
    (plus, at the far edges, the rows and columns the last window did not reach), and convolve with
    the kernel rotated by 180 degrees and with its two channel axes swapped.
    """
    n, o, oh, ow = dy.shape
    _, c, kh, kw = w.shape
    h, wd = input_hw
    dilated = np.zeros((n, o, (oh - 1) * stride + 1, (ow - 1) * stride + 1), dtype=dy.dtype)
    dilated[:, :, ::stride, ::stride] = dy
    left_h, left_w = kh - 1 - padding, kw - 1 - padding
    # The last window ended before the padded input's far edge when H + 2p - k is not a multiple of s.
    extra_h = (h + 2 * padding - kh) % stride
    extra_w = (wd + 2 * padding - kw) % stride
    padded = np.pad(dilated, ((0, 0), (0, 0), (left_h, left_h + extra_h), (left_w, left_w + extra_w)))
    rotated = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)                                     # (C, O, kh, kw)
    dx, _ = conv2d(padded, np.ascontiguousarray(rotated))
    return dx


def broken_backward_error(conv_forward, conv_backward, seed=0):
    """The largest relative error of a gradient check whose backward pass gets dy mirrored left-right.

    conv_forward(x, w, b, stride, padding) -> (y, cache) and conv_backward(dy, cache) -> (dx, dw, db)
    are the notebook's loops.
    """
    from minifcn.gradcheck import check_gradients

    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    state = {}

    def forward():
        y, state["cache"] = conv_forward(x, w, b, 1, 1)
        return y

    def backward(dy):
        dx, dw, db = conv_backward(dy[:, :, :, ::-1], state["cache"])
        return {"x": dx, "w": dw, "b": db}

    return max(check_gradients(forward, backward, {"x": x, "w": w, "b": b}).values())
