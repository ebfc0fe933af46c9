"""What FCN-32s, FCN-16s and FCN-8s share: the VGG16 trunk, the fc6-fc7-score_fr head, parameter
naming, state dicts, devices and freezing. The three nets differ only in their skips and upsampling,
which ``fcn.py`` writes out explicitly."""

from collections import OrderedDict

import numpy as np

from ..backend import to_device, to_numpy
from ..layers import Conv2d, ConvTranspose2d, Dropout, ReLU
from .fusion import Fusion
from .alignment import Placement, placed
from .geometry import GEOMETRIES
from .sequential import Sequential
from .vgg import scaled_channels, vgg16_blocks

def add_gradients(a, b):
    """a + b where either may be None (no gradient flows that way)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class FCNBase:
    """Shared machinery; see FCN32s, FCN16s and FCN8s in ``minifcn.models.fcn``.

    Options: ``num_classes`` K; ``width`` scales every trunk channel count (1 is VGG16);
    ``fc_channels`` of fc6 and fc7 (4096 in the reference); ``geometry`` "reference" or "compact";
    ``at_once`` scales pool4 by 0.01 and pool3 by 0.0001 before their score layers (the reference's
    "at once" training); ``learn_upsampling`` lets the transposed convolutions learn (they stay fixed
    bilinear otherwise, as in the reference); ``dropout`` probability after fc6 and fc7; ``seed`` for
    the initial weights and the dropout masks (host NumPy generators, so CPU and GPU agree).
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
        self.device = "cpu"
        self.training = True
        self.frozen_upto = None
        init_rng = np.random.default_rng(seed)
        dropout_rng = np.random.default_rng([seed, 1])  # its own stream: masks don't shift the weights
        self.block1, self.block2, self.block3, self.block4, self.block5 = vgg16_blocks(
            width, self.geometry.first_padding, init_rng)
        self.pool3_channels = scaled_channels(256, width)
        self.pool4_channels = scaled_channels(512, width)
        # fc6 and fc7 are VGG's classifier as convolutions: fc6 a 7x7 convolution over pool5, fc7 a 1x1.
        # He-normal when no classifier weights are loaded (the conv-only VGG16 weights have none).
        self.head = Sequential([
            ("fc6", Conv2d(self.pool4_channels, fc_channels, 7, padding=self.geometry.fc6_padding, rng=init_rng)),
            ("relu6", ReLU()),
            ("drop6", Dropout(dropout, rng=dropout_rng)),
            ("fc7", Conv2d(fc_channels, fc_channels, 1, rng=init_rng)),
            ("relu7", ReLU()),
            ("drop7", Dropout(dropout, rng=dropout_rng)),
            ("score_fr", self.score_layer(fc_channels)),
        ])
        self.dropout_rng = dropout_rng
        self.pool4_scale = np.float32(0.01 if at_once else 1.0)
        self.pool3_scale = np.float32(0.0001 if at_once else 1.0)
        self.skip_layers = OrderedDict()  # filled by the subclass: score_pool*, upscore*
        self.crops = OrderedDict()  # likewise: the fusions and the final crop
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
        pool3 = self.block3.forward(self.block2.forward(self.block1.forward(x)))
        pool4 = self.block4.forward(pool3)
        score_fr = self.head.forward(self.block5.forward(pool4))
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

    def __call__(self, x):
        return self.forward(x)

    def trunk_layers(self):
        """(name, layer) of the trunk and head in order, conv1_1 ... score_fr."""
        for block in (self.block1, self.block2, self.block3, self.block4, self.block5, self.head):
            yield from block

    def named_layers(self):
        """Every layer with parameters: the trunk and head, then the skips and upsampling."""
        for name, layer in self.trunk_layers():
            if any(True for _ in layer.parameters()):
                yield name, layer
        for name, layer in self.skip_layers.items():
            if any(True for _ in layer.parameters()):
                yield name, layer

    def parameters(self):
        """Yield ``(name, Parameter)`` with the reference's names: conv1_1.weight, ..., upscore8.weight."""
        for layer_name, layer in self.named_layers():
            for name, parameter in layer.parameters():
                yield f"{layer_name}.{name}", parameter

    def zero_grad(self):
        for _, parameter in self.parameters():
            parameter.zero_grad()

    def layers(self):
        """Every layer object of the trunk, head, skips and upsampling, in a fixed order (the crops and
        fusions hold no parameters or modes)."""
        yield from (layer for _, layer in self.trunk_layers())
        yield from self.skip_layers.values()

    def train(self):
        self.training = True
        for layer in self.layers():
            layer.train()
        return self

    def eval(self):
        self.training = False
        for layer in self.layers():
            layer.eval()
        return self

    def clear_cache(self):
        """Drop every layer's forward cache (after an inference-only forward pass)."""
        for layer in self.layers():
            layer.clear_cache()
        for crop in self.crops.values():
            crop.clear_cache()

    def to(self, device):
        """Move every parameter to ``device`` ("cpu", "gpu", "gpu:N")."""
        for _, parameter in self.parameters():
            parameter.to(device)
        self.device = device
        return self

    def options(self):
        """The constructor's options, for checkpoint metadata."""
        return dict(self._options)

    def state_dict(self):
        """``{name: NumPy array}`` of every parameter, on the host."""
        return OrderedDict((name, to_numpy(parameter.data).copy()) for name, parameter in self.parameters())

    def load_state_dict(self, state, strict=True):
        """Copy ``state`` ({name: array}) into the parameters; every name and shape is checked first and
        all mismatches are listed in one ValueError. With ``strict=False`` missing and unexpected names
        are allowed (shapes must still match)."""
        parameters = OrderedDict(self.parameters())
        problems = []
        missing = [name for name in parameters if name not in state]
        unexpected = [name for name in state if name not in parameters]
        if strict and missing:
            problems.append(f"missing: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected: {', '.join(unexpected)}")
        for name, parameter in parameters.items():
            if name in state and tuple(np.shape(state[name])) != tuple(parameter.shape):
                problems.append(f"{name}: expected shape {tuple(parameter.shape)}, got {tuple(np.shape(state[name]))}")
        if problems:
            raise ValueError(f"state dict does not fit {type(self).__name__}: " + "; ".join(problems))
        for name, parameter in parameters.items():
            if name in state:
                value = np.asarray(to_numpy(state[name]), dtype=np.float32)
                parameter.data = to_device(value.copy(), self.device)

    def freeze(self, upto):
        """Train only the layers above ``upto`` (a trunk or head layer name such as "conv2_2" or
        "pool2"; None unfreezes everything). Backward then stops there: nothing below computes a
        gradient. The image itself never gets one."""
        names = [name for name, _ in self.trunk_layers()]
        if upto is not None and upto not in names:
            raise ValueError(f"cannot freeze up to {upto!r}: expected one of {', '.join(names)}")
        cut = -1 if upto is None else names.index(upto)
        trainable_seen = False  # is there a trainable layer below the current one?
        trainable_below = {}
        for index, (name, layer) in enumerate(self.trunk_layers()):
            has_parameters = any(True for _ in layer.parameters())
            for _, parameter in layer.parameters():
                parameter.requires_grad = index > cut
            layer.input_grad = trainable_seen
            trainable_seen = trainable_seen or (has_parameters and index > cut)
            trainable_below[name] = trainable_seen
        self.frozen_upto = upto
        for name, layer in self.skip_layers.items():
            if name == "score_pool4":
                layer.input_grad = trainable_below["pool4"]
            elif name == "score_pool3":
                layer.input_grad = trainable_below["pool3"]
