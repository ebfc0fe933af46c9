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


def pixel_weights(labels, ignore_index, class_weights, dtype):
    """(weight (N, H, W) of every pixel, labels with the ignored ones set to 0): a labelled pixel weighs 1,
    or its label's class weight; an ignored one 0 (its label 0 keeps a one-hot or a lookup in range)."""
    xp = get_array_module(labels)
    valid = labels != ignore_index
    safe_labels = xp.where(valid, labels, 0)
    weight = valid.astype(dtype)
    if class_weights is not None:
        weight *= xp.asarray(class_weights, dtype=dtype)[safe_labels]
    return weight, safe_labels


def loss_normaliser(pixel_weight, normalize):
    """What the summed loss is divided by: the pixels' total weight (clamped to 1 where every pixel is
    ignored, on the device, with no host round trip), or 1 where the loss is a sum."""
    xp = get_array_module(pixel_weight)
    dtype = pixel_weight.dtype
    if not normalize:
        return dtype.type(1)
    total = pixel_weight.sum()
    return xp.where(total > 0, total, dtype.type(1))


def softmax_cross_entropy(scores, labels, ignore_index=255, normalize=True, class_weights=None, check=True,
                          normaliser=None):
    """Loss of scores (N, K, H, W) against integer labels (N, H, W).

    ``class_weights`` (K,) weights each pixel by its label's weight. ``normaliser``, where given, is
    what the summed loss is divided by instead of this batch's own (``loss_normaliser``): a part of a
    larger batch then gets the whole batch's gradient and its share of the loss. Returns ``(loss,
    cache)`` where loss is a 0-d array on the scores' device.
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

    pixel_weight, safe_labels = pixel_weights(labels, ignore_index, class_weights, dtype)
    one_hot = xp.arange(k, dtype=labels.dtype).reshape(1, k, 1, 1) == safe_labels[:, None]
    label_log_prob = xp.where(one_hot, log_prob, dtype.type(0)).sum(axis=1)
    loss = -(label_log_prob * pixel_weight).sum()
    if normaliser is None:
        normaliser = loss_normaliser(pixel_weight, normalize)
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
