"""PASCAL VOC 2012: palette PNG indices, the 255 border, both root layouts, the standard classes."""

import numpy as np
import pytest

from minifcn.data import VOC, DataError, open_dataset
from minifcn.data.voc import CLASS_NAMES

from .conftest import save_palette


@pytest.mark.parametrize("nested", [False, True])
def test_reads_palette_indices(make_voc, nested):
    root, items = make_voc(nested=nested)
    dataset = open_dataset("voc", root, "train")
    assert isinstance(dataset, VOC)
    assert dataset.names == ["2007_000001", "2007_000002"]
    image, label = dataset[1]
    want_image, want_label = items["2007_000002"]
    assert image.shape == (10, 14, 3) and image.dtype == np.uint8
    # JPEG is lossy: close, not equal.
    assert np.abs(image.astype(int) - want_image.astype(int)).mean() < 40
    assert label.dtype == np.int32
    np.testing.assert_array_equal(label, want_label)
    assert (label[0] == 255).all()


def test_classes_and_colormap(make_voc):
    dataset = VOC(make_voc()[0], "val")
    assert len(dataset) == 1
    assert dataset.num_classes == 21 and dataset.ignore_index == 255
    assert dataset.class_names == CLASS_NAMES and dataset.class_names[15] == "person"
    np.testing.assert_array_equal(
        dataset.class_colors[[0, 1, 15, 20]], [[0, 0, 0], [128, 0, 0], [192, 128, 128], [0, 64, 128]]
    )


def test_class_weights_are_counted(make_voc):
    weights = VOC(make_voc()[0], "train").class_weights()
    assert weights.shape == (21,) and weights.dtype == np.float32 and (weights > 0).all()


def test_not_a_voc_folder(tmp_path):
    with pytest.raises(DataError, match="not a VOC2012 folder"):
        VOC(tmp_path)


def test_missing_split(make_voc):
    with pytest.raises(DataError, match="VOC split 'trainval' not found"):
        VOC(make_voc()[0], "trainval")


def test_missing_listed_image(make_voc):
    root, _ = make_voc()
    (root / "JPEGImages" / "2007_000003.jpg").unlink()
    with pytest.raises(DataError, match=r"2007_000003\.jpg: image listed in val\.txt not found"):
        VOC(root, "val")


def test_out_of_range_index(make_voc):
    root, _ = make_voc()
    label = np.zeros((10, 14), np.int32)
    label[3, 4] = 21
    save_palette(root / "SegmentationClass" / "2007_000003.png", label)
    with pytest.raises(DataError, match=r"2007_000003\.png: label values 21 are out of range"):
        VOC(root, "val")[0]


def test_mask_of_another_size(make_voc):
    root, _ = make_voc()
    save_palette(root / "SegmentationClass" / "2007_000003.png", np.zeros((10, 15), np.int32))
    message = r"2007_000003\.png: mask is 15x10 .* but its image .*2007_000003\.jpg is 14x10"
    with pytest.raises(DataError, match=message):
        VOC(root, "val")[0]
