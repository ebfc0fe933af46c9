"""Checks shared by every dataset and by the batch loader; each raises DataError naming the file."""

from ..backend import get_array_module, to_numpy
from .errors import DataError


def check_same_size(image, label, image_source, label_source):
    """Require an image (H, W, 3) and its mask (H, W) to cover the same pixels."""
    if image.shape[:2] != label.shape[:2]:
        ih, iw = image.shape[:2]
        lh, lw = label.shape[:2]
        raise DataError(
            f"{label_source}: mask is {lw}x{lh} (width x height) but its image {image_source} is {iw}x{ih}"
        )


def out_of_range_labels(labels, num_classes, ignore_index):
    """The distinct values of ``labels`` (integers of any shape, NumPy or CuPy) that are neither in
    [0, K) nor ``ignore_index``, sorted, as Python ints; [] when every value is valid.

    The one definition of a valid label: the loss checks its input with it, the loader its batches.
    On a GPU it reads a flag back from the device, which is why batches are checked on the host.
    """
    xp = get_array_module(labels)
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if not bool(bad.any()):
        return []
    return [int(value) for value in to_numpy(xp.unique(labels[bad]))]


def check_labels(label, num_classes, ignore_index, source):
    """Require every value of ``label`` (any shape, integers) to lie in [0, K) or equal ``ignore_index``.

    Done on the host, once per item, so the loss and the metrics on the GPU need no check of their own
    (an out-of-range index there would wrap around silently instead of failing).
    """
    values = out_of_range_labels(label, num_classes, ignore_index)
    if values:
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        raise DataError(
            f"{source}: label values {shown} are out of range: expected 0..{num_classes - 1} "
            f"or {ignore_index} (ignored)"
        )
