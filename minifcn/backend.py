"""The one place that knows about CuPy.

Every op takes its array module from its inputs (``xp = get_array_module(x)``), so the same code runs
on NumPy arrays (CPU) and CuPy arrays (GPU). The device is chosen only where data and parameters
enter: ``to_device`` moves an array there, ``to_numpy`` brings one back for a human to look at.

Devices are named ``"cpu"``, ``"gpu"`` (the current CUDA device, normally 0) and ``"gpu:N"``.
Asking for a GPU where CuPy or a CUDA device is missing raises ``DeviceUnavailableError`` with what to
install; it never falls back to the CPU silently, because a run that quietly takes 50x longer than
the user expects is worse than one that stops.

``MINIFCN_CUPY=standin`` puts the strict CPU stand-in for CuPy from the test tree
(``tests/cupy_standin``) where CuPy would be, so the GPU path can be tested on a machine without one.
"""

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import numpy as np

_GPU_INSTALL_HINT = (
    "install CuPy for your CUDA version: pip install -e '.[gpu]' in the minifcn checkout (CUDA 12) "
    "or pip install 'cupy-cuda13x[ctk]' (CUDA 13)"
)
# A driver without the CUDA toolkit's libraries imports CuPy and counts devices, then fails at the
# first kernel (NVRTC compiles them) or matrix product (cuBLAS): the [ctk] extra installs them.
_TOOLKIT_HINT = "the CUDA toolkit libraries may be missing: pip install 'cupy-cuda12x[ctk]' (or cupy-cuda13x[ctk])"

_STANDIN_PATH = Path(__file__).resolve().parent.parent / "tests" / "cupy_standin"
_STANDIN_NAME = "cupy_standin"

_cupy = None
_cupy_import_error = None
_checked_devices = set()


def _uses_standin():
    return os.environ.get("MINIFCN_CUPY", "").strip().lower() == "standin"


def _cupy_module_name():
    return _STANDIN_NAME if _uses_standin() else "cupy"


def _cupy_was_imported():
    """Whether the module ``_cupy_module_name`` names is in ``sys.modules``. The environment is read
    only once CuPy or the stand-in is there: ``get_array_module`` runs for every op, and reading
    ``os.environ`` each time cost more than the rest of it, all while holding the GIL."""
    return ("cupy" in sys.modules or _STANDIN_NAME in sys.modules) and _cupy_module_name() in sys.modules


