"""Foreign layouts mapped to minifcn's names: which architecture, which shapes, which errors."""

import numpy as np
import pytest

from minifcn.files.conversion import (
    ConvertError,
    caffe_vgg16_npz_to_minifcn,
    fcn_arch_from_names,
    fcn_pth_to_minifcn,
    torchvision_vgg16_to_minifcn,
)
from minifcn.models.shapes import fcn_shapes

from ..pth_files import TORCHVISION_CONV_INDICES, VGG16_CFG

CONV_NAMES = [f"conv{b}_{j}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for j in range(1, n + 1)]


def test_fcn_arch_and_classes_follow_from_names_and_shapes():
    assert fcn_arch_from_names(fcn_shapes("fcn8s", 3)) == "fcn8s"
    assert fcn_arch_from_names(fcn_shapes("fcn16s", 3)) == "fcn16s"
    assert fcn_arch_from_names(fcn_shapes("fcn32s", 3)) == "fcn32s"
    # Zero-stride views stand in for the weights: only names and shapes matter here.
    state = {name: np.broadcast_to(np.float32(0), shape) for name, shape in fcn_shapes("fcn32s", 60).items()}
    arch, k, mapped = fcn_pth_to_minifcn(state)
    assert (arch, k) == ("fcn32s", 60) and mapped["upscore.weight"].shape == (60, 60, 64, 64)
    state["score_pool4.weight"] = state.pop("upscore.weight")
    with pytest.raises(ConvertError, match="needs upscore8.weight"):
        fcn_pth_to_minifcn(state)
    state = {name: np.broadcast_to(np.float32(0), shape) for name, shape in fcn_shapes("fcn16s", 4).items()}
    state["upscore16.weight"] = np.zeros((4, 4, 16, 16), np.float32)
    with pytest.raises(ConvertError, match="shape mismatch for upscore16.weight"):
        fcn_pth_to_minifcn(state)


def _vgg16_convs(key):
    """{key(i, name): array} for the thirteen VGG16 convolutions, every weight filled with its index i
    (shapes from torchvision's configuration, written out independently in tests/pth_files.py)."""
    arrays, cin = {}, 3
    channels = [c for c in VGG16_CFG if c != "M"]
    for i, (name, cout) in enumerate(zip(CONV_NAMES, channels)):
        weight_key, bias_key = key(i, name)
        arrays[weight_key] = np.full((cout, cin, 3, 3), i, np.float16)  # half precision comes out float32
        arrays[bias_key] = np.full(cout, -i, np.float16)
        cin = cout
    return arrays


def test_torchvision_features_map_to_conv_names_in_order():
    state = _vgg16_convs(lambda i, name: (f"features.{TORCHVISION_CONV_INDICES[i]}.weight",
                                          f"features.{TORCHVISION_CONV_INDICES[i]}.bias"))
    mapped = torchvision_vgg16_to_minifcn(state)
    assert list(mapped) == [f"{n}.{p}" for n in CONV_NAMES for p in ("weight", "bias")]  # no classifier: no fc6/fc7
    for i, name in enumerate(CONV_NAMES):
        assert mapped[f"{name}.weight"].dtype == np.float32
        assert mapped[f"{name}.weight"][0, 0, 0, 0] == i and mapped[f"{name}.bias"][0] == -i
    state["features.28.weight"] = state["features.28.weight"][:, :256]
    with pytest.raises(ConvertError, match=r"not a torchvision VGG16 state dict: shape mismatch for "
                                           r"features.28.weight: expected \(512, 512, 3, 3\), got \(512, 256, 3, 3\)"):
        torchvision_vgg16_to_minifcn(state)


def test_caffe_npz_names_map_to_conv_names():
    arrays = _vgg16_convs(lambda i, name: (f"{name}_W", f"{name}_b"))
    mapped = caffe_vgg16_npz_to_minifcn(arrays)
    assert mapped["conv4_2.weight"].shape == (512, 512, 3, 3) and mapped["conv4_2.weight"][0, 0, 0, 0] == 8
    del arrays["conv1_1_b"]
    with pytest.raises(ConvertError, match=r"missing conv1_1_b \(expected shape \(64,\)\)"):
        caffe_vgg16_npz_to_minifcn(arrays)
