"""im2col for any kernel and stride: the reference method, its weight-gradient product turned around.

Forward and input gradient compute exactly what the reference in ``minifcn/ops/conv.py`` does:
gather the windows into columns (C, kh, kw, N, OH, OW), whole batch included, and take one matrix
product per pass. The weight gradient's product dy @ columns^T goes through
``products.product_with_transpose``, which computes it in whichever orientation BLAS runs faster.

The column matrix holds C*kh*kw numbers per output pixel, kh*kw times the input's memory: cheap for
a 3-channel input (conv1_1) or a small map (fc6's 7x7 on pool5), prohibitive for 64 channels on a
700x700 map, where ``shift`` takes over. Nothing is cached between passes: the backward gathers the
windows again rather than holding the column matrix.

Every function works on the already padded input ``xpad`` (N, C, Hp, Wp).
"""

from ...backend import get_array_module
from ..padding import pad2d
from ..windows import gather_windows, scatter_windows
from .products import product_with_transpose


def prepare(x, padding):
    """The padded input (N, C, Hp, Wp) that the other functions read."""
    return pad2d(x, padding)


def _by_channel(dy):
    """dy (N, O, OH, OW) as the matrix (O, N*OH*OW) that multiplies the columns."""
    xp = get_array_module(dy)
    return xp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(dy.shape[1], -1)


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) = weight (O, C, kh, kw) correlated with ``xpad`` (N, C, Hp, Wp)."""
    xp = get_array_module(xpad, weight)
    n = xpad.shape[0]
    o = weight.shape[0]
    cols = gather_windows(xpad, weight.shape[2:], stride, out_hw)
    y = xp.matmul(weight.reshape(o, -1), cols.reshape(-1, n * out_hw[0] * out_hw[1]))
    return xp.ascontiguousarray(y.reshape(o, n, *out_hw).transpose(1, 0, 2, 3))


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw) from the padded input (N, C, Hp, Wp) and dy (N, O, OH, OW)."""
    n, o, oh, ow = dy.shape
    c = xpad.shape[1]
    cols = gather_windows(xpad, kernel, stride, (oh, ow)).reshape(-1, n * oh * ow)
    return product_with_transpose(_by_channel(dy), cols).reshape(o, c, *kernel)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): each output's gradient spread back over the window it came from."""
    n, o, oh, ow = dy.shape
    _, c, kh, kw = weight.shape
    dcols = weight.reshape(o, -1).T @ _by_channel(dy)
    return scatter_windows(dcols.reshape(c, kh, kw, n, oh, ow), padded_hw, stride)
