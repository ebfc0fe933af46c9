"""The two geometries an FCN can be built in: where it pads, and so how its maps line up.

A geometry changes no parameter's shape, only paddings and crops, so the same weights load in either.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    """``first_padding``: conv1_1's padding; ``fc6_padding``: fc6's; ``pad_upsampling``: whether the
    transposed convolutions are padded by (kernel - stride) / 2; ``crop_skips``: whether a fusion crops
    the skip's score map (True) or the upsampled one (False), whichever comes out larger."""

    first_padding: int
    fc6_padding: int
    pad_upsampling: bool
    crop_skips: bool


GEOMETRIES = {
    # The original: pad 100 lets any image leave fc6 (7x7, unpadded) a valid window; the crops then
    # cut the excess back off. It is what weights made for the original expect.
    "reference": Geometry(first_padding=100, fc6_padding=0, pad_upsampling=False, crop_skips=True),
    # About half the FLOPs on a 360x480 image: no 100-pixel border to convolve; fc6 padded instead.
    "compact": Geometry(first_padding=1, fc6_padding=3, pad_upsampling=True, crop_skips=False),
}
