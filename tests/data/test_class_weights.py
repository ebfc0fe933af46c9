"""Median-frequency balancing, checked against a count written out by hand."""

import numpy as np

from minifcn.data.class_weights import count_label_pixels, median_frequency_weights


def test_counts_and_weights_by_hand():
    first = np.array([[0, 0, 1, 255]])  # 3 valid pixels: class 0 x2, class 1 x1
    second = np.array([[0, 2, 2, 2, 2, 2]])  # 6 valid pixels: class 0 x1, class 2 x5
    pixels, image_pixels = count_label_pixels([first, second], num_classes=4)
    np.testing.assert_array_equal(pixels, [3, 1, 5, 0])
    np.testing.assert_array_equal(image_pixels, [9, 3, 6, 0])
    # freq = 3/9, 1/3, 5/6; median 1/3; class 3 never appears -> 0.
    weights = median_frequency_weights(pixels, image_pixels)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [1.0, 1.0, (1 / 3) / (5 / 6), 0.0], rtol=1e-6)


def test_no_pixels_at_all():
    np.testing.assert_array_equal(median_frequency_weights([0, 0], [0, 0]), [0, 0])
