"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer and Darrell), forward and backward written out.

All three share the VGG16 trunk and the fc6 -> fc7 -> score_fr head (``FCNBase``); they differ in how
the coarse score map (1/32 of the input) is brought back to full resolution:

- FCN-32s upsamples score_fr 32x in one step;
- FCN-16s upsamples it 2x, adds class scores read off pool4 (1/16), and upsamples that 16x;
- FCN-8s does the same again with pool3 (1/8) before a final 8x upsampling.

The skips are what sharpen the boundaries: pool4 and pool3 still know where edges are. In backward,
a sum node passes its gradient unchanged to both of its terms, so the gradient reaching pool4 is the
sum of what comes back through conv5_1 and through score_pool4 (``FCNBase.trunk_backward``).

Every crop offset is derived from the layers' kernels, strides and paddings (``models.alignment``),
never written in: 5, 9, 31 for the reference FCN-8s, 0 everywhere for the compact geometry.
With at_once, pool4 and pool3 are scaled by 0.01 and 0.0001 before their score layers.
"""

from ..layers import Crop
from .fcn_base import FCNBase
from .alignment import Placement, crop_offset, placed


class FCN32s(FCNBase):
    """score_fr upsampled 32x (kernel 64, stride 32), cropped to the input."""

    arch = "fcn32s"

    def build_skips(self):
        self.upscore = self.upsampling_layer(32)
        _, _, score_fr = self.placements()
        self.crop_final = Crop(crop_offset(placed(score_fr, self.upscore), Placement()))

    def forward(self, x):
        """x (N, 3, H, W) -> scores (N, K, H, W)."""
        _, _, score_fr = self.trunk_forward(x)
        upscore = self.upscore(score_fr)
        return self.crop_final(upscore, x)

    def backward(self, dscores):
        """dscores (N, K, H, W): adds every parameter's gradient into its ``.grad``."""
        d_upscore = self.crop_final.backward(dscores)
        d_score_fr = self.upscore.backward(d_upscore)
        self.trunk_backward(d_score_fr)


class FCN16s(FCNBase):
    """score_fr upsampled 2x plus score_pool4, then upsampled 16x."""

    arch = "fcn16s"

    def build_skips(self):
        self.score_pool4 = self.score_layer(self.pool4_channels)
        self.upscore2 = self.upsampling_layer(2)
        self.upscore16 = self.upsampling_layer(16)
        _, pool4, score_fr = self.placements()
        upscore2 = placed(score_fr, self.upscore2)
        self.fuse_pool4 = self.fusion(upscore2, pool4)  # a 1x1 score layer keeps pool4's placement
        self.crop_final = Crop(crop_offset(placed(upscore2, self.upscore16), Placement()))

    def forward(self, x):
        """x (N, 3, H, W) -> scores (N, K, H, W)."""
        _, pool4, score_fr = self.trunk_forward(x)
        upscore2 = self.upscore2(score_fr)
        score_pool4 = self.score_pool4(scaled(pool4, self.pool4_scale))
        fuse_pool4 = self.fuse_pool4(upscore2, score_pool4)
        upscore16 = self.upscore16(fuse_pool4)
        return self.crop_final(upscore16, x)

    def backward(self, dscores):
        """dscores (N, K, H, W): adds every parameter's gradient into its ``.grad``."""
        d_upscore16 = self.crop_final.backward(dscores)
        d_fuse_pool4 = self.upscore16.backward(d_upscore16)
        d_upscore2, d_score_pool4 = self.fuse_pool4.backward(d_fuse_pool4)
        d_pool4_skip = scaled(self.score_pool4.backward(d_score_pool4), self.pool4_scale)
        d_score_fr = self.upscore2.backward(d_upscore2)
        self.trunk_backward(d_score_fr, d_pool4_skip)


class FCN8s(FCNBase):
    """FCN-16s with one more skip: 2x upsampling plus score_pool3, then 8x upsampling."""

    arch = "fcn8s"

    def build_skips(self):
        self.score_pool4 = self.score_layer(self.pool4_channels)
        self.score_pool3 = self.score_layer(self.pool3_channels)
        self.upscore2 = self.upsampling_layer(2)
        self.upscore_pool4 = self.upsampling_layer(2)
        self.upscore8 = self.upsampling_layer(8)
        pool3, pool4, score_fr = self.placements()
        upscore2 = placed(score_fr, self.upscore2)
        upscore_pool4 = placed(upscore2, self.upscore_pool4)
        self.fuse_pool4 = self.fusion(upscore2, pool4)
        self.fuse_pool3 = self.fusion(upscore_pool4, pool3)
        self.crop_final = Crop(crop_offset(placed(upscore_pool4, self.upscore8), Placement()))

    def forward(self, x):
        """x (N, 3, H, W) -> scores (N, K, H, W)."""
        pool3, pool4, score_fr = self.trunk_forward(x)
        upscore2 = self.upscore2(score_fr)
        score_pool4 = self.score_pool4(scaled(pool4, self.pool4_scale))
        fuse_pool4 = self.fuse_pool4(upscore2, score_pool4)
        upscore_pool4 = self.upscore_pool4(fuse_pool4)
        score_pool3 = self.score_pool3(scaled(pool3, self.pool3_scale))
        fuse_pool3 = self.fuse_pool3(upscore_pool4, score_pool3)
        upscore8 = self.upscore8(fuse_pool3)
        return self.crop_final(upscore8, x)

    def backward(self, dscores):
        """dscores (N, K, H, W): adds every parameter's gradient into its ``.grad``."""
        d_upscore8 = self.crop_final.backward(dscores)
        d_fuse_pool3 = self.upscore8.backward(d_upscore8)
        # A sum passes its gradient to both terms: back up the path and down the pool3 skip.
        d_upscore_pool4, d_score_pool3 = self.fuse_pool3.backward(d_fuse_pool3)
        d_pool3_skip = scaled(self.score_pool3.backward(d_score_pool3), self.pool3_scale)
        d_fuse_pool4 = self.upscore_pool4.backward(d_upscore_pool4)
        d_upscore2, d_score_pool4 = self.fuse_pool4.backward(d_fuse_pool4)
        d_pool4_skip = scaled(self.score_pool4.backward(d_score_pool4), self.pool4_scale)
        d_score_fr = self.upscore2.backward(d_upscore2)
        # pool4's gradient = through conv5_1 + d_pool4_skip; pool3's = through conv4_1 + d_pool3_skip.
        self.trunk_backward(d_score_fr, d_pool4_skip, d_pool3_skip)


def scaled(array, scale):
    """``array * scale`` for the "at once" skip scaling, in forward and (it is linear) in backward;
    a scale of 1 returns the array itself, and None (no gradient) stays None."""
    if array is None or scale == 1:
        return array
    return array * scale
