"""Small dataset layouts written into tmp_path: CamVid (SegNet), VOC 2012 (palette PNGs), image folders."""

import numpy as np
import pytest
from PIL import Image

from minifcn.data import voc_colormap


def random_image(rng, height, width):
    """(H, W, 3) uint8 noise."""
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_rgb(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, "RGB").save(path)


def save_grey(path, label):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(label, dtype=np.uint8), "L").save(path)


def save_palette(path, label):
    """A VOC-style palette PNG holding ``label`` as indices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(label, dtype=np.uint8), "P")
    image.putpalette(voc_colormap(256).ravel().tolist())
    image.save(path)


@pytest.fixture
def make_camvid(tmp_path):
    """``make_camvid(counts={"train": 3}, size=(12, 16), lists=True, classes=True)`` -> (root, {split:
    [(stem, image, label)]}). Labels use 0..11, 11 being void."""

    def make(counts=None, size=(12, 16), lists=True, classes=True):
        root = tmp_path / "camvid"
        rng = np.random.default_rng(0)
        items = {}
        for split, count in (counts or {"train": 3, "val": 2}).items():
            items[split] = []
            lines = []
            for i in range(count):
                stem = f"seq_{split}_{i:03d}"
                image = random_image(rng, *size)
                label = rng.integers(0, 12, size).astype(np.int32)
                save_rgb(root / split / f"{stem}.png", image)
                save_grey(root / f"{split}annot" / f"{stem}.png", label)
                lines.append(f"/SegNet/CamVid/{split}/{stem}.png /SegNet/CamVid/{split}annot/{stem}.png")
                items[split].append((stem, image, label))
            if lists:
                (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
        if classes:
            (root / "classes.txt").write_text(
                "# idx name colour weight\n"
                + "".join(f"{i} Class{i} {i},{2 * i},{3 * i} {0.5 + i}\n" for i in range(11))
                + "11 Unlabelled 0,0,0 (ignored)\n"
            )
        return root, items

    return make


@pytest.fixture
def make_voc(tmp_path):
    """``make_voc(ids={"train": [...], "val": [...]}, nested=False)`` -> (voc_root_given, {id: (image,
    label)}). Labels are 0..20 with a 255 border, stored as palette PNGs; images as JPEG."""

    def make(ids=None, nested=False, size=(10, 14)):
        ids = ids or {"train": ["2007_000001", "2007_000002"], "val": ["2007_000003"]}
        given = tmp_path / "voc"
        root = given / "VOCdevkit" / "VOC2012" if nested else given
        rng = np.random.default_rng(1)
        items = {}
        for split, names in ids.items():
            for name in names:
                image = random_image(rng, *size)
                label = rng.integers(0, 21, size).astype(np.int32)
                label[0, :] = 255
                (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95, subsampling=0)
                save_palette(root / "SegmentationClass" / f"{name}.png", label)
                items[name] = (image, label)
            lists = root / "ImageSets" / "Segmentation"
            lists.mkdir(parents=True, exist_ok=True)
            (lists / f"{split}.txt").write_text("\n".join(names) + "\n")
        return given, items

    return make


@pytest.fixture
def make_folder(tmp_path):
    """``make_folder(stems=("a", "b"), split=None, max_label=3, classes=None)`` -> (root, {stem: (image,
    label)}): images as PNG (and JPEG for every other stem), masks as greyscale PNG."""

    def make(stems=("a", "b", "c"), split=None, max_label=3, classes=None, size=(8, 10)):
        root = tmp_path / "folder"
        base = root / split if split else root
        rng = np.random.default_rng(2)
        items = {}
        for i, stem in enumerate(stems):
            image = random_image(rng, *size)
            label = rng.integers(0, max_label + 1, size).astype(np.int32)
            label[0, 0] = max_label
            if i % 2:
                (base / "images").mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(base / "images" / f"{stem}.jpg", quality=95, subsampling=0)
            else:
                save_rgb(base / "images" / f"{stem}.png", image)
            save_grey(base / "masks" / f"{stem}.png", label)
            items[stem] = (image, label)
        if classes is not None:
            (root / "classes.txt").write_text("\n".join(classes) + "\n")
        return root, items

    return make
