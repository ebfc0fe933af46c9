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

from ..padding import pad2d
from ..windows import gather_windows
from .. import conv as reference  # a module, not its names: conv.py imports this package first
from .products import product_with_transpose


def prepare(x, padding):
    """The padded input (N, C, Hp, Wp) that the other functions read."""
    return pad2d(x, padding)


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) = weight (O, C, kh, kw) correlated with ``xpad`` (N, C, Hp, Wp): the reference's."""
    return reference.reference_forward(xpad, weight, stride, out_hw)


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw) from the padded input (N, C, Hp, Wp) and dy (N, O, OH, OW)."""
    n, o, oh, ow = dy.shape
    c = xpad.shape[1]
    cols = gather_windows(xpad, kernel, stride, (oh, ow)).reshape(-1, n * oh * ow)
    return product_with_transpose(reference.dy_as_matrix(dy), cols).reshape(o, c, *kernel)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): each output's gradient spread back over its window: the reference's."""
    return reference.reference_input_grad(dy, weight, stride, padded_hw)
