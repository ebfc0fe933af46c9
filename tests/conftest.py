"""Fixtures shared by the whole suite: array backends, torch, and the shared real data."""

import os
from pathlib import Path

import numpy as np
import pytest

from minifcn import backend

# The CuPy case carries the gpu marker: `pytest -m gpu` runs every GPU case (on a GPU, or on the CuPy
# stand-in with MINIFCN_CUPY=standin) and `pytest -m "not gpu"` leaves them out.
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


def shared_root():
    """``$MINIFCN_SHARED``, else ``../shared`` beside the project root."""
    default = Path(__file__).resolve().parent.parent.parent / "shared"
    return Path(os.environ.get("MINIFCN_SHARED", default))


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module under test: numpy always, cupy where a CUDA device is present."""
    if request.param == "numpy":
        return np
    if not backend.gpu_available():
        pytest.skip("CuPy or a CUDA device is not available")
    return backend.cupy_or_none()


@pytest.fixture
def standin(monkeypatch):
    """The CuPy stand-in of tests/cupy_standin (the backend's one instance), with fresh counters and
    device state, whether or not MINIFCN_CUPY=standin puts it in the backend."""
    module = backend._import_standin()
    module.reset_counters()
    for name in ("device_count", "current", "allow_sync", "fused_depth", "kernel_failure"):
        monkeypatch.setattr(module.State, name, getattr(module.State, name))
    return module


@pytest.fixture
def cupy_backend(monkeypatch, standin):
    """The backend with the CuPy stand-in in CuPy's place (on any machine), its device checks fresh."""
    monkeypatch.setenv("MINIFCN_CUPY", "standin")
    monkeypatch.setattr(backend, "_cupy", standin)
    monkeypatch.setattr(backend, "_cupy_import_error", None)
    monkeypatch.setattr(backend, "_checked_devices", set())
    return standin


@pytest.fixture(scope="session")
def torch():
    """PyTorch for parity tests; skipped where it is missing, except in CI, where it must be there."""
    try:
        import torch as torch_module
    except ImportError:
        if os.environ.get("MINIFCN_REQUIRE_TORCH") or os.environ.get("CI"):
            pytest.fail("torch is required for the parity tests in CI: pip install torch==2.13.0")
        pytest.skip("torch is not installed")
    torch_module.set_num_threads(max(1, os.cpu_count() or 1))
    return torch_module


@pytest.fixture(scope="session")
def camvid_root():
    """The real CamVid folder from ../shared, or skip."""
    root = shared_root() / "data" / "camvid"
    if not (root / "train.txt").exists():
        pytest.skip(f"CamVid not found under {root}")
    return root


@pytest.fixture(scope="session")
def vgg16_weights_path():
    """The conv-only VGG16 ImageNet weights from ../shared, or skip."""
    path = shared_root() / "weights" / "vgg16_imagenet_conv_oihw_bgr.npz"
    if not path.exists():
        pytest.skip(f"VGG16 weights not found at {path}")
    return path
