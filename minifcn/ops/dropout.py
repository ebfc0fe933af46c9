"""Dropout as in Caffe: drop single elements with probability p, scale the kept ones by 1 / (1 - p).

Scaling at training time ("inverted dropout") makes evaluation the identity. The mask is drawn from
a NumPy generator on the host and then moved to the data's device, so a CPU run and a GPU run with the
same seed drop the same elements (NumPy and CuPy give different streams for one seed).
"""

import numpy as np

from ..backend import get_array_module
from .validation import require_floating


def dropout_mask(shape, p, rng, dtype=np.float32):
    """A host array of ``shape``: 1 / (1 - p) where an element is kept, 0 where it is dropped."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype(1 / (1 - p))


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
