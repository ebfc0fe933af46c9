"""Checks shared by every dataset and by the batch loader; each raises DataError naming the file."""

from ..ops.validation import out_of_range_labels
from .errors import DataError


def check_same_size(image, label, image_source, label_source):
    """Require an image (H, W, 3) and its mask (H, W) to cover the same pixels."""
    if image.shape[:2] != label.shape[:2]:
        ih, iw = image.shape[:2]
        lh, lw = label.shape[:2]
        raise DataError(
            f"{label_source}: mask is {lw}x{lh} (width x height) but its image {image_source} is {iw}x{ih}"
        )


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


def read_text(path):
    """The text of a dataset's list or class file, read as UTF-8; DataError naming the file if it is not
    (a file saved as Latin-1, say), rather than a UnicodeDecodeError from deep inside the reader."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8") from None
