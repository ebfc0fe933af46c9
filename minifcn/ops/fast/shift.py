"""Stride-1 convolution as kh*kw shifted matrix products over the flattened padded input.

Flatten each padded map row by row. Output pixel (i, j) of a stride-1 convolution needs input cell
(i + a, j + b) for kernel offset (a, b), which in the flat array is position (i * Wp + j) + (a * Wp + b):
the same shift for every pixel. So for each offset the whole output is one matrix product of the
weight slice (O, C) with the flat input shifted by ``a * Wp + b`` (C, OH * Wp), and the output is the
sum of kh*kw such products. No column matrix is ever built, which keeps memory at the size of the
input (im2col would need kh*kw times that).

The price is that the output is computed on rows of Wp cells, of which the last kw-1 ("wide"
columns) wrap into the next row and are garbage: they are cut off after the forward pass and set to
zero in the incoming gradient of the backward pass, so they never contribute.
"""

import numpy as np

from ...backend import get_array_module
from ..padding import pad2d
from .products import sum_of_products

# One product per kernel offset has an (O, C) result and an inner dimension of a whole map, a shape
# BLAS computes slowly when C is small; stacking the shifted views first gives one product with an
# inner dimension C*kh*kw but copies them. The weight gradient stacks them up to this many rows
# (C*kh*kw: 128 channels of a 3x3 kernel), beyond which the copy costs more than it saves. Set by
# python benchmarks/cpu_benchmark.py --cases layers --layers conv1_2,conv2_2,conv3_2 and --cases small.
STACK_MAX_ROWS = 128 * 9
# The stacked views are built one band of output rows at a time, at most this many bytes, so that the
# memory this method saves over im2col stays saved; larger bands mean fewer, longer products.
# Set by: --cases layers --layers conv1_2 (the largest map, where the bands matter most).
BAND_BYTES = 8 * 2**20
# The forward pass sums its products a band of output rows at a time in buffers of at most this many
# bytes, which stay in the caches between the products and the sums.
SUM_BAND_BYTES = 4 * 2**20


def prepare(x, padding):
    """The padded input (N, C, Hp + 1, Wp): one spare zero row, because the last offsets read up to
    kw - 1 cells past the end of the padded map (only into garbage columns)."""
    return pad2d(x, padding, extra_rows=1)


def widen(dy, wp, by_channel=False):
    """dy (N, O, OH, OW) with zeros in the Wp - OW garbage columns, as (N, O, OH * Wp); with
    ``by_channel``, as the matrix (O, N * OH * Wp) that multiplies a whole batch's columns."""
    xp = get_array_module(dy)
    source = dy.transpose(1, 0, 2, 3) if by_channel else dy
    wide = xp.zeros(source.shape[:3] + (wp,), dtype=dy.dtype)
    wide[..., : source.shape[3]] = source
    return wide.reshape(source.shape[0], -1) if by_channel else wide.reshape(source.shape[:2] + (-1,))


def copy_shifted_views(flat, kernel, wp, start, length, out):
    """Fill ``out`` (C, kh, kw, ..., length) with the flat maps ``flat`` (C, ..., cells) read from
    ``start`` shifted by each kernel offset: out[:, a, b] = flat[..., start + a*Wp + b :][:length].
    The column matrix of ``stacked`` and of the banded weight gradient below."""
    last = start + (kernel[0] - 1) * wp + kernel[1] - 1 + length  # one past the last cell read
    if last > flat.shape[-1]:
        raise ValueError(f"the shifted views read up to cell {last} of maps of {flat.shape[-1]}")
    if get_array_module(flat) is np:
        # One view whose index (c, a, b, ..., i) reads flat[c, ..., start + a*Wp + b + i], its windows
        # overlapping (a read-only view may): one copy of it is one NumPy call, not kh*kw.
        channel_step, *batch_steps, cell = flat.strides
        shifted = np.lib.stride_tricks.as_strided(
            flat[..., start:], shape=out.shape, strides=(channel_step, wp * cell, cell, *batch_steps, cell),
            writeable=False)
        np.copyto(out, shifted)
        return out
    for a in range(kernel[0]):  # CuPy (these methods are the CPU's, but any array may be given)
        for b in range(kernel[1]):
            shift = start + a * wp + b
            out[:, a, b] = flat[..., shift : shift + length]
    return out


