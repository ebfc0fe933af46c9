"""BatchLoader: shapes, determinism per (seed, epoch), prefetch thread life, errors reaching the consumer."""

import threading
import time

import numpy as np
import pytest

from minifcn.data import BatchLoader, DataError, SyntheticShapes, open_dataset
from minifcn.data.transforms import PREPROCESSING_CAFFE_FCN, PREPROCESSING_TORCHVISION, normalize


class ListDataset:
    """A dataset over given (image, label) pairs; ``delay`` seconds per item, ``fail_at`` raises."""

    ignore_index = 255

    def __init__(self, items, num_classes=3, delay=0.0, fail_at=None):
        self.items = items
        self.num_classes = num_classes
        self.class_names = [str(i) for i in range(num_classes)]
        self.names = [f"item{i}" for i in range(len(items))]
        self.delay = delay
        self.fail_at = fail_at

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        time.sleep(self.delay)
        if index == self.fail_at:
            raise RuntimeError(f"cannot load item {index}")
        return self.items[index]


def constant_items(count, size=(6, 8)):
    """Item i is an image filled with i and a label of zeros."""
    return [(np.full(size + (3,), i, np.uint8), np.zeros(size, np.int32)) for i in range(count)]


def loader_threads():
    return [t for t in threading.enumerate() if t.name == "minifcn-batch-loader"]


@pytest.fixture(scope="module")
def shapes():
    return SyntheticShapes(size=12, image_size=64, seed=0)


def test_shapes_dtypes_and_length(shapes):
    loader = BatchLoader(shapes, 5, PREPROCESSING_CAFFE_FCN)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]
    images, labels = batches[0]
    assert images.shape == (5, 3, 64, 64) and images.dtype == np.float32
    assert labels.shape == (5, 64, 64) and labels.dtype == np.int32
    assert len(BatchLoader(shapes, 5, PREPROCESSING_CAFFE_FCN, drop_last=True)) == 2
    assert [b[0].shape[0] for b in BatchLoader(shapes, 5, PREPROCESSING_CAFFE_FCN, drop_last=True)] == [5, 5]


def test_unshuffled_batches_are_the_normalised_items(shapes):
    loader = BatchLoader(shapes, 4, PREPROCESSING_TORCHVISION, shuffle=False)
    images, labels = next(iter(loader))
    for i in range(4):
        image, label = shapes[i]
        np.testing.assert_array_equal(images[i], normalize(image, PREPROCESSING_TORCHVISION))
        np.testing.assert_array_equal(labels[i], label)


def test_shuffle_visits_every_item_once():
    loader = BatchLoader(ListDataset(constant_items(10)), 3, PREPROCESSING_TORCHVISION, seed=4)
    seen = [int(round(v)) for images, _ in loader for v in images[:, 0, 0, 0] * 0.229 * 255 + 0.485 * 255]
    assert sorted(seen) == list(range(10)) and seen != list(range(10))


def augmenting(dataset, seed=0, prefetch=2):
    return BatchLoader(
        dataset, 3, PREPROCESSING_CAFFE_FCN, crop_size=48, flip=True, scale=(0.7, 1.4), seed=seed,
        prefetch=prefetch,
    )


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for (images_a, labels_a), (images_b, labels_b) in zip(first, second):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)


def test_same_seed_and_epoch_give_identical_batches(shapes):
    first, second = augmenting(shapes), augmenting(shapes, prefetch=0)
    first.set_epoch(3)
    second.set_epoch(3)
    assert_same_batches(list(first), list(second))


def test_epochs_and_seeds_differ_and_an_epoch_can_be_replayed(shapes):
    loader = augmenting(shapes)
    epoch0 = list(loader)
    loader.set_epoch(1)
    epoch1 = list(loader)
    assert not np.array_equal(epoch0[0][0], epoch1[0][0])
    other = augmenting(shapes, seed=1)
    assert not np.array_equal(list(other)[0][0], epoch0[0][0])
    loader.set_epoch(0)
    assert_same_batches(list(loader), epoch0)


