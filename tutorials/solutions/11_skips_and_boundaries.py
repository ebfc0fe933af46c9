"""Solutions to the exercises of 11_skips_and_boundaries.ipynb."""


def score_grid_sides(image_size):
    """(pool3, pool4, score_fr) sides for a square input in the compact geometry.

    The 3x3 convolutions are padded by 1 and fc6 (7x7) by 3, so they keep the size; each 2x2 pooling
    with stride 2 halves it, rounding up (Caffe's ceil mode). pool3 comes after three poolings, pool4
    after four, and score_fr has pool5's size, after five.
    """
    sides, side = [], int(image_size)
    for _ in range(5):
        side = -(-side // 2)          # ceil(side / 2)
        sides.append(side)
    return sides[2], sides[3], sides[4]


def skip_parameters(num_classes, pool3_channels, pool4_channels):
    """Trainable parameters of score_pool3 and score_pool4: two 1x1 convolutions to K classes,
    each a (K, C, 1, 1) weight and a (K,) bias. The skips' upsampling layers stay bilinear and fixed."""
    return num_classes * (pool3_channels + 1) + num_classes * (pool4_channels + 1)
