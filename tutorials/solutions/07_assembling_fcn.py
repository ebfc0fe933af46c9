"""Solutions to the exercises of tutorial 07 (assembling FCN). The notebook loads this file with
``runpy.run_path`` only where an answer is left as None, so that it runs top to bottom unanswered."""

from fractions import Fraction


def fcn32s_crop_offset():
    """The FCN-32s final crop (19), from the placement rules alone: the image's grid carried through
    every layer that moves it, then the offset that puts the upsampled map back on the image.

    Cell u of a map sits at ``scale * u + shift``. A convolution or pooling (kernel k, stride s,
    padding p) gives scale' = scale * s, shift' = shift + scale * ((k - 1) / 2 - p); a transposed
    convolution gives scale' = scale / s, shift' = shift - scale' * ((k - 1) / 2 - p).
    """
    scale, shift = Fraction(1), Fraction(0)

    def through(kernel, stride, padding):
        nonlocal scale, shift
        shift += scale * (Fraction(kernel - 1, 2) - padding)
        scale *= stride

    for block, count in enumerate((2, 2, 3, 3, 3), 1):
        for index in range(count):
            through(3, 1, 100 if (block, index) == (1, 0) else 1)   # conv1_1 pads by 100
        through(2, 2, 0)                                              # pool
    through(7, 1, 0)                                                  # fc6
    through(1, 1, 0)                                                  # fc7, score_fr: 1x1, no move
    scale = scale / 32                                                # upscore: kernel 64, stride 32
    shift -= scale * (Fraction(64 - 1, 2) - 0)
    offset = (0 - shift) / scale                                      # where the image's pixel 0 falls
    return int(offset)


def trained_when_frozen_at_pool5():
    """Layers that get a gradient after ``freeze("pool5")``: the head and all three score layers.
    The skips' score layers read pool3/pool4 but are not below pool5 on the main path, so they train;
    only the gradient that would flow down from them into the frozen trunk is not computed."""
    return {"fc6", "fc7", "score_fr", "score_pool4", "score_pool3"}
