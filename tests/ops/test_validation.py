"""The one label-range rule, on NumPy and CuPy, against a plain loop over the values."""

import numpy as np

from minifcn.backend import to_numpy
from minifcn.ops.validation import out_of_range_labels


def test_out_of_range_labels_are_the_values_a_loop_finds(xp):
    labels = np.random.default_rng(0).integers(-3, 12, (2, 5, 7)).astype(np.int32)
    labels[0, 0, :3] = 255
    expected = sorted({int(v) for v in labels.ravel() if v != 255 and not 0 <= v < 6})
    assert out_of_range_labels(xp.asarray(labels), 6, 255) == expected
    assert out_of_range_labels(xp.asarray(np.clip(to_numpy(labels), 0, 5)), 6, 255) == []
