"""The procedural shapes: deterministic per (seed, split, index), every class present, class = shape."""

import numpy as np
import pytest

from minifcn.data import DataError, SyntheticShapes, open_dataset
from minifcn.data.synthetic import CLASS_NAMES


def test_items_have_the_contract_types():
    dataset = SyntheticShapes(size=4)
    image, label = dataset[0]
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert label.shape == (96, 96) and label.dtype == np.int32
    assert dataset.num_classes == len(CLASS_NAMES) >= 5 and dataset.ignore_index == 255
    assert dataset.class_colors.shape == (dataset.num_classes, 3) and dataset.class_colors.dtype == np.uint8
    assert len({tuple(c) for c in dataset.class_colors}) == dataset.num_classes
    assert len(dataset.names) == 4 and len(set(dataset.names)) == 4
    with pytest.raises(IndexError):
        dataset[4]


def test_same_seed_same_images_and_item_independent_of_order():
    first = SyntheticShapes(size=10, seed=5)
    second = SyntheticShapes(size=10, seed=5)
    later = [second[i] for i in (7, 3)]
    for got, i in zip(later, (7, 3)):
        np.testing.assert_array_equal(got[0], first[i][0])
        np.testing.assert_array_equal(got[1], first[i][1])
    # An item does not depend on the dataset's length either.
    np.testing.assert_array_equal(SyntheticShapes(size=100, seed=5)[3][0], first[3][0])


def test_seeds_and_splits_differ():
    train, val = SyntheticShapes("train", size=3), SyntheticShapes("val", size=3)
    other = SyntheticShapes("train", size=3, seed=1)
    assert not np.array_equal(train[0][0], val[0][0])
    assert not np.array_equal(train[0][0], other[0][0])


def test_every_class_appears_in_a_few_dozen_images():
    dataset = SyntheticShapes(size=30, image_size=64)
    labels = np.stack([dataset[i][1] for i in range(len(dataset))])
    assert set(np.unique(labels).tolist()) == set(range(dataset.num_classes))
    # Most images hold several classes: there is something to segment.
    assert np.mean([len(np.unique(label)) for label in labels]) >= 2.5


def test_class_is_decided_by_shape_not_colour():
    # The mean colour of each class changes a lot from image to image, and classes overlap in colour.
    dataset = SyntheticShapes(size=40, image_size=64)
    means = {c: [] for c in range(dataset.num_classes)}
    for i in range(len(dataset)):
        image, label = dataset[i]
        for c in np.unique(label):
            if (label == c).sum() >= 20:
                means[c].append(image[label == c].mean(axis=0))
    for c, colours in means.items():
        colours = np.array(colours)
        assert len(colours) >= 3, CLASS_NAMES[c]
        assert colours.std(axis=0).mean() > 30, CLASS_NAMES[c]


def test_shapes_look_like_their_names():
    # Rings have holes, bars are long and narrow: a disc's pixels fill its bounding box far more than a
    # bar's, and a slanted bar fills less of its box than a slanted rectangle.
    dataset = SyntheticShapes(size=200, image_size=96, max_objects=1)
    fill = {}
    for i in range(len(dataset)):
        label = dataset[i][1]
        c = int(label.max())
        if c == 0:
            continue
        rows, cols = np.nonzero(label == c)
        box = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        fill.setdefault(c, []).append(rows.size / box)
    assert np.median(fill[1]) > 0.7  # disc: pi/4 of its box
    assert np.median(fill[4]) < 0.65  # ring: a disc less its hole
    assert np.median(fill[5]) < 0.45  # bar: a narrow band, mostly slanted
    assert np.median(fill[5]) < np.median(fill[2]) - 0.1


def test_image_size_and_bad_options():
    assert SyntheticShapes(size=1, image_size=128)[0][0].shape == (128, 128, 3)
    with pytest.raises(DataError, match="image_size must be in"):
        SyntheticShapes(image_size=8)
    with pytest.raises(DataError, match="unknown split"):
        open_dataset("synthetic", split="bogus")
    with pytest.raises(DataError, match="size must be an integer"):
        SyntheticShapes(size=2.5)


def test_class_weights_favour_the_objects_over_the_background():
    weights = SyntheticShapes(size=40, image_size=64).class_weights()
    assert weights.shape == (6,) and weights.dtype == np.float32
    assert weights[0] < 0.2 and weights[1:].min() > 0.5  # the background covers most of every image


def test_objects_are_placed_where_they_barely_overlap_the_earlier_ones():
    from minifcn.data.synthetic import _MAX_OVERLAP, _PLACEMENT_TRIES, _placed

    label = np.zeros((10, 10), np.int32)
    label[:, :5] = 3  # an earlier object on the left half

    def mask_over(columns):
        mask = np.zeros((10, 10), bool)
        mask[:, columns] = True
        return mask

    # Half, a fifth, then none of it on the earlier object: the third draw is the first that fits.
    draws = iter([mask_over(slice(0, 10)), mask_over(slice(4, 9)), mask_over(slice(5, 10))])
    assert np.array_equal(_placed(lambda: next(draws), label), mask_over(slice(5, 10)))
    # Just within the allowed share (2 of 52 pixels) is taken at the first draw; just over it (3 of
    # 53) is not.
    for rows, accepted in ((2, True), (3, False)):
        mask = mask_over(slice(5, 10))
        mask[:rows, 4] = True
        assert (rows / mask.sum() <= _MAX_OVERLAP) == accepted
        calls = []
        _placed(lambda: calls.append(1) or mask, label)
        assert len(calls) == (1 if accepted else 1 + _PLACEMENT_TRIES)
