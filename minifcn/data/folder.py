"""A user's own data: images and masks paired by file name.

::

    root/images/*.png|jpg|jpeg   root/masks/*.png          (or root/<split>/images, root/<split>/masks)
    root/classes.txt             optional, one class name per line

Masks hold class indices (palette or greyscale PNG); 255 is ignored. Without ``classes.txt`` the class
count is the largest label over the masks of all splits plus one (reading every mask once).
"""

from pathlib import Path

from .errors import DataError
from .image_io import read_label
from .palette import voc_colormap
from .paired_files import PairedFileDataset, require_dir, require_files
from .validation import read_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IGNORE_INDEX = 255


class ImageFolder(PairedFileDataset):
    """Images of ``root/[split/]images`` with the same-stem masks of ``root/[split/]masks``.

    ``num_classes`` or ``class_names`` override what ``classes.txt`` or the masks would say. The split
    folder is used when it exists; otherwise the flat ``root/images`` layout serves every split.
    """

    def __init__(self, root, split="train", num_classes=None, class_names=None):
        root = require_dir(root, "dataset root")
        base = root / split if (root / split / "images").is_dir() else root
        image_dir = base / "images"
        if not image_dir.is_dir():
            raise DataError(f"{root}: no images/ folder (looked for {split}/images/ and images/)")
        label_dir = require_dir(base / "masks", "mask folder")
        image_paths = _list_images(image_dir)
        if not image_paths:
            raise DataError(f"{image_dir}: split {split!r} has no .png/.jpg/.jpeg images")
        label_paths = [label_dir / f"{p.stem}.png" for p in image_paths]
        require_files(label_paths, f"mask for an image of {image_dir.name}/")
        if class_names is None:
            class_names = _read_class_names(root / "classes.txt")
        if class_names is None:
            if num_classes is None:
                num_classes = _count_classes(_all_mask_paths(root))
            class_names = [f"class{i}" for i in range(int(num_classes))]
        elif num_classes is not None and int(num_classes) != len(class_names):
            raise DataError(f"{root}: num_classes={num_classes} but {len(class_names)} class names")
        if not 0 < len(class_names) <= IGNORE_INDEX:
            raise DataError(f"{root}: need 1..{IGNORE_INDEX} classes, got {len(class_names)}")
        super().__init__(
            image_paths, label_paths, class_names, voc_colormap(len(class_names)), root=root, split=split
        )


def _list_images(folder):
    """Image files of ``folder`` sorted by name; two files with one stem (a.png, a.jpg) are an error,
    since only one of them can pair with a.png in masks/."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    seen = {}
    for path in paths:
        if path.stem in seen:
            raise DataError(
                f"{path}: same name as {seen[path.stem].name}; cannot tell which pairs with its mask"
            )
        seen[path.stem] = path
    return paths


def _all_mask_paths(root):
    """Every mask of every split: counting classes over one split alone could give train and val
    different class counts (a class missing from val), and so models of different shapes."""
    folders = [root / "masks"] + sorted(p / "masks" for p in root.iterdir() if p.is_dir())
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob("*.png"))]


def _read_class_names(path):
    """Names from ``classes.txt`` (blank lines and '#' comments skipped), or None if it is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    names = [line.split("#", 1)[0].strip() for line in read_text(path).splitlines()]
    names = [name for name in names if name]
    if not names:
        raise DataError(f"{path}: lists no class names")
    return names


def _count_classes(label_paths):
    """Largest label over all masks plus one, ignoring 255."""
    largest = -1
    for path in label_paths:
        label = read_label(path)
        values = label[label != IGNORE_INDEX]
        if values.size:
            if values.min() < 0:
                raise DataError(f"{path}: negative label value {int(values.min())}")
            largest = max(largest, int(values.max()))
    if largest < 0:
        raise DataError(
            f"{label_paths[0].parent}: every mask pixel is {IGNORE_INDEX} (ignored); no classes to learn"
        )
    return largest + 1
