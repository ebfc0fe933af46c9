"""The 1x1 convolution: a fully connected layer applied at every pixel.

With a 1x1 kernel each output pixel is ``weight (O, C) @ x[:, :, i, j]``: the same dense layer at
every position. That is what lets FCN turn a classifier's fully connected layers into convolutions
(fc7, score_fr, score_pool4, score_pool3), and it makes the whole map one matrix product
(O, C) @ (C, H * W) per image with nothing gathered. A stride s simply keeps every s-th pixel.
"""

from ...backend import get_array_module
from ..padding import pad2d
from .products import sum_of_products


def prepare(x, padding):
    """The padded input (N, C, Hp, Wp)."""
    return pad2d(x, padding)


def _sampled(xpad, stride):
    sh, sw = stride
    if (sh, sw) == (1, 1):
        return xpad
    return xpad[:, :, ::sh, ::sw]


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) = weight (O, C, 1, 1) applied at every (strided) pixel of ``xpad``."""
    xp = get_array_module(xpad, weight)
    n, c = xpad.shape[:2]
    o = weight.shape[0]
    x = xp.ascontiguousarray(_sampled(xpad, stride)).reshape(n, c, -1)
    return xp.matmul(weight.reshape(o, c), x).reshape(n, o, *out_hw)


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, 1, 1) = sum over batch and pixels of dy x^T."""
    xp = get_array_module(xpad, dy)
    n, o = dy.shape[:2]
    c = xpad.shape[1]
    x = xp.ascontiguousarray(_sampled(xpad, stride)).reshape(n, c, -1)
    return sum_of_products(dy.reshape(n, o, -1), x).reshape(o, c, 1, 1)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp) = weight^T dy at the sampled pixels, zero elsewhere."""
    xp = get_array_module(dy, weight)
    n, o, oh, ow = dy.shape
    c = weight.shape[1]
    dx = xp.matmul(weight.reshape(o, c).T, dy.reshape(n, o, oh * ow)).reshape(n, c, oh, ow)
    if tuple(stride) == (1, 1) and tuple(padded_hw) == (oh, ow):
        return dx
    dxpad = xp.zeros((n, c) + tuple(padded_hw), dtype=dy.dtype)
    dxpad[:, :, : stride[0] * oh : stride[0], : stride[1] * ow : stride[1]] = dx
    return dxpad
