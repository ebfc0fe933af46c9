"""Class colour palettes (K x 3 uint8 RGB) for datasets that do not bring their own."""

import numpy as np


def voc_colormap(n=256):
    """The PASCAL VOC palette, (n, 3) uint8 RGB, from the devkit's bit-shuffling formula.

    Bits 0, 1, 2 of the class index go to the most significant free bit of R, G, B; the next three
    bits to the next one down, and so on. Neighbouring indices thus get very different colours, and
    VOC's palette PNGs (index 255, the border, is (224, 224, 192)) use exactly this table.
    """
    index = np.arange(n, dtype=np.int64)
    colors = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            colors[:, channel] |= bit << (7 - shift)
    return colors.astype(np.uint8)
