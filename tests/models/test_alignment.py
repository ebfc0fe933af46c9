"""Crop offsets come out of the layers' geometry as the reference's prototxt has them."""

from fractions import Fraction

import pytest

from minifcn.models import build_model
from minifcn.models.alignment import Window, Placement, crop_offset, place

# The offsets written in the reference's Caffe prototxts (crop layers' "offset" parameter), which
# Caffe derived from its coordinate maps.
REFERENCE_OFFSETS = {
    "fcn8s": {"fuse_pool4": 5, "fuse_pool3": 9, "crop_final": 31},
    "fcn16s": {"fuse_pool4": 5, "crop_final": 27},
    "fcn32s": {"crop_final": 19},
}


@pytest.mark.parametrize("arch", sorted(REFERENCE_OFFSETS))
def test_reference_offsets_match_the_prototxt(arch):
    """Derived from kernel, stride and padding, the reference geometry gives 5, 9, 31 / 5, 27 / 19."""
    model = build_model(arch, num_classes=3, width=0.0625, fc_channels=8, geometry="reference")
    assert model.crop_offsets() == REFERENCE_OFFSETS[arch]


@pytest.mark.parametrize("arch", sorted(REFERENCE_OFFSETS))
def test_compact_offsets_are_zero(arch):
    """The compact geometry aligns every map by construction: the same derivation gives 0."""
    model = build_model(arch, num_classes=3, width=0.0625, fc_channels=8, geometry="compact")
    assert set(model.crop_offsets().values()) == {0}


def test_placement_by_hand():
    """conv(k3, p100) then pool(k2, s2): cell u sits at 2u - 98.5 (hand-computed: the conv shifts by
    (3 - 1)/2 - 100 = -99, the pool doubles the scale and adds (2 - 1)/2)."""
    placement = place([Window(3, 1, 100), Window(2, 2, 0)])
    assert placement == Placement(Fraction(2), Fraction(-197, 2))
    # A transposed conv with the same k and s undoes the scale.
    back = placement.through(Window(2, 2, 0, transposed=True))
    assert back.scale == 1


def test_misaligned_maps_are_refused():
    """A fractional or negative offset means the architecture is inconsistent: refuse, don't round."""
    with pytest.raises(ValueError, match="misaligned"):
        crop_offset(Placement(Fraction(2), Fraction(0)), Placement(Fraction(2), Fraction(1)))
    with pytest.raises(ValueError, match="different scales"):
        crop_offset(Placement(Fraction(2)), Placement(Fraction(4)))
