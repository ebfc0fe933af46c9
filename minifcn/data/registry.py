"""``open_dataset``: one entry point from a dataset kind, a root folder and a split to a dataset."""

from pathlib import Path

from .camvid import CamVid
from .errors import DataError
from .folder import ImageFolder
from .synthetic import SyntheticShapes
from .voc import VOC

# kind -> (class, the keyword options it accepts besides root and split)
DATASETS = {
    "synthetic": (SyntheticShapes, ("size", "image_size", "seed", "max_objects")),
    "camvid": (CamVid, ()),
    "voc": (VOC, ()),
    "folder": (ImageFolder, ("num_classes", "class_names")),
}


def open_dataset(kind, root=None, split="train", **options):
    """The dataset of ``kind`` ("synthetic", "camvid", "voc", "folder") for ``split`` under ``root``.

    ``root`` is ignored for "synthetic" and required otherwise. ``options`` go to the dataset's
    constructor (synthetic: ``size``, ``image_size``, ``seed``, ``max_objects``; folder:
    ``num_classes``, ``class_names``). Raises DataError for an unknown kind or option, a missing root,
    or anything wrong with the files.
    """
    key = str(kind).lower()
    if key not in DATASETS:
        raise DataError(f"unknown dataset kind {kind!r}; expected one of {', '.join(DATASETS)}")
    cls, allowed = DATASETS[key]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise DataError(
            f"dataset {key!r} does not take option(s) {', '.join(unknown)} (accepted: {accepted})"
        )
    if key == "synthetic":
        return cls(split=split, **options)
    if root is None:
        raise DataError(f"dataset {key!r} needs a root folder")
    return cls(Path(root), split=split, **options)
