"""The loss layer: softmax cross-entropy over pixels, with an ignored label."""

import numpy as np

from ..backend import device_of, get_array_module
from ..ops.softmax_cross_entropy import (
    loss_normaliser,
    pixel_weights,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)
from .module import Module


class SoftmaxCrossEntropy(Module):
    """``forward(scores, labels)`` -> 0-d loss; ``backward()`` -> dscores.

    ``normalize=True`` averages over non-ignored pixels; ``False`` sums as the Caffe reference did.
    ``class_weights`` (K,) optionally weights pixels by their label (e.g. median-frequency balancing).
    ``check_labels`` validates label values, which reads a flag back from the device; the GPU
    training loop validates on the host instead and turns it off.
    """

    def __init__(self, ignore_index=255, normalize=True, class_weights=None, check_labels=True):
        self.ignore_index = ignore_index
        self.normalize = normalize
        self.class_weights = class_weights
        self.check_labels = check_labels
        self._moved_weights = None  # (the class_weights moved, (device, dtype), their copy there)

    def _weights_like(self, scores):
        """``class_weights`` as an array on the scores' device and of their dtype; on a GPU copied there
        once and kept (copying them every forward is a host-to-device transfer each step)."""
        weights = self.class_weights
        xp = get_array_module(scores)
        if weights is None or xp is np:
            return None if weights is None else xp.asarray(weights, dtype=scores.dtype)
        where = (device_of(scores), scores.dtype)
        moved = self._moved_weights
        if moved is None or moved[0] is not weights or moved[1] != where:
            self._moved_weights = moved = (weights, where, xp.asarray(weights, dtype=scores.dtype))
        return moved[2]

    def forward(self, scores, labels, normaliser=None):
        """scores (N, K, H, W), labels (N, H, W) integers -> 0-d loss on the scores' device.

        ``normaliser``: for scores and labels that are a part of a batch, the batch's (``normaliser``
        below), so that the part's loss is its share of the batch's and its gradient the batch's."""
        weights = self._weights_like(scores)
        loss, self._cache = softmax_cross_entropy(
            scores, labels, self.ignore_index, self.normalize, weights, self.check_labels, normaliser
        )
        return loss

    def normaliser(self, labels, dtype=np.float32):
        """What the summed loss of a batch with these labels (N, H, W) is divided by: the batch's
        labelled pixels (each weighing its class weight), or 1 where the loss is a sum."""
        weights = None
        if self.class_weights is not None:
            weights = get_array_module(labels).asarray(self.class_weights, dtype=dtype)
        return loss_normaliser(pixel_weights(labels, self.ignore_index, weights, dtype)[0], self.normalize)

    def predictions(self):
        """The predicted class (N, H, W) of every pixel of the last forward pass (argmax of the softmax,
        which is the argmax of the scores), computed on the device for the metrics."""
        if self._cache is None:
            raise RuntimeError("SoftmaxCrossEntropy.predictions needs a forward pass and must come before backward")
        return self._cache.prob.argmax(axis=1).astype("int32")

    def backward(self, dloss=1.0):
        """dscores (N, K, H, W), scaled by ``dloss`` (the gradient of what the loss feeds into)."""
        return softmax_cross_entropy_backward(self._saved(), dloss)

    def __repr__(self):
        return f"SoftmaxCrossEntropy(ignore_index={self.ignore_index}, normalize={self.normalize})"
