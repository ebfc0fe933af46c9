"""The skip connection's sum: an upsampled score map plus a finer one, aligned by a crop."""

from ..layers import Crop, Module
from .alignment import crop_offset


class Fusion(Module):
    """``forward(upsampled, skip)`` -> their sum on a common grid; ``backward(d)`` -> both gradients.

    The two maps are aligned by cropping one of them at an offset derived from geometry. In the
    reference geometry the skip's score map is the larger one (conv1_1's padding of 100 makes the
    early maps big) and is cropped at 5 (pool4) or 9 (pool3). In the compact geometry both maps start
    at the same place and the upsampled one is the larger (ceil-mode pooling rounded up), so it is cut
    at offset 0 to the skip's size.

    A sum passes its gradient unchanged to both terms; the crop's backward pads the cropped term's
    gradient back with zeros.
    """

    def __init__(self, upsampled_placement, skip_placement, crop_skip=True):
        self.crop_skip = crop_skip
        if crop_skip:
            self.crop = Crop(crop_offset(skip_placement, upsampled_placement))
        else:
            self.crop = Crop(crop_offset(upsampled_placement, skip_placement))

    @property
    def offset(self):
        return self.crop.offset

    def forward(self, upsampled, skip):
        """upsampled (N, K, H1, W1), skip (N, K, H2, W2) -> (N, K, H, W), the smaller map's size."""
        if self.crop_skip:
            return upsampled + self.crop.forward(skip, upsampled)
        return self.crop.forward(upsampled, skip) + skip

    def backward(self, d_fused):
        """d_fused (N, K, H, W) -> (d_upsampled, d_skip)."""
        if self.crop_skip:
            return d_fused, self.crop.backward(d_fused)
        return self.crop.backward(d_fused), d_fused
