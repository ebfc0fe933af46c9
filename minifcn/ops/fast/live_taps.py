"""The kernel taps of a convolution that ever meet the map, where a kernel reaches past a small one.

fc6 is a 7x7 convolution. In the compact geometry it is padded by 3 so its output keeps pool5's
size, and on the default model's 96x96 images pool5 is 3x3: output pixel i reads input rows i - 3 ..
i + 3, of which only rows 0 .. 2 exist, so tap a meets a real row only for a - 3 in -2 .. 2. The
outer ring of taps (24 of 49) multiplies padding for every output pixel: it adds nothing to the
output, gets a zero gradient, and costs half of the layer's arithmetic and copying.

Along one axis (input length H, output length OH, stride s, padding p), tap a meets row s*i + a - p
for some output i when p - s*(OH - 1) <= a <= p + H - 1. Cutting the taps outside that range leaves a
smaller kernel with less padding and the same output, as long as as many taps go at the start as at
the end (the padding stays the same on both sides, which is what every method takes).

Only on the CPU: on a GPU a small layer's time goes to issuing kernels, and the cut would add some
(the cut copy, the whole kernel's gradient) to save arithmetic the GPU has to spare.
"""

import numpy as np

from ...backend import get_array_module


def live_taps(in_hw, kernel, stride, padding, out_hw, xp=np):
    """``(taps, padding)`` of the cut convolution: a (rows, cols) pair of slices of the kernel and the
    padding that goes with them; None where no tap can go (every tap is live, or cutting the dead
    ones would make the padding uneven) and for arrays on a GPU (``xp`` not NumPy)."""
    if xp is not np:
        return None
    taps, cut_padding = [], []
    for size, k, s, p, out in zip(in_hw, kernel, stride, padding, out_hw):
        first = max(0, p - s * (out - 1))
        last = min(k - 1, p + size - 1)
        if first != k - 1 - last:  # uneven: keep this axis whole
            first, last = 0, k - 1
        taps.append(slice(first, last + 1))
        cut_padding.append(p - first)
    if all(tap == slice(0, k) for tap, k in zip(taps, kernel)):
        return None
    return tuple(taps), tuple(cut_padding)


def cut_kernel(weight, taps):
    """The taps (a (rows, cols) pair of slices) of weight (O, C, kh, kw), as a new contiguous array.
    One ``take`` over the flattened taps: copying the strided 2-D slice moves runs of a few numbers
    and took twice as long (fc6's 7x7 cut to 5x5)."""
    o, c, kh, kw = weight.shape
    rows, cols = (np.arange(k)[tap] for k, tap in zip((kh, kw), taps))
    flat = (rows[:, None] * kw + cols[None, :]).ravel()
    return weight.reshape(o, c, kh * kw).take(flat, axis=2).reshape(o, c, len(rows), len(cols))


# Output channels per block of ``add_cut_kernel_grad``: a block of fc6's whole 7x7 kernel on 128
# channels is 400 KB, which stays in the caches between the copy and the addition.
# Set by: fc6 of the default model (256 x 128 x 7x7 cut to 5x5), the ways below timed one against another.
CUT_GRAD_BLOCK = 16


def add_cut_kernel_grad(into, dweight, taps):
    """Add the cut kernel's gradient ``dweight`` into ``into``, the whole kernel's (O, C, kh, kw), at
    the taps (a (rows, cols) pair of slices) it was cut to.

    Adding into the taps' strided view runs NumPy's loop over runs of a few numbers (fc6: 5 of every
    7) with a read of both sides for each: 3.8 ms on fc6. Building the whole kernel's gradient, zero
    on the other taps, and adding that took 3.2 ms and 6.4 MB. Here a block of output channels at a
    time is laid out whole in a small zeroed array and added contiguously: 1.9 ms, 0.4 MB."""
    xp = get_array_module(into)
    block = xp.zeros((CUT_GRAD_BLOCK,) + into.shape[1:], dtype=into.dtype)
    for first in range(0, into.shape[0], CUT_GRAD_BLOCK):
        count = min(CUT_GRAD_BLOCK, into.shape[0] - first)
        block[:count, :, taps[0], taps[1]] = dweight[first : first + count]
        into[first : first + count] += block[:count]


def whole_kernel_grad(dweight, kernel, taps):
    """The gradient of the whole (O, C, kh, kw) kernel from the cut kernel's ``dweight``: zero on the
    taps that were cut, which never met the map."""
    xp = get_array_module(dweight)
    whole = xp.zeros(dweight.shape[:2] + tuple(kernel), dtype=dweight.dtype)
    whole[:, :, taps[0], taps[1]] = dweight
    return whole