def _import_standin():
    """The CuPy stand-in of the test tree (importable only from a source checkout)."""
    if _STANDIN_NAME in sys.modules:
        return sys.modules[_STANDIN_NAME]
    if not (_STANDIN_PATH / "__init__.py").exists():
        raise ImportError(f"MINIFCN_CUPY=standin needs the test tree of a minifcn checkout ({_STANDIN_PATH})")
    spec = importlib.util.spec_from_file_location(_STANDIN_NAME, _STANDIN_PATH / "__init__.py",
                                                  submodule_search_locations=[str(_STANDIN_PATH)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_STANDIN_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_STANDIN_NAME]
        raise
    return module


class DeviceUnavailableError(RuntimeError):
    """A GPU was asked for where there is none usable."""


def _import_cupy():
    """Import CuPy once, remembering a failure instead of retrying it on every call."""
    global _cupy, _cupy_import_error
    if _cupy is None and _cupy_import_error is None:
        try:
            if _uses_standin():
                _cupy = _import_standin()
            else:
                import cupy

                _cupy = cupy
        except Exception as error:  # ImportError, or a broken CUDA install raising something else
            _cupy_import_error = error
    return _cupy


def cupy_or_none():
    """The cupy module when it imports, else None. Never raises."""
    return _import_cupy()


def cupyx_or_none():
    """The ``cupyx`` module (``allow_synchronize``, ``scatter_add``) when CuPy imports, else None."""
    cupy = _import_cupy()
    if cupy is None:
        return None
    if _uses_standin():
        return cupy.cupyx
    import cupyx

    return cupyx


def nccl_or_none():
    """``cupy.cuda.nccl`` (GPU-to-GPU all-reduce) where CuPy was built with NCCL and the library loads,
    else None. Never raises."""
    cupy = _import_cupy()
    if cupy is None:
        return None
    try:
        nccl = importlib.import_module(f"{cupy.__name__}.cuda.nccl")
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) and hasattr(nccl, "NcclCommunicator") else None


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    A script may import CuPy itself and hand its arrays straight to an op: once CuPy is in
    ``sys.modules`` it is picked up here, without waiting for a device check to import it.
    """
    cupy = _cupy
    if cupy is None and _cupy_import_error is None and _cupy_was_imported():
        cupy = _import_cupy()
    if cupy is not None:
        for array in arrays:
            if isinstance(array, cupy.ndarray):
                return cupy
    return np


_elementwise_kernels = {}


def elementwise_kernel(xp, in_params, out_params, operation, name):
    """The ``ElementwiseKernel`` of this definition for the array module ``xp``, made once per process
    (CuPy compiles it on first use for each dtype and device). Only for GPU arrays: NumPy has none."""
    key = (xp.__name__, name)
    if key not in _elementwise_kernels:
        _elementwise_kernels[key] = xp.ElementwiseKernel(in_params, out_params, operation, name)
    return _elementwise_kernels[key]


def parse_device(device):
    """Split a device name into ``("cpu", None)`` or ``("gpu", index)``; raise ValueError if malformed.

    ``"gpu"`` means the current CUDA device, returned as index None.
    """
    if not isinstance(device, str):
        raise ValueError(f"device must be a string like 'cpu', 'gpu' or 'gpu:1', got {device!r}")
    name = device.strip().lower()
    if name == "cpu":
        return "cpu", None
    match = re.fullmatch(r"(?:gpu|cuda)(?::(\d+))?", name)
    if match is None:
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'gpu' or 'gpu:N'")
    return "gpu", None if match.group(1) is None else int(match.group(1))


def check_device(device):
    """Validate ``device`` and make sure it is usable; return its canonical name.

    Raises ValueError for a malformed name and DeviceUnavailableError when a GPU is asked for and
    CuPy or the CUDA device is missing.
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        return "cpu"
    cupy = _import_cupy()
    if cupy is None:
        raise DeviceUnavailableError(
            f"device {device!r} needs CuPy, which could not be imported "
            f"({type(_cupy_import_error).__name__}: {_cupy_import_error}); {_GPU_INSTALL_HINT}"
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        raise DeviceUnavailableError(
            f"device {device!r}: CuPy is installed but no CUDA device is usable ({error})"
        ) from None
    if count == 0:
        raise DeviceUnavailableError(f"device {device!r}: CuPy is installed but there is no CUDA device")
    if index is not None and index >= count:
        raise DeviceUnavailableError(f"device {device!r}: only {count} CUDA device(s), numbered 0..{count - 1}")
    _check_kernels_run(cupy, device, index)
    return "gpu" if index is None else f"gpu:{index}"


def _check_kernels_run(cupy, device, index):
    """Run one tiny kernel and one matrix product on the device, once per device and process.

    Counting devices needs only the driver; a kernel needs NVRTC and a product cuBLAS, which a CuPy
    wheel without its toolkit libraries lacks. Finding that here gives one clear message instead of a
    traceback from the first layer.
    """
    key = cupy.cuda.runtime.getDevice() if index is None else index
    if key in _checked_devices:
        return
    try:
        with cupy.cuda.Device(key):
            a = cupy.arange(4, dtype=cupy.float32).reshape(2, 2)
            b = a * 2 + 1
            (a @ b).sum().item()
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise DeviceUnavailableError(
            f"device {device!r}: CuPy sees the device but cannot run a kernel on it "
            f"({type(error).__name__}: {first_line}); {_TOOLKIT_HINT}"
        ) from None
    _checked_devices.add(key)


def to_device(array, device):
    """Return ``array`` on ``device`` (a NumPy array for "cpu", a CuPy array for "gpu[:N]").

    An array already on the requested device is returned as it is, not copied. ``"gpu:N"`` also makes
    device N the current one: every array the ops create lands on the current device, and CuPy refuses
    to mix arrays of two devices in one kernel, so the device where data enters must stay current.
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        return to_numpy(array)
    check_device(device)
    cupy = _cupy
    if index is not None and cupy.cuda.runtime.getDevice() != index:
        cupy.cuda.Device(index).use()
    return cupy.asarray(array)


def to_numpy(array):
    """Return ``array`` as a NumPy array, copying it from the GPU if needed."""
    cupy = _cupy
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy.asnumpy(array)
    return np.asarray(array)


def device_of(array):
    """The device name an array lives on: "cpu" or "gpu:N"."""
    cupy = _cupy
    if cupy is not None and isinstance(array, cupy.ndarray):
        return f"gpu:{array.device.id}"
    return "cpu"


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device. Never raises."""
    try:
        check_device("gpu")
    except DeviceUnavailableError:
        return False
    return True


# How allocation failures read when they do not come as a MemoryError (CuPy's OutOfMemoryError is
# one): from the CUDA runtime, cuBLAS or cuDNN, as status names in the exception's message.
_ALLOCATION_FAILURES = ("cudaErrorMemoryAllocation", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
                        "CUDA_ERROR_OUT_OF_MEMORY")


def is_out_of_memory(error):
    """True if ``error`` means an allocation failed, on the host or on a GPU."""
    return isinstance(error, MemoryError) or any(name in str(error) for name in _ALLOCATION_FAILURES)
