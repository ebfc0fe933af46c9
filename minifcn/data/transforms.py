"""Preprocessing (uint8 pictures <-> normalised network input) and augmentations of (image, label) pairs.

A preprocessing is a plain dict, stored in checkpoint metadata so that a model is always fed the way it
was trained::

    {"channel_order": "BGR" or "RGB", "scale": 255.0 or 1.0, "mean": [3 floats], "std": [3 floats]}

``mean`` and ``std`` are given in that channel order and on that scale. The augmentations take a NumPy
``Generator`` and draw everything from it, so a run is reproducible from its seed; images are (H, W, 3),
labels (H, W), and an augmentation always moves both the same way.
"""

import numpy as np
from PIL import Image

from ..backend import to_numpy
from .errors import DataError

# The input conventions that weights in the wild were trained with (mean and std in channel_order's
# order and on its scale).
PREPROCESSING_CAFFE_VGG16 = {  # the original VGG16 release (and ../shared/weights): BGR 0..255 minus mean
    "channel_order": "BGR", "scale": 255.0, "mean": [103.939, 116.779, 123.68], "std": [1.0, 1.0, 1.0],
}
PREPROCESSING_CAFFE_FCN = {  # the reference FCN models: the same convention with their own mean
    "channel_order": "BGR", "scale": 255.0, "mean": [104.00698793, 116.66876762, 122.67891434],
    "std": [1.0, 1.0, 1.0],
}
# Training from scratch (no --init): the FCN convention, also divided by ImageNet's per-channel spread
# (BGR order), because He-normal weights assume unit-variance inputs and raw 0..255 deviations
# (std ~58) make the first steps explode.
PREPROCESSING_FROM_SCRATCH = dict(PREPROCESSING_CAFFE_FCN, std=[57.375, 57.12, 58.395])
PREPROCESSING_TORCHVISION = {  # torchvision's ImageNet models: RGB in [0, 1], minus mean, over std
    "channel_order": "RGB", "scale": 1.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
}


def check_preprocessing(preprocessing):
    """Return ``(reverse_channels, factor, mean (3,) float32, std (3,) float32)`` for a preprocessing dict,
    raising DataError if it is malformed (it may come from a file's metadata)."""
    try:
        order = preprocessing["channel_order"]
        scale = float(preprocessing["scale"])
        mean = np.asarray(preprocessing["mean"], dtype=np.float32)
        std = np.asarray(preprocessing["std"], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"bad preprocessing {preprocessing!r}: need channel_order, scale, mean and std ({error})"
        ) from None
    if order not in ("BGR", "RGB"):
        raise DataError(f"bad preprocessing: channel_order must be 'BGR' or 'RGB', got {order!r}")
    if not scale > 0:
        raise DataError(f"bad preprocessing: scale must be positive, got {scale}")
    if mean.shape != (3,) or std.shape != (3,) or not (std > 0).all():
        raise DataError(f"bad preprocessing: mean and std must be 3 numbers, std positive; got {mean}, {std}")
    return order == "BGR", np.float32(scale / 255.0), mean, std


def normalize(image, preprocessing):
    """Network input from pictures: (H, W, 3) uint8 RGB -> (3, H, W) float32, or (N, H, W, 3) ->
    (N, 3, H, W). Reorders the channels, scales 0..255 to 0..``scale``, subtracts ``mean``, divides by
    ``std``."""
    reverse, factor, mean, std = check_preprocessing(preprocessing)
    image = np.asarray(image)
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3) or (N, H, W, 3), got {image.shape}")
    # Channels first before any arithmetic: NumPy broadcasting over a last axis of length 3 runs its
    # inner loop three elements at a time, about 8x slower than over whole rows.
    x = np.moveaxis(image, -1, -3)
    if reverse:
        x = x[..., ::-1, :, :]
    x = x.astype(np.float32, order="C")
    if factor != 1:
        x *= factor
    x -= mean[:, None, None]
    x /= std[:, None, None]
    return x


