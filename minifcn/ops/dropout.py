"""Dropout as in Caffe: drop single elements with probability p, scale the kept ones by 1 / (1 - p).

Scaling at training time ("inverted dropout") makes evaluation the identity. The mask is drawn from
a NumPy generator on the host (``dropout_mask``) and moved to the data's device, so a CPU run and a GPU
run with the same seed drop the same elements. A GPU run may instead draw it on the device
(``device_dropout_mask``, ``Dropout(device_masks=True)``) from a CuPy generator, in one draw and one
fused kernel, which saves copying a mask as large as fc6's output every step; NumPy and CuPy give
different streams for one seed, so such a run drops other elements than a CPU run, and what stays
equal (and tested) is the rule: the same rate, the same scaling, the same mask in forward and backward.
"""

import numpy as np

from ..backend import elementwise_kernel, get_array_module
from .validation import require_floating

# mask = 1 / (1 - p) where the uniform draw in [0, 1) is at least p, else 0: what dropout_mask computes.
_MASK_KERNEL = ("T draw, T p, T scale", "T mask", "mask = (draw >= p) * scale;", "minifcn_dropout_mask")


def dropout_mask(shape, p, rng, dtype=np.float32):
    """A host array of ``shape``: 1 / (1 - p) where an element is kept, 0 where it is dropped."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype(1 / (1 - p))


def device_dropout_mask(generator, shape, p, dtype):
    """A device array of ``shape`` drawn from ``generator`` (a ``cupy.random.Generator``): 1 / (1 - p)
    where an element is kept, 0 where it is dropped."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    draw = generator.random(shape, dtype=dtype)
    xp = get_array_module(draw)
    return elementwise_kernel(xp, *_MASK_KERNEL)(draw, p, 1 / (1 - p))


def dropout(x, mask):
    """y = x * mask for x and a mask of the same shape (from ``dropout_mask``); returns ``(y, mask)``."""
    require_floating("input", x)
    if mask.shape != x.shape:
        raise ValueError(f"dropout mask has shape {tuple(mask.shape)}, expected {tuple(x.shape)}")
    xp = get_array_module(x)
    mask = xp.asarray(mask, dtype=x.dtype)
    return x * mask, mask


def dropout_backward(dy, mask):
    """dx = dy * mask: dropped elements get no gradient, kept ones the same scaling as forward."""
    return dy * mask
