"""What FCN-32s, FCN-16s and FCN-8s share: the VGG16 trunk, the fc6-fc7-score_fr head, and freezing.
The three nets differ only in their skips and upsampling, which ``fcn.py`` writes out explicitly."""

import numpy as np

from ..layers import Conv2d, ConvTranspose2d, Crop, Dropout, Module, ReLU, Sequential
from .alignment import Placement, placed
from .fusion import Fusion
from .geometry import GEOMETRIES
from .vgg import pool_channels, vgg16_blocks

# The trunk layer whose output each skip's score layer reads.
SKIP_SOURCES = {"score_pool4": "pool4", "score_pool3": "pool3"}


def add_gradients(a, b):
    """a + b where either may be None (no gradient flows that way)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class FCNBase(Module):
    """Shared machinery; see FCN32s, FCN16s and FCN8s in ``minifcn.models.fcn``.

    Options: ``num_classes`` K; ``width`` scales every trunk channel count (1 is VGG16);
    ``fc_channels`` of fc6 and fc7 (4096 in the reference); ``geometry`` "reference" or "compact";
    ``at_once`` scales pool4 by 0.01 and pool3 by 0.0001 before their score layers (the reference's
    "at once" training); ``learn_upsampling`` lets the transposed convolutions learn (they stay fixed
    bilinear otherwise, as in the reference); ``dropout`` probability after fc6 and fc7; ``seed`` for
    the initial weights and the dropout masks (host NumPy generators, so CPU and GPU agree).

    The layers are attributes in the order of the reference's parameter list: the five VGG blocks and
    the head (``Sequential`` chains, which add no level to the names), then the skips' score layers
    and the upsamplings, then the parameter-free fusions and final crop.
    """

    arch = None

    def __init__(self, num_classes=21, width=1.0, fc_channels=4096, geometry="reference", at_once=False,
                 learn_upsampling=False, dropout=0.5, seed=0):
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {sorted(GEOMETRIES)}, got {geometry!r}")
        if num_classes < 1 or fc_channels < 1 or width <= 0:
            raise ValueError(f"num_classes, fc_channels and width must be positive, got "
                             f"{num_classes}, {fc_channels}, {width}")
        self._options = dict(num_classes=num_classes, width=width, fc_channels=fc_channels, geometry=geometry,
                             at_once=at_once, learn_upsampling=learn_upsampling, dropout=dropout, seed=seed)
        self.num_classes = num_classes
        self.geometry = GEOMETRIES[geometry]
        self.frozen_upto = None
        init_rng = np.random.default_rng(seed)
        # Its own stream, so that masks don't shift the weights; saved in checkpoints for exact resume.
        self.dropout_rng = np.random.default_rng([seed, 1])
        self.block1, self.block2, self.block3, self.block4, self.block5 = vgg16_blocks(
            width, self.geometry.first_padding, init_rng)
        self.pool3_channels, self.pool4_channels = pool_channels(3, width), pool_channels(4, width)
        # fc6 and fc7 are VGG's classifier as convolutions: fc6 a 7x7 convolution over pool5, fc7 a 1x1.
        # He-normal when no classifier weights are loaded (the conv-only VGG16 weights have none).
        self.head = Sequential([
            ("fc6", Conv2d(pool_channels(5, width), fc_channels, 7, padding=self.geometry.fc6_padding, rng=init_rng)),
            ("relu6", ReLU()),
            ("drop6", Dropout(dropout, rng=self.dropout_rng)),
            ("fc7", Conv2d(fc_channels, fc_channels, 1, rng=init_rng)),
            ("relu7", ReLU()),
            ("drop7", Dropout(dropout, rng=self.dropout_rng)),
            ("score_fr", self.score_layer(fc_channels)),
        ])
        self.pool4_scale = np.float32(0.01 if at_once else 1.0)
        self.pool3_scale = np.float32(0.0001 if at_once else 1.0)
        self.build_skips()
        self.freeze(None)

    # --- building blocks used by the subclasses -------------------------------------------------

    def score_layer(self, in_channels):
        """A 1x1 convolution to K class scores, starting at zero as in the reference."""
        layer = Conv2d(in_channels, self.num_classes, 1)
        layer.weight.data[...] = 0
        return layer

    def upsampling_layer(self, factor):
        """A transposed convolution upsampling K score maps by ``factor``: kernel 2 * factor, stride
        factor, bilinear and fixed unless ``learn_upsampling``. In the compact geometry it is padded by
        factor / 2 so its output lands on the map it is fused with (crop offset 0)."""
        padding = factor // 2 if self.geometry.pad_upsampling else 0
        layer = ConvTranspose2d(self.num_classes, self.num_classes, 2 * factor, stride=factor, padding=padding)
        layer.weight.requires_grad = self._options["learn_upsampling"]
        return layer

    def placements(self):
        """Where pool3, pool4 and score_fr sit on the image (see ``models.alignment``)."""
        pool3 = placed(Placement(), self.block1, self.block2, self.block3)
        pool4 = placed(pool3, self.block4)
        score_fr = placed(pool4, self.block5, self.head)
        return pool3, pool4, score_fr

    def fusion(self, upsampled_placement, skip_placement):
        """The aligned sum of an upsampled map and a skip's score map (see ``models.fusion``)."""
        return Fusion(upsampled_placement, skip_placement, crop_skip=self.geometry.crop_skips)

    def build_skips(self):
        raise NotImplementedError

    def trunk_forward(self, x):
        """x (N, 3, H, W) -> (pool3, pool4, score_fr)."""
        pool3 = self.block3(self.block2(self.block1(x)))
        pool4 = self.block4(pool3)
        score_fr = self.head(self.block5(pool4))
        return pool3, pool4, score_fr

    def trunk_backward(self, d_score_fr, d_pool4_skip=None, d_pool3_skip=None):
        """Backward through the head and the trunk, adding in the gradients that came down the skips."""
        d_pool5 = self.head.backward(d_score_fr)
        # pool4 feeds both conv5_1 and score_pool4: its gradient is the sum of what comes back through each.
        d_pool4 = add_gradients(self.block5.backward(d_pool5), d_pool4_skip)
        # The same for pool3, which feeds conv4_1 and score_pool3.
        d_pool3 = add_gradients(self.block4.backward(d_pool4), d_pool3_skip)
        self.block1.backward(self.block2.backward(self.block3.backward(d_pool3)))

    # --- the models contract --------------------------------------------------------------------

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dscores):
        raise NotImplementedError

    def main_path(self):
        """(name, layer) from conv1_1 to score_fr: the chain the skips branch off, in order."""
        for chain in (self.block1, self.block2, self.block3, self.block4, self.block5, self.head):
            yield from chain.named_children()

    def crop_offsets(self):
        """{fusion or crop name: offset}: where each map is cut to line up (derived, see ``alignment``)."""
        return {name: child.offset for name, child in self.named_children() if isinstance(child, (Crop, Fusion))}

    def options(self):
        """The constructor's options, for checkpoint metadata."""
        return dict(self._options)

    def freeze(self, upto):
        """Train only the layers above ``upto`` (a layer name from conv1_1 to score_fr, such as
        "conv2_2" or "pool2"; None unfreezes everything). Backward then stops there: nothing below
        computes a gradient. The image itself never gets one."""
        path = list(self.main_path())
        names = [name for name, _ in path]
        if upto is not None and upto not in names:
            raise ValueError(f"cannot freeze up to {upto!r}: expected one of {', '.join(names)}")
        cut = -1 if upto is None else names.index(upto)
        trainable_below = False  # does a trainable layer lie below the current one?
        trainable_up_to = {}
        for index, (name, layer) in enumerate(path):
            layer.set_trainable(index > cut)
            layer.input_grad = trainable_below
            trainable_below = trainable_below or (index > cut and layer.has_parameters())
            trainable_up_to[name] = trainable_below
        for name, source in SKIP_SOURCES.items():
            if hasattr(self, name):
                getattr(self, name).input_grad = trainable_up_to[source]
        self.frozen_upto = upto
