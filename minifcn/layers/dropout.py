"""The dropout layer: Caffe's element-wise dropout in training, the identity in evaluation."""

import numpy as np

from ..ops.dropout import dropout, dropout_backward, dropout_mask
from .layer import Layer


class Dropout(Layer):
    """Drops each element with probability ``p`` and scales the rest by 1 / (1 - p) in training.

    Masks come from ``rng``, a NumPy Generator on the host, so CPU and GPU runs with the same seed
    drop the same elements; ``last_mask`` keeps the host copy of the latest mask (for tests and
    tutorials that compare against another framework).
    """

    def __init__(self, p=0.5, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = np.random.default_rng() if rng is None else rng
        self.last_mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            self._cache = "identity"
            return x
        self.last_mask = dropout_mask(x.shape, self.p, self.rng, x.dtype.type)
        y, mask = dropout(x, self.last_mask)
        self._keep(mask)
        return y

    def backward(self, dy):
        mask = self._take_cache()
        if not self.input_grad:
            return None
        return dy if isinstance(mask, str) else dropout_backward(dy, mask)

    def __repr__(self):
        return f"Dropout(p={self.p})"
