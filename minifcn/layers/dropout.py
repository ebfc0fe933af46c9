"""The dropout layer: Caffe's element-wise dropout in training, the identity in evaluation."""

import numpy as np

from ..backend import get_array_module
from ..ops.dropout import device_dropout_mask, dropout, dropout_backward, dropout_mask
from .module import Module


# The cache of a pass that dropped nothing (evaluation, or p = 0): backward passes dy through.
NO_MASK = ()


class Dropout(Module):
    """Drops each element with probability ``p`` and scales the rest by 1 / (1 - p) in training.

    Masks come from ``rng``, a NumPy Generator on the host, so CPU and GPU runs with the same seed
    drop the same elements; ``last_mask`` keeps the host copy of the latest mask (for tests and
    tutorials that compare against another framework).

    With ``device_masks=True``, masks for GPU inputs are drawn on the device instead, from a CuPy
    generator seeded once from ``rng`` (a seeded run repeats itself), and ``last_mask`` is that device
    array: no mask is copied to the device in a step. They then differ from the CPU's masks (NumPy and
    CuPy streams differ) and a resumed run seeds a new device generator, so its masks are as random
    as, not equal to, an uninterrupted run's. CPU inputs always use ``rng``.
    """

    def __init__(self, p=0.5, rng=None, device_masks=False):
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = np.random.default_rng() if rng is None else rng
        self.device_masks = device_masks
        self.last_mask = None
        self._device_generator = None

    def forward(self, x):
        if not self._draws_own_random_numbers():
            self._save_for_backward(NO_MASK)
            return x
        xp = get_array_module(x)
        if xp is np or not self.device_masks:
            self.last_mask = dropout_mask(x.shape, self.p, self.rng, x.dtype.type)
        else:
            if self._device_generator is None:
                self._device_generator = xp.random.default_rng(int(self.rng.integers(2**63)))
            self.last_mask = device_dropout_mask(self._device_generator, x.shape, self.p, x.dtype)
        y, mask = dropout(x, self.last_mask)
        self._save_for_backward(mask)
        return y

    def backward(self, dy):
        mask = self._saved()
        if mask is None:
            return None
        return dy if mask is NO_MASK else dropout_backward(dy, mask)

    def _draws_own_random_numbers(self):
        return self.training and self.p > 0

    def _use_own_generator(self, rng):
        self.rng = rng
        self._device_generator = None

    def __repr__(self):
        return f"Dropout(p={self.p})"
