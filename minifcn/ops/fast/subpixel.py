"""A transposed convolution whose kernel is a whole multiple of its stride, as a stride-1 convolution
followed by a pixel shuffle.

FCN's upsamplings are of this kind: a 4x4 kernel at stride 2, a 16x16 one at stride 8. Write the
kernel offset as a = s*q + r (q < m = k/s taps of the stride's grid, r < s its phase) and the padded
output row as Y = s*I + r. Input row i reaches Y through offset a = Y - s*i, that is q = I - i with
the same phase r, so

    ypad[n, o, s*I + r, s*J + t] = sum over c, q, p of x[n, c, I - q, J - p] * w[c, o, s*q + r, s*p + t]

(rows of x outside the map are zero). For each phase (r, t) and output channel o, that is an m x m
correlation of x, padded by m - 1, with the taps flipped: one stride-1 convolution whose O*s*s
output channels are the phases (``phase_weight``), computed by ``conv.conv2d`` like any other, then
``depth_to_space`` puts each phase's map at its place in the output. The backward pass is that
convolution's backward, the incoming gradient first cut into its phases (``space_to_depth``).

What it saves: the other methods compute a transposed convolution as a convolution's input gradient,
a product into a column matrix of C*k*k rows (k*k = 256 for the upsampling by 8) then added window
by window into the output, strided additions of rows of a few numbers each. Here the product writes
the output's numbers once, and the shuffle copies them once.
"""

from ...backend import get_array_module
from .. import conv as reference  # a module, not its names: conv.py imports this package first
from ..padding import pad2d, unpad2d


def applies(kernel, stride):
    """Whether the kernel (kh, kw) is a whole multiple of the stride (sh, sw) along both axes, with a
    stride above 1 along one: the transposed convolutions this method computes."""
    return max(stride) > 1 and all(k % s == 0 for k, s in zip(kernel, stride))


def phase_weight(weight, stride):
    """The stride-1 convolution's weight (O * sh * sw, C, mh, mw) from the transposed convolution's
    (C, O, kh, kw): output channel (o, r, t), tap (mh - 1 - q, mw - 1 - p) is weight[c, o, sh*q + r, sw*p + t]."""
    xp = get_array_module(weight)
    c, o, kh, kw = weight.shape
    (sh, sw), mh, mw = stride, kh // stride[0], kw // stride[1]
    taps = weight.reshape(c, o, mh, sh, mw, sw)[:, :, ::-1, :, ::-1, :]  # (c, o, q, r, p, t), q and p flipped
    return xp.ascontiguousarray(taps.transpose(1, 3, 5, 0, 2, 4)).reshape(o * sh * sw, c, mh, mw)


def weight_from_phases(dphase, weight_shape, stride):
    """The adjoint of ``phase_weight``: dweight (C, O, kh, kw) from the gradient of the phase weight."""
    xp = get_array_module(dphase)
    c, o, kh, kw = weight_shape
    (sh, sw), mh, mw = stride, kh // stride[0], kw // stride[1]
    taps = dphase.reshape(o, sh, sw, c, mh, mw).transpose(3, 0, 4, 1, 5, 2)[:, :, ::-1, :, ::-1, :]
    return xp.ascontiguousarray(taps).reshape(c, o, kh, kw)


def depth_to_space(phases, channels, stride):
    """(N, O, I*sh, J*sw) view of ``phases`` (N, O*sh*sw, I, J): phase (r, t) of channel o to rows
    sh*I + r, columns sw*J + t. A view where the transpose allows, else a copy (as NumPy reshapes)."""
    n, _, rows, cols = phases.shape
    sh, sw = stride
    by_phase = phases.reshape(n, channels, sh, sw, rows, cols).transpose(0, 1, 4, 2, 5, 3)
    return by_phase.reshape(n, channels, rows * sh, cols * sw)


def space_to_depth(maps, stride):
    """The adjoint of ``depth_to_space``: ``maps`` (N, O, I*sh, J*sw) as a new (N, O*sh*sw, I, J) array."""
    xp = get_array_module(maps)
    n, o, height, width = maps.shape
    sh, sw = stride
    by_phase = maps.reshape(n, o, height // sh, sh, width // sw, sw).transpose(0, 1, 3, 5, 2, 4)
    return xp.ascontiguousarray(by_phase).reshape(n, o * sh * sw, height // sh, width // sw)


def forward(x, weight, stride, padding):
    """(y, cache): the transposed convolution of x (N, C, H, W) by weight (C, O, kh, kw), its output
    cropped by ``padding``, y (N, O, OH, OW) contiguous; ``cache`` is the inner convolution's."""
    xp = get_array_module(x, weight)
    kh, kw = weight.shape[2:]
    (sh, sw), (ph, pw) = stride, padding
    phases, cache = reference.conv2d(x, phase_weight(weight, stride), None, 1, (kh // sh - 1, kw // sw - 1))
    ypad = depth_to_space(phases, weight.shape[1], stride)
    out_hw = (ypad.shape[2] - 2 * ph, ypad.shape[3] - 2 * pw)
    return xp.ascontiguousarray(unpad2d(ypad, padding, out_hw)), cache


def backward(dy, cache, weight_shape, stride, padding, input_grad=True, weight_grad=True):
    """(dx, dweight) of ``forward`` for dy (N, O, OH, OW), each None where not asked for."""
    dx, dphase, _ = reference.conv2d_backward(space_to_depth(pad2d(dy, padding), stride), cache, input_grad,
                                               weight_grad)
    dweight = None if dphase is None else weight_from_phases(dphase, weight_shape, stride)
    return dx, dweight
