"""PASCAL VOC 2012 segmentation, 21 classes (background and 20 objects).

::

    VOC2012/JPEGImages/<id>.jpg
    VOC2012/SegmentationClass/<id>.png          palette PNGs: the palette index is the class
    VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt   one id per line

Index 255 (the cream outline around objects) is ignored. ``root`` may be the VOC2012 folder itself or
a folder holding ``VOCdevkit/VOC2012``.
"""

from .errors import DataError
from .palette import voc_colormap
from .paired_files import PairedFileDataset, require_dir, require_files
from .validation import read_text

CLASS_NAMES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]


class VOC(PairedFileDataset):
    """VOC 2012 split ``split`` ("train", "val", "trainval"); items as PairedFileDataset."""

    def __init__(self, root, split="train"):
        root = find_voc_root(root)
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise DataError(f"{list_file}: VOC split {split!r} not found")
        ids = [line.split()[0] for line in read_text(list_file).splitlines() if line.strip()]
        if not ids:
            raise DataError(f"{list_file}: split {split!r} lists no images")
        image_paths = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
        label_paths = [root / "SegmentationClass" / f"{i}.png" for i in ids]
        require_files(image_paths, "image listed in " + list_file.name)
        require_files(label_paths, "mask listed in " + list_file.name)
        super().__init__(
            image_paths, label_paths, CLASS_NAMES, voc_colormap(len(CLASS_NAMES)), root=root, split=split
        )


def find_voc_root(root):
    """The VOC2012 folder: ``root`` itself, or ``root/VOCdevkit/VOC2012``, or ``root/VOC2012``."""
    root = require_dir(root, "VOC root")
    for candidate in (root, root / "VOCdevkit" / "VOC2012", root / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DataError(f"{root}: not a VOC2012 folder (no JPEGImages/ here or under VOCdevkit/VOC2012/)")
