"""Softmax cross-entropy over the class axis of a score map, with an ignored label.

    loss = - sum over non-ignored pixels p of  w[label_p] * log softmax(scores_p)[label_p]

divided by the sum of those weights (``normalize=True``, PyTorch's ``reduction='mean'``) or not
(``normalize=False``, the sum the Caffe reference used; its learning rate of 1e-10 is only sensible
with an unnormalised loss). Without class weights every w is 1, and the normaliser is the number of
non-ignored pixels.

Numerical stability: the log-softmax is computed as (s - max s) - log sum exp(s - max s), so the
largest exponent is exp(0) and logits of magnitude 1e4 neither overflow nor lose the label's term.
When every pixel is ignored the loss and its gradient are exactly 0 (the normaliser is clamped to 1
on the device, with no host round trip).
"""

from collections import namedtuple

from ..backend import get_array_module
from .validation import out_of_range_labels, require_floating, require_ndim

CrossEntropyCache = namedtuple("CrossEntropyCache", "prob one_hot pixel_scale")


def check_labels(labels, num_classes, ignore_index):
    """Raise ValueError unless every label is in [0, num_classes) or equals ``ignore_index``.

    This reads a value back from the device, so the GPU training loop validates labels on the host
    when batches are made and passes ``check=False``.
    """
    values = out_of_range_labels(labels, num_classes, ignore_index)[:10]
    if values:
        raise ValueError(
            f"labels must be in [0, {num_classes}) or equal the ignore index {ignore_index}; "
            f"found {values}"
        )


def softmax_cross_entropy(scores, labels, ignore_index=255, normalize=True, class_weights=None, check=True):
    """Loss of scores (N, K, H, W) against integer labels (N, H, W).

    ``class_weights`` (K,) weights each pixel by its label's weight. Returns ``(loss, cache)`` where
    loss is a 0-d array on the scores' device.
    """
    require_floating("scores", scores)
    require_ndim("scores", scores, 4, "(N, K, H, W)")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    n, k, h, w = scores.shape
    if tuple(labels.shape) != (n, h, w):
        raise ValueError(f"labels must have shape (N, H, W) = {(n, h, w)} to match scores {tuple(scores.shape)}, "
                         f"got {tuple(labels.shape)}")
    if class_weights is not None and tuple(class_weights.shape) != (k,):
        raise ValueError(f"class_weights must have shape (K,) = ({k},), got {tuple(class_weights.shape)}")
    if check:
        check_labels(labels, k, ignore_index)
    xp = get_array_module(scores, labels)
    dtype = scores.dtype

    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_prob = shifted - xp.log(total)

    valid = labels != ignore_index
    # Ignored pixels get label 0 so the one-hot stays in range; their weight of 0 removes them.
    safe_labels = xp.where(valid, labels, 0)
    one_hot = xp.arange(k, dtype=labels.dtype).reshape(1, k, 1, 1) == safe_labels[:, None]
    pixel_weight = valid.astype(dtype)
    if class_weights is not None:
        pixel_weight *= xp.asarray(class_weights, dtype=dtype)[safe_labels]
    label_log_prob = xp.where(one_hot, log_prob, dtype.type(0)).sum(axis=1)
    loss = -(label_log_prob * pixel_weight).sum()
    if normalize:
        normaliser = pixel_weight.sum()
        normaliser = xp.where(normaliser > 0, normaliser, dtype.type(1))
    else:
        normaliser = dtype.type(1)
    pixel_scale = pixel_weight / normaliser
    cache = CrossEntropyCache(exp / total, one_hot, pixel_scale[:, None])
    return (loss / normaliser).astype(dtype), cache


def softmax_cross_entropy_backward(cache, dloss=1.0):
    """dscores (N, K, H, W) = (softmax - one_hot) * pixel weight / normaliser * dloss."""
    prob, one_hot, pixel_scale = cache
    grad = (prob - one_hot) * pixel_scale
    if isinstance(dloss, float) and dloss == 1.0:
        return grad
    return grad * get_array_module(grad).asarray(dloss, dtype=grad.dtype)
