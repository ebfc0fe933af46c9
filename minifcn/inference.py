"""Running a trained model: class predictions for images, and scores over a whole dataset.

Inference never needs the caches that forward keeps for backward, so they are dropped after every
batch; predictions and the confusion matrix stay on the device until the end of an evaluation, when
the host reads the scores once.
"""

import math

import numpy as np
from tqdm import tqdm

from .backend import get_array_module, to_device, to_numpy
from .data.transforms import normalize
from .layers import SoftmaxCrossEntropy
from .metrics import ConfusionMatrix, scores_from_matrix


def predict_scores(model, images, device):
    """Class scores (N, K, H, W) on the device for a host batch images (N, 3, H, W) float32."""
    scores = model.forward(to_device(images, device))
    model.clear_cache()
    return scores


# Images larger than a tile are segmented tile by tile, so memory stays that of one tile whatever the
# image's size. Each tile reaches TILE_MARGIN pixels past the part of it that is kept, so that the
# kept pixels see context on every side, as they would inside the whole image.
TILE_SIZE = 512
TILE_MARGIN = 64
MIN_TILE_SIZE = 2 * TILE_MARGIN + 32  # a tile keeps at least one cell of the coarsest map (32 px) past its margins


def tile_spans(length, tile_size=TILE_SIZE, margin=TILE_MARGIN):
    """``[(start, stop, keep_start, keep_stop), ...]`` along one axis of ``length`` pixels: the network
    sees [start, stop) (at most ``tile_size`` long) and keeps [keep_start, keep_stop); the kept spans
    cover 0..length exactly once."""
    if length <= tile_size:
        return [(0, length, 0, length)]
    step = tile_size - 2 * margin
    spans = []
    for keep_start in range(0, length, step):
        keep_stop = min(keep_start + step, length)
        start = max(0, min(keep_start - margin, length - tile_size))
        spans.append((start, min(start + tile_size, length), keep_start, keep_stop))
    return spans


def predict_labels(model, image, preprocessing, device, tile_size=TILE_SIZE, margin=TILE_MARGIN):
    """The predicted label map (H, W) int32 on the host for one RGB image (H, W, 3) uint8.

    An image larger than ``tile_size`` on a side is segmented in overlapping tiles of at most
    ``tile_size`` x ``tile_size`` pixels (each keeping its centre, ``margin`` pixels in from the edges
    it shares with a neighbour), so memory is bounded by one tile; ``tile_size`` None segments it whole.
    """
    height, width = image.shape[:2]
    if tile_size is None or (height <= tile_size and width <= tile_size):
        scores = predict_scores(model, normalize(image, preprocessing)[None], device)
        return to_numpy(scores.argmax(axis=1)[0]).astype(np.int32)
    labels = np.empty((height, width), np.int32)
    for top, bottom, keep_top, keep_bottom in tile_spans(height, tile_size, margin):
        for left, right, keep_left, keep_right in tile_spans(width, tile_size, margin):
            tile = normalize(image[top:bottom, left:right], preprocessing)[None]
            predicted = to_numpy(predict_scores(model, tile, device).argmax(axis=1)[0])
            labels[keep_top:keep_bottom, keep_left:keep_right] = predicted[
                keep_top - top:keep_bottom - top, keep_left - left:keep_right - left]
    return labels