def test_crop_pads_with_the_ignore_index(shapes):
    loader = BatchLoader(shapes, 2, PREPROCESSING_CAFFE_FCN, crop_size=(80, 72), shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 80, 72) and labels.shape == (2, 80, 72)
    padding = labels == 255
    assert padding.sum(axis=(1, 2)).tolist() == [80 * 72 - 64 * 64] * 2
    # The padded image is black, which normalises to minus the mean.
    blue = images[:, 0][padding]
    np.testing.assert_allclose(blue, -104.00698793, rtol=1e-6)


def test_early_break_stops_the_prefetch_thread():
    dataset = ListDataset(constant_items(40), delay=0.002)
    before = len(loader_threads())
    for _ in BatchLoader(dataset, 2, PREPROCESSING_CAFFE_FCN, prefetch=2):
        assert len(loader_threads()) == before + 1
        time.sleep(0.05)  # let the worker fill the queue and block on it
        break
    assert len(loader_threads()) == before
    # Abandoning a started iterator without a break also stops it once it is closed.
    iterator = iter(BatchLoader(dataset, 2, PREPROCESSING_CAFFE_FCN))
    next(iterator)
    iterator.close()
    assert len(loader_threads()) == before


def test_worker_exception_reaches_the_consumer():
    dataset = ListDataset(constant_items(10), fail_at=5)
    loader = BatchLoader(dataset, 2, PREPROCESSING_CAFFE_FCN, shuffle=False)
    received = []
    with pytest.raises(RuntimeError, match="cannot load item 5"):
        for batch in loader:
            received.append(batch)
    assert len(received) == 2
    assert loader_threads() == []


def test_label_out_of_range_names_the_item():
    items = constant_items(4)
    items[2][1][1, 1] = 3
    loader = BatchLoader(ListDataset(items), 2, PREPROCESSING_CAFFE_FCN, shuffle=False)
    with pytest.raises(DataError, match=r"item 2 \(item2\): label values 3 are out of range"):
        list(loader)


def test_label_out_of_range_names_the_file(make_folder):
    root, _ = make_folder(("a", "b"), max_label=2, classes=["x", "y", "z"])
    dataset = open_dataset("folder", root)
    # A dataset whose own check was skipped still meets the loader's.
    dataset._read_mapped_label = lambda index: np.full((8, 10), 9, np.int32)
    with pytest.raises(DataError, match=r"a\.png: label values 9 are out of range"):
        next(iter(BatchLoader(dataset, 2, PREPROCESSING_CAFFE_FCN, shuffle=False)))


def test_mixed_sizes_need_a_crop():
    items = constant_items(2) + constant_items(1, size=(7, 8))
    loader = BatchLoader(ListDataset(items), 3, PREPROCESSING_CAFFE_FCN, shuffle=False)
    with pytest.raises(DataError, match=r"item 0 \(item0\) is 8x6 but item 2 \(item2\) is 8x7; set crop"):
        list(loader)
    assert len(list(BatchLoader(ListDataset(items), 1, PREPROCESSING_CAFFE_FCN))) == 3
    assert len(list(BatchLoader(ListDataset(items), 3, PREPROCESSING_CAFFE_FCN, crop_size=5))) == 1


def test_bad_arguments(shapes):
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(shapes, 0, PREPROCESSING_CAFFE_FCN)
    with pytest.raises(ValueError, match="scale"):
        BatchLoader(shapes, 1, PREPROCESSING_CAFFE_FCN, scale=(2.0, 1.0))
    with pytest.raises(DataError, match="channel_order"):
        BatchLoader(shapes, 1, {"channel_order": "XYZ", "scale": 1.0, "mean": [0] * 3, "std": [1] * 3})


def test_real_camvid_batch(camvid_root):
    dataset = open_dataset("camvid", camvid_root, "val")
    loader = BatchLoader(dataset, 2, PREPROCESSING_CAFFE_FCN, crop_size=(120, 160), flip=True, prefetch=1)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 120, 160) and labels.shape == (2, 120, 160)
    assert set(np.unique(labels).tolist()) <= set(range(11)) | {255}
