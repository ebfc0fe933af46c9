"""The VOC colormap against the devkit's published colours."""

import numpy as np

from minifcn.data import voc_colormap


def test_known_voc_colours():
    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    np.testing.assert_array_equal(cmap[:8], [
        [0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128],
        [128, 128, 128],
    ])
    np.testing.assert_array_equal(
        cmap[[8, 15, 20, 255]], [[64, 0, 0], [192, 128, 128], [0, 64, 128], [224, 224, 192]]
    )
    assert len({tuple(c) for c in cmap}) == 256
    np.testing.assert_array_equal(voc_colormap(21), cmap[:21])
