"""What every file-backed dataset checks on access: sizes, label range, indices, void mapping."""

import numpy as np
import pytest

from minifcn.data import DataError, PairedFileDataset

from .conftest import save_grey, save_rgb


@pytest.fixture
def pair_files(tmp_path):
    def make(image_size=(4, 5), label=None):
        image = np.full(image_size + (3,), 9, np.uint8)
        label = np.zeros(image_size, np.int32) if label is None else np.asarray(label)
        save_rgb(tmp_path / "im.png", image)
        save_grey(tmp_path / "lab.png", label)
        return tmp_path / "im.png", tmp_path / "lab.png"

    return make


def dataset_of(image_path, label_path, **kwargs):
    return PairedFileDataset(
        [image_path], [label_path], ["a", "b", "c"], np.zeros((3, 3)), root=image_path.parent, split="s",
        **kwargs,
    )


def test_item_types_and_attributes(pair_files):
    dataset = dataset_of(*pair_files())
    image, label = dataset[0]
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert label.shape == (4, 5) and label.dtype == np.int32
    assert dataset.names == ["im"] and dataset.num_classes == 3 and dataset.ignore_index == 255
    assert dataset[-1][1].shape == (4, 5)
    with pytest.raises(IndexError):
        dataset[1]


def test_mask_of_another_size(pair_files):
    image_path, _ = pair_files()
    save_grey(image_path.parent / "lab.png", np.zeros((4, 6)))
    message = r"lab\.png: mask is 6x4 \(width x height\) but its image .*im\.png is 5x4"
    with pytest.raises(DataError, match=message):
        dataset_of(image_path, image_path.parent / "lab.png")[0]


def test_label_out_of_range(pair_files):
    with pytest.raises(DataError, match=r"lab\.png: label values 3, 7 are out of range: expected 0\.\.2 or"):
        dataset_of(*pair_files(label=[[0, 3, 7, 255, 1]] * 4))[0]


def test_void_labels_become_ignore(pair_files):
    dataset = dataset_of(*pair_files(label=[[0, 3, 2, 255, 1]] * 4), void_labels=(3,))
    np.testing.assert_array_equal(dataset[0][1][0], [0, 255, 2, 255, 1])
    np.testing.assert_array_equal(dataset.read_label(0)[0], [0, 255, 2, 255, 1])


def test_counted_class_weights_are_median_frequency(pair_files):
    # Class 0: 12 of 20 pixels, class 1: 8 of 20, class 2 absent -> freq 0.6, 0.4, median 0.5.
    label = np.zeros((4, 5), np.int32)
    label[:, 3:] = 1
    dataset = dataset_of(*pair_files(label=label))
    np.testing.assert_allclose(dataset.class_weights(), [0.5 / 0.6, 0.5 / 0.4, 0.0], rtol=1e-6)


def test_empty_split(tmp_path):
    with pytest.raises(DataError, match="has no images"):
        PairedFileDataset([], [], ["a"], [[0, 0, 0]], root=tmp_path, split="train")
