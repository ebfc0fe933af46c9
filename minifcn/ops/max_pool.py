"""Max pooling with Caffe's ceil mode, and its backward pass.

Why ceil mode: Caffe rounds the output size up, so the last window may hang over the bottom or right
edge and takes the max of the cells it covers. No border row or column is ever dropped, and the
reference FCN was trained that way, so its weights see the same maps here. (The crop offsets do not
depend on the rounding, only on kernels, strides and paddings.) As in PyTorch, a last window that
would start past the edge is dropped.

The forward pass is separable: the max over a kh x kw window is the max over kw columns of the max
over kh rows, so it takes kh + kw strided ``maximum`` calls over whole maps rather than kh * kw (and
far less than a reshape-and-max, which must copy the map into windows first).

On a GPU both passes go to ``fast/max_pool_gathered.py``, which computes the same in a few kernels
(a GPU step is bound by how many kernels Python issues, a CPU step by memory traffic).

The backward pass sends each window's gradient to exactly one cell, the first maximum in raster
order, as Caffe and PyTorch do. That matters after a ReLU, whose output is full of tied zeros: giving
every tied cell the gradient would multiply it. The mask is rebuilt from the cached input and output
instead of being stored.
"""

from collections import namedtuple

import numpy as np

from ..backend import get_array_module
from .fast import max_pool_gathered
from .validation import pair, require_floating, require_ndim

MaxPoolCache = namedtuple("MaxPoolCache", "x y kernel stride")


def pool_output_size(size, kernel, stride, ceil_mode=True):
    """Number of windows along one axis, with PyTorch's rule for ceil mode."""
    out = (size - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size:
        out -= 1
    return out


def _covered(size, offset, stride, windows):
    """How many of ``windows`` windows have their cell at ``offset`` inside a map of length ``size``."""
    if offset >= size:
        return 0
    return min(windows, (size - 1 - offset) // stride + 1)


def _strided(offset, stride, count):
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True):
    """Max over kernel_size windows of x (N, C, H, W); returns ``(y, cache)``, y (N, C, OH, OW)."""
    require_floating("input", x)
    require_ndim("input", x, 4, "(N, C, H, W)")
    (kh, kw), (sh, sw) = pair(kernel_size, "kernel_size"), pair(stride, "stride")
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"kernel_size and stride must be at least 1, got {(kh, kw)} and {(sh, sw)}")
    xp = get_array_module(x)
    h, w = x.shape[2:]
    oh, ow = pool_output_size(h, kh, sh, ceil_mode), pool_output_size(w, kw, sw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"input of spatial size {(h, w)} is smaller than the pooling window {(kh, kw)}")
    if xp is not np:
        return max_pool_gathered.forward(x, (kh, kw), (sh, sw), (oh, ow))
    # Max over the kh rows of each window; a window hanging over the edge just has fewer rows.
    rows = xp.array(x[:, :, _strided(0, sh, oh), :])
    for a in range(1, kh):
        m = _covered(h, a, sh, oh)
        if m:
            xp.maximum(rows[:, :, :m], x[:, :, _strided(a, sh, m), :], out=rows[:, :, :m])
    # Then over the kw columns.
    y = xp.array(rows[:, :, :, _strided(0, sw, ow)])
    for b in range(1, kw):
        m = _covered(w, b, sw, ow)
        if m:
            xp.maximum(y[:, :, :, :m], rows[:, :, :, _strided(b, sw, m)], out=y[:, :, :, :m])
    return y, MaxPoolCache(x, y, (kh, kw), (sh, sw))


def max_pool2d_backward(dy, cache):
    """dx (N, C, H, W): each window's gradient dy (N, C, OH, OW) goes to its first maximum."""
    if isinstance(cache, max_pool_gathered.GatheredPoolCache):
        return max_pool_gathered.backward(dy, cache)
    xp = get_array_module(dy)
    x, y = cache.x, cache.y
    (kh, kw), (sh, sw) = cache.kernel, cache.stride
    h, w = x.shape[2:]
    oh, ow = y.shape[2:]
    # Windows that tile the map exactly (FCN's 2x2, stride 2, in ceil mode) give every cell to one
    # window: each offset's cells are then written once, straight into an uninitialised dx, with no
    # zero fill and no read-modify-write. Overlapping or gapped windows accumulate into zeros.
    tiles = (kh, kw) == (sh, sw) and (oh - 1) * sh + kh >= h and (ow - 1) * sw + kw >= w
    dx = xp.empty_like(x) if tiles else xp.zeros_like(x)
    taken = xp.zeros(y.shape, dtype=bool)  # windows whose maximum has been found already
    hit = xp.empty(y.shape, dtype=bool)
    zero = dy.dtype.type(0)
    for a in range(kh):
        m = _covered(h, a, sh, oh)
        for b in range(kw):
            k = _covered(w, b, sw, ow)
            if not (m and k):
                continue
            cells = (slice(None), slice(None), _strided(a, sh, m), _strided(b, sw, k))
            first_hit, done = hit[:, :, :m, :k], taken[:, :, :m, :k]
            xp.equal(x[cells], y[:, :, :m, :k], out=first_hit)
            xp.greater(first_hit, done, out=first_hit)  # a maximum, and the window's first (bool a > b: a and not b)
            done |= first_hit
            if tiles:
                xp.multiply(dy[:, :, :m, :k], first_hit, out=dx[cells])
            else:
                dx[cells] += xp.where(first_hit, dy[:, :, :m, :k], zero)
    return dx
