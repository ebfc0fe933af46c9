"""FCN-32s, FCN-16s and FCN-8s on the VGG16 trunk."""

from .fcn import FCN8s, FCN16s, FCN32s
from .fcn_base import FCNBase
from .geometry import GEOMETRIES

ARCHITECTURES = {"fcn8s": FCN8s, "fcn16s": FCN16s, "fcn32s": FCN32s}


def build_model(arch, num_classes=21, **options):
    """The model named ``arch`` ("fcn8s", "fcn16s" or "fcn32s") with ``options`` as in ``FCNBase``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](num_classes=num_classes, **options)


__all__ = ["ARCHITECTURES", "FCN8s", "FCN16s", "FCN32s", "FCNBase", "GEOMETRIES", "build_model"]
