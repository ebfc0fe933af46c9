"""Running a trained model: class predictions for images, and scores over a whole dataset.

Inference never needs the caches that forward keeps for backward, so they are dropped after every
batch; predictions and the confusion matrix stay on the device until the end of an evaluation, when
the host reads the scores once.
"""

import numpy as np
from tqdm import tqdm

from .backend import get_array_module, to_device, to_numpy
from .data.transforms import normalize
from .layers import SoftmaxCrossEntropy
from .metrics import ConfusionMatrix


def predict_scores(model, images, device):
    """Class scores (N, K, H, W) on the device for a host batch images (N, 3, H, W) float32."""
    scores = model.forward(to_device(images, device))
    model.clear_cache()
    return scores


def predict_labels(model, image, preprocessing, device):
    """The predicted label map (H, W) int32 on the host for one RGB image (H, W, 3) uint8."""
    x = normalize(image, preprocessing)[None]
    scores = predict_scores(model, x, device)
    return to_numpy(scores.argmax(axis=1)[0]).astype(np.int32)


def evaluate_model(model, loader, num_classes, ignore_index, device, class_weights=None, normalize_loss=True,
                   progress=True, description="evaluate"):
    """Run ``model`` in eval mode over ``loader``; return ``(scores, mean loss)``.

    ``scores`` is ``ConfusionMatrix.scores()``: pixel accuracy, mean accuracy, mean IoU,
    frequency-weighted IoU and per-class IoU. The loss is the mean of the per-batch losses.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    loss_layer = SoftmaxCrossEntropy(ignore_index, normalize_loss, class_weights, check_labels=False)
    total_loss = None
    batches = 0
    try:
        for images, labels in tqdm(loader, desc=description, leave=False, disable=not progress, unit="batch"):
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
    if batches == 0:
        return confusion.scores(), float("nan")
    xp = get_array_module(total_loss)
    return confusion.scores(), float(to_numpy(total_loss / xp.float32(batches)))


def load_trained_model(path, device="cpu"):
    """``(model, metadata)`` from a minifcn FCN checkpoint, in eval mode on ``device``.

    A bare VGG16 trunk is refused (it has no class scores to predict with), and so are weights that do
    not fit the architecture the checkpoint names: both raise CheckpointError.
    """
    from .files.checkpoint import CheckpointError, load_checkpoint
    from .models import ARCHITECTURES, build_model

    checkpoint = load_checkpoint(path)
    metadata = checkpoint.metadata
    arch = metadata.get("arch")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds a {arch} network, not a segmentation model; train one, or build one "
                              f"with python -m minifcn.convert --arch fcn8s")
    options = dict(metadata.get("options") or {})
    options["num_classes"] = metadata["num_classes"]
    try:
        model = build_model(arch, **options)
        model.load_state_dict(checkpoint.state)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    return model.to(device).eval(), metadata
