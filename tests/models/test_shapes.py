"""Parameter shapes computed from the block table equal those of the models that are built."""

import math

import pytest

from minifcn.models import build_model
from minifcn.models.shapes import fcn_shapes, vgg16_shapes


def built_shapes(arch, **options):
    """[(name, shape)] of a built model's state dict, in its order."""
    return [(name, array.shape) for name, array in build_model(arch, **options).state_dict().items()]


@pytest.mark.parametrize("arch", ["fcn8s", "fcn16s", "fcn32s"])
@pytest.mark.parametrize("num_classes, width, fc_channels", [(5, 0.25, 32), (3, 0.1, 16)])
def test_fcn_shapes_equal_a_built_models(arch, num_classes, width, fc_channels):
    # width 0.1 rounds every channel count (64 -> 6, 128 -> 13, ...): the same rule on both sides.
    expected = built_shapes(arch, num_classes=num_classes, width=width, fc_channels=fc_channels)
    assert list(fcn_shapes(arch, num_classes, width, fc_channels).items()) == expected


def test_full_width_trunk_equals_a_built_model():
    # VGG16's own channel counts; narrow fc6/fc7 keep the model small (fc 4096 is counted below).
    expected = built_shapes("fcn8s", num_classes=21, width=1.0, fc_channels=32)
    assert list(fcn_shapes("fcn8s", 21, fc_channels=32).items()) == expected


def test_vgg16_parameter_counts():
    # VGG16 has 138,357,544 parameters; without fc8 (4096 x 1000 + 1000) that is 134,260,544, and its
    # thirteen convolutions alone hold 14,714,688.
    def count(shapes):
        return sum(math.prod(shape) for shape in shapes.values())

    assert count(vgg16_shapes()) == 138_357_544 - (4096 * 1000 + 1000) == 134_260_544
    assert count(vgg16_shapes(fc_channels=None)) == 14_714_688
    assert vgg16_shapes()["fc6.weight"] == (4096, 512, 7, 7)
    assert list(vgg16_shapes(fc_channels=None))[-2:] == ["conv5_3.weight", "conv5_3.bias"]


def test_reference_fcn8s_head_and_unknown_arch():
    shapes = fcn_shapes("fcn8s", 21)
    assert shapes["score_fr.weight"] == (21, 4096, 1, 1)
    assert shapes["score_pool4.weight"] == (21, 512, 1, 1) and shapes["score_pool3.weight"] == (21, 256, 1, 1)
    assert shapes["upscore2.weight"] == (21, 21, 4, 4) and shapes["upscore8.weight"] == (21, 21, 16, 16)
    assert fcn_shapes("fcn32s", 21)["upscore.weight"] == (21, 21, 64, 64)
    assert fcn_shapes("fcn16s", 21)["upscore16.weight"] == (21, 21, 32, 32)
    with pytest.raises(ValueError, match="unknown architecture"):
        fcn_shapes("fcn4s", 21)
