"""The VGG16 trunk (conv1_1 ... pool5) that FCN is built on, described as data.

VGG16 is five blocks of 3x3 convolutions (each followed by a ReLU) ending in a 2x2 max pooling; the
blocks differ only in their channel count and number of convolutions, so the trunk is that table
plus a loop rather than thirteen hand-written layers.
"""

import numpy as np

from ..layers import Conv2d, MaxPool2d, ReLU, Sequential

# (output channels, number of 3x3 convolutions) of each block.
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def scaled_channels(channels, width):
    """Channel count of a layer in a network ``width`` times as wide as VGG16 (at least 1)."""
    return max(1, int(round(channels * width)))


def pool_channels(block, width=1.0):
    """Channel count C of pool{block} (1..5) in a network ``width`` times as wide as VGG16."""
    return scaled_channels(VGG16_BLOCKS[block - 1][0], width)


def conv_names():
    """conv1_1, conv1_2, conv2_1, ..., conv5_3: the names of the thirteen convolutions."""
    return [f"conv{block}_{index}" for block, (_, count) in enumerate(VGG16_BLOCKS, 1)
            for index in range(1, count + 1)]


def vgg16_blocks(width=1.0, first_padding=100, rng=None):
    """The five blocks as ``Sequential``s of (name, layer): conv{b}_{j}, relu{b}_{j}, ..., pool{b}.

    ``first_padding`` is conv1_1's padding: 100 in the reference FCN (see ``models.alignment``), 1 in
    the compact geometry and in the VGG16 classifier. Weights start He-normal from ``rng``; they are
    normally replaced by ImageNet weights from a checkpoint.
    """
    rng = np.random.default_rng() if rng is None else rng
    blocks = []
    in_channels = 3
    for block, (channels, count) in enumerate(VGG16_BLOCKS, 1):
        out_channels = scaled_channels(channels, width)
        layers = []
        for index in range(1, count + 1):
            padding = first_padding if (block, index) == (1, 1) else 1
            conv = Conv2d(in_channels, out_channels, 3, padding=padding, rng=rng)
            layers += [(f"conv{block}_{index}", conv), (f"relu{block}_{index}", ReLU())]
            in_channels = out_channels
        # ceil mode, as Caffe: the last window may hang over the edge (see ops.max_pool).
        layers.append((f"pool{block}", MaxPool2d(2, 2, ceil_mode=True)))
        blocks.append(Sequential(layers))
    return blocks
