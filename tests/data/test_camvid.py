"""CamVid: list files, the folder fallback, classes.txt, void -> ignore; the real data when present."""

import numpy as np
import pytest

from minifcn.data import CamVid, DataError, open_dataset
from minifcn.data.camvid import BUILTIN_CLASSES, read_classes


def test_reads_pairs_from_the_list_files(make_camvid):
    root, items = make_camvid({"train": 3, "val": 2})
    dataset = open_dataset("camvid", root, "train")
    assert isinstance(dataset, CamVid)
    assert len(dataset) == 3 and len(open_dataset("camvid", root, "val")) == 2
    assert dataset.names == [stem for stem, _, _ in items["train"]]
    for i, (_, image, label) in enumerate(items["train"]):
        got_image, got_label = dataset[i]
        np.testing.assert_array_equal(got_image, image)
        assert got_label.dtype == np.int32
        np.testing.assert_array_equal(got_label, np.where(label == 11, 255, label))


def test_class_metadata_comes_from_classes_txt(make_camvid):
    root, _ = make_camvid()
    dataset = CamVid(root)
    assert dataset.num_classes == 11 and dataset.ignore_index == 255
    assert dataset.class_names == [f"Class{i}" for i in range(11)]
    np.testing.assert_array_equal(dataset.class_colors[3], [3, 6, 9])
    assert dataset.class_colors.dtype == np.uint8 and dataset.class_colors.shape == (11, 3)
    weights = dataset.class_weights()
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, 0.5 + np.arange(11))


def test_builtin_classes_without_classes_txt(make_camvid):
    root, _ = make_camvid(classes=False)
    dataset = CamVid(root)
    assert dataset.class_names == [name for name, _, _ in BUILTIN_CLASSES]
    np.testing.assert_allclose(dataset.class_weights(), [w for _, _, w in BUILTIN_CLASSES], rtol=1e-6)


def test_falls_back_to_pairing_folders_without_list_files(make_camvid):
    root, items = make_camvid({"train": 3}, lists=False)
    dataset = CamVid(root, "train")
    assert dataset.names == sorted(stem for stem, _, _ in items["train"])
    assert dataset[0][0].shape == (12, 16, 3)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="CamVid root does not exist"):
        open_dataset("camvid", tmp_path / "nowhere")


def test_unknown_split(make_camvid):
    root, _ = make_camvid()
    with pytest.raises(DataError, match="split 'test' not found"):
        CamVid(root, "test")


def test_empty_split(make_camvid):
    root, _ = make_camvid()
    (root / "val.txt").write_text("\n")
    with pytest.raises(DataError, match="lists no images"):
        CamVid(root, "val")


def test_listed_file_missing(make_camvid):
    root, items = make_camvid()
    stem = items["train"][1][0]
    (root / "trainannot" / f"{stem}.png").unlink()
    with pytest.raises(DataError, match=f"{stem}.png: mask listed in train.txt not found"):
        CamVid(root)


def test_void_and_out_of_range_labels(make_camvid):
    root, items = make_camvid({"train": 1})
    from PIL import Image

    label = np.zeros((12, 16), np.uint8)
    label[0, 0] = 12
    Image.fromarray(label).save(root / "trainannot" / f"{items['train'][0][0]}.png")
    with pytest.raises(DataError, match=r"label values 12 are out of range: expected 0\.\.10 or 255"):
        CamVid(root)[0]


def test_bad_classes_txt(make_camvid):
    root, _ = make_camvid()
    (root / "classes.txt").write_text("0 Sky notacolour 1.0\n")
    with pytest.raises(DataError, match=r"classes.txt:1: expected 'index name r,g,b weight'"):
        read_classes(root / "classes.txt")


# The real CamVid from ../shared: listing all of it is quick, decoding only a few images.


@pytest.mark.parametrize(("split", "count"), [("train", 367), ("val", 101), ("test", 233)])
def test_real_camvid_counts(camvid_root, split, count):
    assert len(open_dataset("camvid", camvid_root, split)) == count


def test_real_camvid_items(camvid_root):
    dataset = open_dataset("camvid", camvid_root, "train")
    assert dataset.num_classes == 11
    assert dataset.class_names[0] == "Sky" and dataset.class_names[-1] == "Bicyclist"
    np.testing.assert_array_equal(dataset.class_colors[3], [128, 64, 128])  # Road
    seen = set()
    for index in (0, 100, 366):
        image, label = dataset[index]
        assert image.shape == (360, 480, 3) and image.dtype == np.uint8
        assert label.shape == (360, 480) and label.dtype == np.int32
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(11)) | {255}
    assert 255 in seen and 11 not in seen


def test_real_camvid_void_becomes_ignore(camvid_root):
    from minifcn.data import read_label

    dataset = open_dataset("camvid", camvid_root, "val")
    raw = read_label(dataset.label_paths[0])
    label = dataset.read_label(0)
    np.testing.assert_array_equal(label == 255, raw == 11)
    np.testing.assert_array_equal(label[raw != 11], raw[raw != 11])
