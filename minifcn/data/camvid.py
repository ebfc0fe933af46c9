"""CamVid road scenes, 11 classes, in the layout of the SegNet tutorial.

::

    root/train.txt  val.txt  test.txt      "/SegNet/CamVid/train/X.png /SegNet/CamVid/trainannot/X.png"
    root/train/*.png  trainannot/*.png      RGB images, greyscale masks with values 0..11
    root/classes.txt                        index, name, colour, median-frequency weight

Mask value 11 ("Unlabelled") is void and becomes ``ignore_index`` (255).
"""

from pathlib import Path

from .errors import DataError
from .paired_files import PairedFileDataset, require_dir, require_files
from .validation import read_text

# Used when classes.txt is absent: the SegNet tutorial's classes, colours and class_weighting.
BUILTIN_CLASSES = [
    ("Sky", (128, 128, 128), 0.2595),
    ("Building", (128, 0, 0), 0.1826),
    ("Pole", (192, 192, 128), 4.5640),
    ("Road", (128, 64, 128), 0.1417),
    ("Pavement", (60, 40, 222), 0.9051),
    ("Tree", (128, 128, 0), 0.3826),
    ("SignSymbol", (192, 128, 128), 9.6446),
    ("Fence", (64, 64, 128), 1.8418),
    ("Car", (64, 0, 128), 0.6823),
    ("Pedestrian", (64, 64, 0), 6.2478),
    ("Bicyclist", (0, 128, 192), 7.3614),
]
VOID_LABEL = 11


class CamVid(PairedFileDataset):
    """CamVid split ``split`` ("train", "val" or "test") under ``root``; items as PairedFileDataset."""

    def __init__(self, root, split="train"):
        root = require_dir(root, "CamVid root")
        classes, void_labels = read_classes(root / "classes.txt")
        image_paths, label_paths = _find_pairs(root, split)
        names, colors, weights = zip(*classes)
        super().__init__(
            image_paths, label_paths, names, colors, root=root, split=split,
            void_labels=void_labels, known_weights=weights,
        )


def read_classes(path):
    """``([(name, (r, g, b), weight), ...], void_labels)`` from a CamVid ``classes.txt``.

    Lines are ``index name r,g,b weight``; a line whose weight is not a number (``(ignored)``) names a
    void label. '#' starts a comment. Falls back to the built-in SegNet values when the file is absent.
    """
    path = Path(path)
    if not path.exists():
        return list(BUILTIN_CLASSES), (VOID_LABEL,)
    classes, void_labels = {}, []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        try:
            index = int(fields[0])
            name = fields[1]
            color = tuple(int(c) for c in fields[2].split(","))
            if len(color) != 3 or not all(0 <= c <= 255 for c in color):
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(
                f"{path}:{number}: expected 'index name r,g,b weight', got {line!r}"
            ) from None
        try:
            weight = float(fields[3]) if len(fields) > 3 else None
        except ValueError:
            weight = None
        if weight is None:
            void_labels.append(index)
        else:
            classes[index] = (name, color, weight)
    if sorted(classes) != list(range(len(classes))) or not classes:
        raise DataError(f"{path}: class indices must run 0..K-1, got {sorted(classes)}")
    return [classes[i] for i in range(len(classes))], tuple(void_labels)


def _find_pairs(root, split):
    """Image and mask paths of ``split``, from ``<split>.txt`` or else by pairing the folders by name."""
    list_file = root / f"{split}.txt"
    if list_file.exists():
        image_paths, label_paths = [], []
        for number, line in enumerate(read_text(list_file).splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataError(
                    f"{list_file}:{number}: expected 'image_path label_path', got {line.strip()!r}"
                )
            # The lists hold absolute paths from the SegNet authors' machine; only
            # "<split>/<name>" and "<split>annot/<name>" mean anything here.
            image_paths.append(root.joinpath(*Path(fields[0]).parts[-2:]))
            label_paths.append(root.joinpath(*Path(fields[1]).parts[-2:]))
        if not image_paths:
            raise DataError(f"{list_file}: split {split!r} lists no images")
        require_files(image_paths, "image listed in " + list_file.name)
        require_files(label_paths, "mask listed in " + list_file.name)
        return image_paths, label_paths
    image_dir, label_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir():
        raise DataError(
            f"{root}: CamVid split {split!r} not found: neither {list_file.name} nor {split}/ exists"
        )
    require_dir(label_dir, "CamVid mask folder")
    image_paths = sorted(image_dir.glob("*.png"))
    if not image_paths:
        raise DataError(f"{image_dir}: split {split!r} has no .png images")
    label_paths = [label_dir / p.name for p in image_paths]
    require_files(label_paths, "mask for an image of " + split + "/")
    return image_paths, label_paths