def forward(xpad, weight, stride, out_hw):
    """y (N, O, OH, OW) from the prepared input (N, C, Hp + 1, Wp) and weight (O, C, kh, kw).

    A band of output rows at a time: its kh*kw products are summed in two buffers of at most
    SUM_BAND_BYTES together, and the band's real columns copied into y. Whole, the wide sum and each
    product would be two more arrays the size of the output (on a CamVid image's conv1_2, 44 MB each)."""
    xp = get_array_module(xpad, weight)
    n, c, rows, wp = xpad.shape
    o, _, kh, kw = weight.shape
    oh, ow = out_hw
    flat = xpad.reshape(n, c, rows * wp)
    taps = xp.ascontiguousarray(weight.transpose(2, 3, 0, 1))  # (kh, kw, O, C): contiguous slices for BLAS
    y = xp.empty((n, o, oh, ow), dtype=xpad.dtype)
    band_rows = max(1, min(oh, SUM_BAND_BYTES // (2 * n * o * wp * xpad.itemsize)))
    buffers = xp.empty((2, n * o * band_rows * wp), dtype=xpad.dtype)
    for first in range(0, oh, band_rows):
        count = min(band_rows, oh - first)
        length = count * wp
        total, product = (buffer[: n * o * length].reshape(n, o, length) for buffer in buffers)
        for a in range(kh):
            for b in range(kw):
                shift = (first + a) * wp + b
                target = total if (a, b) == (0, 0) else product
                xp.matmul(taps[a, b], flat[:, :, shift : shift + length], out=target)
                if target is product:
                    total += product
        y[:, :, first : first + count] = total.reshape(n, o, count, wp)[..., :ow]
    return y


def weight_grad(xpad, dy, kernel, stride):
    """dweight (O, C, kh, kw) from the prepared input (N, C, Hp + 1, Wp) and dy (N, O, OH, OW).

    With at most STACK_MAX_ROWS rows of shifted views (few input channels) they are stacked into a
    column matrix, as ``stacked`` does, one band of output rows at a time so memory stays bounded;
    with more, one product per kernel offset.
    """
    n, c = xpad.shape[:2]
    if c * kernel[0] * kernel[1] <= STACK_MAX_ROWS:
        return _weight_grad_by_bands(xpad, dy, kernel)
    xp = get_array_module(xpad, dy)
    rows, wp = xpad.shape[2:]
    o, oh = dy.shape[1], dy.shape[2]
    kh, kw = kernel
    length = oh * wp
    flat = xpad.reshape(n, c, rows * wp)
    dy_wide = widen(dy, wp)
    dtaps = xp.empty((kh, kw, o, c), dtype=dy.dtype)
    for a in range(kh):
        for b in range(kw):
            shift = a * wp + b
            dtaps[a, b] = sum_of_products(dy_wide, flat[:, :, shift : shift + length])
    return xp.ascontiguousarray(dtaps.transpose(2, 3, 0, 1))


def _weight_grad_by_bands(xpad, dy, kernel):
    """``weight_grad`` over stacked shifted views, one image and at most BAND_BYTES of columns at a time."""
    xp = get_array_module(xpad, dy)
    n, c, rows, wp = xpad.shape
    o, oh = dy.shape[1], dy.shape[2]
    kh, kw = kernel
    flat = xpad.reshape(n, c, rows * wp)
    dy_wide = widen(dy, wp)
    band = max(1, min(oh, BAND_BYTES // (c * kh * kw * wp * xpad.itemsize)))  # output rows per band
    cols = xp.empty((c, kh, kw, band * wp), dtype=xpad.dtype)
    # Accumulated transposed, (cols @ dy.T), the faster orientation (see products.product_with_transpose).
    dweight_t = xp.zeros((c * kh * kw, o), dtype=dy.dtype)
    for image in range(n):
        for first_row in range(0, oh, band):
            start, length = first_row * wp, min(band, oh - first_row) * wp
            part = copy_shifted_views(flat[image], kernel, wp, start, length, cols[..., :length])
            dweight_t += part.reshape(c * kh * kw, length) @ dy_wide[image, :, start : start + length].T
    return xp.ascontiguousarray(dweight_t.T).reshape(o, c, kh, kw)


def input_grad(dy, weight, stride, padded_hw):
    """dxpad (N, C, Hp, Wp): the adjoint of ``forward``, each shifted product added back in place."""
    xp = get_array_module(dy, weight)
    n, o, oh, _ = dy.shape
    _, c, kh, kw = weight.shape
    hp, wp = padded_hw
    length = oh * wp
    dy_wide = widen(dy, wp)
    taps_t = xp.ascontiguousarray(weight.transpose(2, 3, 1, 0))  # (kh, kw, C, O)
    dflat = xp.zeros((n, c, (hp + 1) * wp), dtype=dy.dtype)
    product = xp.empty((n, c, length), dtype=dy.dtype)
    for a in range(kh):
        for b in range(kw):
            shift = a * wp + b
            xp.matmul(taps_t[a, b], dy_wide, out=product)
            dflat[:, :, shift : shift + length] += product
    return dflat.reshape(n, c, hp + 1, wp)[:, :, :hp]
