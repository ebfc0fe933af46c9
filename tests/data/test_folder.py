"""Image folders: pairing by stem, split folders, class count from classes.txt or from the masks."""

import numpy as np
import pytest
from PIL import Image

from minifcn.data import DataError, ImageFolder, open_dataset

from .conftest import save_grey, save_rgb


def test_pairs_png_and_jpeg_images_with_masks_by_stem(make_folder):
    root, items = make_folder(("a", "b", "c"), max_label=3)
    dataset = open_dataset("folder", root)
    assert isinstance(dataset, ImageFolder)
    assert dataset.names == ["a", "b", "c"]
    assert [p.suffix for p in dataset.image_paths] == [".png", ".jpg", ".png"]
    image, label = dataset[0]
    np.testing.assert_array_equal(image, items["a"][0])
    np.testing.assert_array_equal(label, items["a"][1])
    assert dataset[1][0].shape == (8, 10, 3)


def test_class_count_from_the_masks(make_folder):
    root, _ = make_folder(max_label=4)
    dataset = ImageFolder(root)
    assert dataset.num_classes == 5 and dataset.ignore_index == 255
    assert dataset.class_names == [f"class{i}" for i in range(5)]
    assert dataset.class_colors.shape == (5, 3) and len({tuple(c) for c in dataset.class_colors}) == 5


def test_class_names_from_classes_txt(make_folder):
    root, _ = make_folder(max_label=2, classes=["sky", "# a comment", "", "road", "car", "person"])
    dataset = ImageFolder(root)
    assert dataset.class_names == ["sky", "road", "car", "person"]
    assert dataset.num_classes == 4


def test_split_folder_is_used_when_present(make_folder):
    root, _ = make_folder(("x", "y"), split="val")
    assert ImageFolder(root, split="val").names == ["x", "y"]
    with pytest.raises(DataError, match="no images/ folder"):
        ImageFolder(root, split="train")


def test_class_count_is_shared_by_all_splits(make_folder):
    root, _ = make_folder(("x", "y"), split="val", max_label=2)
    make_folder(("p", "q"), split="train", max_label=5)
    assert ImageFolder(root, split="val").num_classes == ImageFolder(root, split="train").num_classes == 6


def test_ignore_label_is_not_counted_as_a_class(make_folder):
    root, items = make_folder(("a",), max_label=2)
    label = items["a"][1].copy()
    label[1, :] = 255
    save_grey(root / "masks" / "a.png", label)
    dataset = ImageFolder(root)
    assert dataset.num_classes == 3
    assert (dataset[0][1][1] == 255).all()


def test_missing_mask(make_folder):
    root, _ = make_folder()
    (root / "masks" / "b.png").unlink()
    with pytest.raises(DataError, match=r"b\.png: mask for an image of images/ not found"):
        ImageFolder(root)


def test_empty_images_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match="has no .png/.jpg/.jpeg images"):
        ImageFolder(tmp_path)


def test_two_images_with_one_stem(make_folder):
    root, items = make_folder(("a", "b"))
    save_rgb(root / "images" / "b.png", items["b"][0])
    with pytest.raises(DataError, match="same name as b"):
        ImageFolder(root)


def test_label_beyond_classes_txt_is_refused_on_access(make_folder):
    root, _ = make_folder(("a",), max_label=3, classes=["one", "two"])
    with pytest.raises(DataError, match=r"a\.png: label values 2, 3 are out of range: expected 0\.\.1 or"):
        ImageFolder(root)[0]


def test_unreadable_image_is_reported_on_access(make_folder):
    root, _ = make_folder(("a", "b"))
    (root / "images" / "a.png").write_bytes(b"\x89PNG broken")
    dataset = ImageFolder(root)
    with pytest.raises(DataError, match=r"a\.png: cannot read image"):
        dataset[0]
    assert dataset[1][0].shape == (8, 10, 3)


def test_rgba_image(make_folder):
    root, items = make_folder(("a", "b"))
    rgba = np.concatenate([items["a"][0], np.full((8, 10, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(root / "images" / "a.png")
    image, _ = ImageFolder(root)[0]
    np.testing.assert_array_equal(image, items["a"][0])
