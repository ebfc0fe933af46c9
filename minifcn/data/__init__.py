"""Datasets, image reading, preprocessing and batching.

Every dataset gives ``(image (H, W, 3) uint8 RGB, label (H, W) int32)`` pairs, with ignored pixels set
to ``dataset.ignore_index``, and has ``class_names``, ``class_colors`` (K, 3), ``num_classes`` (K),
``ignore_index`` and ``names``. ``open_dataset`` makes one from a kind and a folder; ``BatchLoader``
turns one into (N, 3, H, W) float32 and (N, H, W) int32 batches. Bad input raises ``DataError``.
"""

from . import transforms
from .camvid import CamVid
from .errors import DataError
from .folder import ImageFolder
from .image_io import read_image, read_label
from .loader import BatchLoader
from .paired_files import PairedFileDataset
from .palette import voc_colormap
from .registry import open_dataset
from .synthetic import SyntheticShapes
from .voc import VOC

__all__ = [
    "BatchLoader",
    "CamVid",
    "DataError",
    "ImageFolder",
    "PairedFileDataset",
    "SyntheticShapes",
    "VOC",
    "open_dataset",
    "read_image",
    "read_label",
    "transforms",
    "voc_colormap",
]
