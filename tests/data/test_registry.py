"""open_dataset: kinds, options and the errors a command line turns into exit code 2."""

import pytest

from minifcn.data import DataError, SyntheticShapes, open_dataset


def test_synthetic_ignores_root_and_takes_options():
    dataset = open_dataset("synthetic", root="/does/not/matter", split="val", size=5, image_size=64, seed=3)
    assert isinstance(dataset, SyntheticShapes)
    assert len(dataset) == 5 and dataset[0][0].shape == (64, 64, 3) and dataset.split == "val"


def test_kind_is_case_insensitive():
    assert len(open_dataset("Synthetic", size=2)) == 2


def test_unknown_kind():
    with pytest.raises(DataError, match="unknown dataset kind 'cityscapes'"):
        open_dataset("cityscapes", "/x")


def test_unknown_option():
    with pytest.raises(DataError, match=r"does not take option\(s\) crop"):
        open_dataset("synthetic", crop=3)
    with pytest.raises(DataError, match=r"accepted: none"):
        open_dataset("voc", "/x", colour=1)


@pytest.mark.parametrize("kind", ["camvid", "voc", "folder"])
def test_root_is_required(kind):
    with pytest.raises(DataError, match="needs a root folder"):
        open_dataset(kind)


@pytest.mark.parametrize("kind", ["camvid", "voc", "folder"])
def test_missing_root(kind, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(kind, tmp_path / "missing")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