def evaluate_model(model, loader, num_classes, ignore_index, device, class_weights=None, normalize_loss=True,
                   progress=True, description="evaluate", tile_size=None, margin=TILE_MARGIN, combine=None):
    """Run ``model`` in eval mode over ``loader``; return ``(scores, mean loss)``.

    ``scores`` is ``ConfusionMatrix.scores()``: pixel accuracy, mean accuracy, mean IoU,
    frequency-weighted IoU and per-class IoU. The loss is the mean of the per-batch losses. With
    ``tile_size``, batches larger than that on a side are scored in overlapping tiles as
    ``predict_labels`` does (memory bounded by one tile); such a batch's loss is the mean of its tiles'
    losses weighted by their labelled pixels (with ``normalize_loss``; their sum otherwise).

    ``combine(matrix, loss, batches)``, where ``loader`` holds one process's share of a distributed
    evaluation, returns the (K, K) confusion counts, summed batch losses and batch count added up
    over every process, which the scores are computed from.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    loss_layer = SoftmaxCrossEntropy(ignore_index, normalize_loss, class_weights, check_labels=False)
    total_loss = None
    batches = 0
    try:
        for images, labels in tqdm(loader, desc=description, leave=False, disable=not progress, unit="batch"):
            height, width = images.shape[2:]
            if tile_size is not None and (height > tile_size or width > tile_size):
                loss = _tiled_loss(model, loss_layer, confusion, images, labels, device, tile_size, margin)
            else:
                labels = to_device(labels, device)
                scores = predict_scores(model, images, device)
                loss = loss_layer.forward(scores, labels)
                confusion.update(loss_layer.predictions(), labels)
                loss_layer.clear_cache()
            total_loss = loss if total_loss is None else total_loss + loss
            batches += 1
    finally:
        if was_training:
            model.train()
    if combine is not None:
        summed = 0.0 if total_loss is None else float(to_numpy(total_loss))
        matrix, summed, batches = combine(confusion.to_numpy(), summed, batches)
        return scores_from_matrix(matrix), summed / batches if batches else float("nan")
    if batches == 0:
        return confusion.scores(), float("nan")
    xp = get_array_module(total_loss)
    return confusion.scores(), float(to_numpy(total_loss / xp.float32(batches)))


def _tiled_loss(model, loss_layer, confusion, images, labels, device, tile_size, margin):
    """The loss of one batch images (N, 3, H, W), labels (N, H, W) scored tile by tile; each tile's kept
    part updates ``confusion``."""
    total, weight = 0.0, 0
    height, width = images.shape[2:]
    for top, bottom, keep_top, keep_bottom in tile_spans(height, tile_size, margin):
        for left, right, keep_left, keep_right in tile_spans(width, tile_size, margin):
            scores = predict_scores(model, np.ascontiguousarray(images[:, :, top:bottom, left:right]), device)
            kept = scores[:, :, keep_top - top:keep_bottom - top, keep_left - left:keep_right - left]
            kept_labels = labels[:, keep_top:keep_bottom, keep_left:keep_right]
            labelled = int((kept_labels != loss_layer.ignore_index).sum())
            tile_labels = to_device(np.ascontiguousarray(kept_labels), device)
            loss = float(to_numpy(loss_layer.forward(kept.copy(), tile_labels)))
            confusion.update(loss_layer.predictions(), tile_labels)
            loss_layer.clear_cache()
            if loss_layer.normalize:
                if labelled:  # a tile with no labelled pixel has no loss to weigh (0/0)
                    total, weight = total + loss * labelled, weight + labelled
            else:
                total, weight = total + loss, 1
    return np.float32(total / weight if weight else 0.0)


MAX_PARAMETERS = 2_000_000_000  # 15x the reference FCN-8s: beyond it an options dict is a bomb, not a model
MAX_MISSING_PARAMETERS = 16_000_000  # 64 MB of float32: more missing than that is not a checkpoint of the model


def expected_shapes(metadata):
    """name -> shape of every parameter of the network a checkpoint's metadata names (its arch, number
    of classes, width and fc_channels), computed without building it; ValueError for options no
    network could have, or a network of more than MAX_PARAMETERS parameters.

    Passed to ``load_checkpoint`` so that each array's declared shape is checked before it is read."""
    from .models.shapes import fcn_shapes, vgg16_shapes

    options = metadata.get("options") or {}
    width, fc_channels = options.get("width", 1.0), options.get("fc_channels", 4096)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 64:
        raise ValueError(f"options.width must be a number in (0, 64], got {width!r}")
    if fc_channels is not None and (isinstance(fc_channels, bool) or not isinstance(fc_channels, int)
                                    or fc_channels < 1):
        raise ValueError(f"options.fc_channels must be a positive integer, got {fc_channels!r}")
    arch, num_classes = metadata.get("arch"), metadata.get("num_classes")
    if arch == "vgg16":
        shapes = vgg16_shapes(width, fc_channels)
    elif fc_channels is None:
        raise ValueError(f"options.fc_channels is required for arch {arch}")
    else:
        shapes = fcn_shapes(arch, num_classes, width, fc_channels)
    # The shapes are a few dozen tuples, whatever they describe; the network's size is what matters.
    parameters = sum(math.prod(shape) for shape in shapes.values())
    if parameters > MAX_PARAMETERS:
        raise ValueError(f"its options (width {width}, fc_channels {fc_channels}, {num_classes} classes) describe "
                         f"a network of {parameters:,} parameters, more than the {MAX_PARAMETERS:,} minifcn "
                         f"builds: refused before building it")
    return shapes


def load_trained_model(path, device="cpu"):
    """``(model, metadata)`` from a minifcn FCN checkpoint, in eval mode on ``device``.

    A bare VGG16 trunk is refused (it has no class scores to predict with), and so are weights that do
    not fit the architecture the checkpoint names (checked against each array's declared shape before it
    is read) and NaN or infinite weights: all raise CheckpointError.
    """
    from .files.checkpoint import CheckpointError, load_checkpoint
    from .models import ARCHITECTURES, build_model

    checkpoint = load_checkpoint(path, shapes=expected_shapes)
    metadata = checkpoint.metadata
    arch = metadata.get("arch")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds a {arch} network, not a segmentation model; train one, or build one "
                              f"with python -m minifcn.convert --arch fcn8s")
    # A small file may name a large network and hold few of its weights: building it would take the
    # memory its options ask for, only to refuse it. Weights that large missing are refused first.
    missing = {name: shape for name, shape in expected_shapes(metadata).items() if name not in checkpoint.state}
    if sum(math.prod(shape) for shape in missing.values()) > MAX_MISSING_PARAMETERS:
        raise CheckpointError(f"{path}: lacks {len(missing)} of the {arch}'s parameters "
                              f"({', '.join(list(missing)[:3])}, ...): refused before building it")
    options = dict(metadata.get("options") or {})
    options["num_classes"] = metadata["num_classes"]
    try:
        model = build_model(arch, **options)
        model.load_state_dict(checkpoint.state)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    return model.to(device).eval(), metadata
