"""The shared shape of every file-backed dataset: a list of (image file, mask file) pairs.

CamVid, VOC and image folders differ only in how they find their pairs and name their classes; reading,
checking and mapping an item is the same for all of them and lives here.
"""

from pathlib import Path

import numpy as np

from .class_weights import count_label_pixels, median_frequency_weights
from .errors import DataError
from .image_io import read_image, read_label
from .validation import check_labels, check_same_size


class PairedFileDataset:
    """Images and masks stored as files, paired one to one.

    ``dataset[i]`` -> ``(image, label)``: image (H, W, 3) uint8 RGB, label (H, W) int32 with values in
    [0, K) or ``ignore_index``. Every access checks that the mask matches its image in size and that its
    values are in range, raising DataError naming the file, so a bad file fails where it is read, not
    as a NaN many iterations later.

    Attributes: ``class_names`` (K str), ``class_colors`` (K, 3) uint8 RGB, ``num_classes`` K,
    ``ignore_index``, ``names`` (the file stems), ``image_paths``, ``label_paths``, ``root``, ``split``.
    """

    ignore_index = 255

    def __init__(self, image_paths, label_paths, class_names, class_colors, *, root, split,
                 void_labels=(), known_weights=None):
        """``void_labels``: raw mask values that mean "no class" and become ``ignore_index``.
        ``known_weights``: published median-frequency weights (K,), returned by ``class_weights``."""
        if len(image_paths) != len(label_paths):
            raise ValueError("image_paths and label_paths must have the same length")
        if not image_paths:
            raise DataError(f"{root}: split {split!r} has no images")
        self.image_paths = [Path(p) for p in image_paths]
        self.label_paths = [Path(p) for p in label_paths]
        self.names = [p.stem for p in self.image_paths]
        self.class_names = [str(name) for name in class_names]
        self.class_colors = np.asarray(class_colors, dtype=np.uint8).reshape(len(self.class_names), 3)
        self.num_classes = len(self.class_names)
        self.root = Path(root)
        self.split = split
        self.void_labels = tuple(int(v) for v in void_labels)
        self._weights = None if known_weights is None else np.asarray(known_weights, dtype=np.float32)

    def __len__(self):
        return len(self.image_paths)

    def __getitem__(self, index):
        index = self._check_index(index)
        image = read_image(self.image_paths[index])
        label = self._read_mapped_label(index)
        check_same_size(image, label, self.image_paths[index], self.label_paths[index])
        return image, label

    def read_label(self, index):
        """Only the label (H, W) int32 of item ``index``, mapped and checked (no image decoding)."""
        return self._read_mapped_label(self._check_index(index))

    def class_weights(self):
        """Median-frequency weights (K,) float32: the published ones when known, else counted over the
        split's labels once (reads every mask of the split) and remembered."""
        if self._weights is None:
            counts = count_label_pixels(
                (self.read_label(i) for i in range(len(self))), self.num_classes, self.ignore_index
            )
            self._weights = median_frequency_weights(*counts)
        return self._weights.copy()

    def __repr__(self):
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, items={len(self)}, "
            f"classes={self.num_classes})"
        )

    def _check_index(self, index):
        count = len(self.image_paths)
        index = int(index)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"index out of range for a dataset of {count} items")
        return index

    def _read_mapped_label(self, index):
        path = self.label_paths[index]
        label = read_label(path)
        for void in self.void_labels:
            label[label == void] = self.ignore_index
        check_labels(label, self.num_classes, self.ignore_index, path)
        return label


def require_dir(path, what):
    """Raise DataError unless ``path`` is an existing folder."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {what} does not exist")
    if not path.is_dir():
        raise DataError(f"{path}: {what} is not a folder")
    return path


def require_files(paths, what):
    """Raise DataError naming the first missing file of ``paths`` (and how many are missing)."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: {what} not found{more}")
