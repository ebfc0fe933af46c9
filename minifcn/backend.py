"""The one place that knows about CuPy.

Every op takes its array module from its inputs (``xp = get_array_module(x)``), so the same code runs
on NumPy arrays (CPU) and CuPy arrays (GPU). The device is chosen only where data and parameters
enter: ``to_device`` moves an array there, ``to_numpy`` brings one back for a human to look at.

Devices are named ``"cpu"``, ``"gpu"`` (the current CUDA device, normally 0) and ``"gpu:N"``.
Asking for a GPU where CuPy or a CUDA device is missing raises ``DeviceUnavailableError`` with what to
install; it never falls back to the CPU silently, because a run that quietly takes 50x longer than
the user expects is worse than one that stops.
"""

import re

import numpy as np

_GPU_INSTALL_HINT = (
    "install CuPy for your CUDA version: pip install -e '.[gpu]' in the minifcn checkout (CUDA 12) "
    "or pip install cupy-cuda13x (CUDA 13)"
)

_cupy = None
_cupy_import_error = None


class DeviceUnavailableError(RuntimeError):
    """A GPU was asked for where there is none usable."""


def _import_cupy():
    """Import CuPy once, remembering a failure instead of retrying it on every call."""
    global _cupy, _cupy_import_error
    if _cupy is None and _cupy_import_error is None:
        try:
            import cupy

            _cupy = cupy
        except Exception as error:  # ImportError, or a broken CUDA install raising something else
            _cupy_import_error = error
    return _cupy


def cupy_or_none():
    """The cupy module when it imports, else None. Never raises."""
    return _import_cupy()


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    cupy = _cupy
    if cupy is not None:
        for array in arrays:
            if isinstance(array, cupy.ndarray):
                return cupy
    return np


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
    return "gpu" if index is None else f"gpu:{index}"


def to_device(array, device):
    """Return ``array`` on ``device`` (a NumPy array for "cpu", a CuPy array for "gpu[:N]").

    An array already on the requested device is returned as it is, not copied.
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        return to_numpy(array)
    check_device(device)
    cupy = _cupy
    if index is None:
        return cupy.asarray(array)
    with cupy.cuda.Device(index):
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