def denormalize(x, preprocessing):
    """Pictures from network input: (3, H, W) float -> (H, W, 3) uint8 RGB, or (N, 3, H, W) ->
    (N, H, W, 3); the inverse of ``normalize`` up to rounding. Accepts NumPy or CuPy arrays (the result
    is on the host, for viewing)."""
    reverse, factor, mean, std = check_preprocessing(preprocessing)
    x = to_numpy(x)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"x must have shape (3, H, W) or (N, 3, H, W), got {x.shape}")
    x = x.astype(np.float32) * std[:, None, None] + mean[:, None, None]
    if factor != 1:
        x /= factor
    if reverse:
        x = x[..., ::-1, :, :]
    return np.ascontiguousarray(np.moveaxis(np.clip(np.rint(x), 0, 255).astype(np.uint8), -3, -1))


def random_crop(image, label, size, rng, ignore_index=255):
    """A random ``size`` (int or (height, width)) window of image (H, W, C) and label (H, W).

    Where the image is smaller than the window along an axis, it is placed at a random position inside
    it and the rest is padded: zeros in the image, ``ignore_index`` in the label, so padding never counts
    in the loss or the metrics.
    """
    height, width = (size, size) if np.isscalar(size) else size
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"crop size must be positive, got {size!r}")
    h, w = label.shape[:2]
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and label {label.shape[:2]} sizes differ")
    top = _window_start(h, height, rng)
    left = _window_start(w, width, rng)
    if 0 <= top and top + height <= h and 0 <= left and left + width <= w:
        return image[top:top + height, left:left + width], label[top:top + height, left:left + width]
    out_image = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    out_label = np.full((height, width), ignore_index, dtype=label.dtype)
    (rows_from, rows_to), (cols_from, cols_to) = _overlap(top, height, h), _overlap(left, width, w)
    out_image[rows_to, cols_to] = image[rows_from, cols_from]
    out_label[rows_to, cols_to] = label[rows_from, cols_from]
    return out_image, out_label


def _window_start(extent, window, rng):
    """Start of the window along one axis: anywhere the window stays inside the image when it fits, and
    anywhere the image stays inside the window when it does not (a negative start means padding)."""
    low, high = min(0, extent - window), max(0, extent - window)
    return int(rng.integers(low, high + 1))


def _overlap(start, window, extent):
    """``(source slice, target slice)`` along one axis: the part of the image inside a window that
    starts at ``start``, and where that part lands in the window."""
    first, last = max(start, 0), min(start + window, extent)
    return slice(first, last), slice(first - start, last - start)


def random_flip(image, label, rng, p=0.5):
    """Mirror image (H, W, C) and label (H, W) left to right with probability ``p``.

    Only horizontal flips: road scenes and VOC photos are not symmetric top to bottom.
    """
    if rng.random() < p:
        return image[:, ::-1], label[:, ::-1]
    return image, label


def random_scale(image, label, low, high, rng):
    """Resize image (H, W, 3) uint8 and label (H, W) by one factor drawn uniformly from [low, high].

    The image is resampled bilinearly (Pillow, which also low-pass filters when shrinking); the label by
    nearest neighbour, since averaging class indices would invent classes along boundaries.
    """
    if not 0 < low <= high:
        raise ValueError(f"scale range must satisfy 0 < low <= high, got ({low}, {high})")
    factor = float(rng.uniform(low, high))
    h, w = label.shape[:2]
    new_h, new_w = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    if (new_h, new_w) == (h, w):
        return image, label
    return resize_image(image, (new_h, new_w)), resize_label(label, (new_h, new_w))


def resize_image(image, size):
    """Bilinear resize of an (H, W, 3) uint8 image to ``size`` = (height, width)."""
    if image.dtype != np.uint8:
        raise ValueError(f"resize_image needs a uint8 image, got {image.dtype}")
    height, width = size
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR)
    return np.asarray(resized)


def resize_label(label, size):
    """Nearest-neighbour resize of an (H, W) label to ``size`` = (height, width), sampling each output
    pixel's centre, so values (and ignore_index) are kept exactly."""
    h, w = label.shape[:2]
    height, width = size
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.intp), w - 1)
    return label[rows[:, None], cols[None, :]]
