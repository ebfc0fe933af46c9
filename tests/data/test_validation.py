"""The one label-range rule, on NumPy and CuPy, against a plain loop over the values."""

import numpy as np
import pytest

from minifcn.backend import to_numpy
from minifcn.data import DataError
from minifcn.data.validation import check_labels, out_of_range_labels


def test_out_of_range_labels_are_the_values_a_loop_finds(xp):
    labels = np.random.default_rng(0).integers(-3, 12, (2, 5, 7)).astype(np.int32)
    labels[0, 0, :3] = 255
    expected = sorted({int(v) for v in labels.ravel() if v != 255 and not 0 <= v < 6})
    assert out_of_range_labels(xp.asarray(labels), 6, 255) == expected
    assert out_of_range_labels(xp.asarray(np.clip(to_numpy(labels), 0, 5)), 6, 255) == []


def test_check_labels_names_the_file_and_the_values():
    labels = np.zeros((4, 4), np.int32)
    labels[1, 1], labels[2, 2], labels[3, 3] = 9, 255, -1
    with pytest.raises(DataError, match=r"masks/a\.png: label values -1, 9 are out of range: expected 0\.\.5 or 255"):
        check_labels(labels, 6, 255, "masks/a.png")
    labels[1, 1] = labels[3, 3] = 5
    check_labels(labels, 6, 255, "masks/a.png")
