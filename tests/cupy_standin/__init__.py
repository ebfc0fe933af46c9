"""A strict CPU stand-in for CuPy, for tests and CI on machines without a GPU.

Switched on by ``MINIFCN_CUPY=standin``: ``minifcn.backend`` then imports this package where it would
import ``cupy``. It offers only the names and keywords recorded from the real CuPy (``cupy_api.json``,
re-recorded by ``record_api.py``), refuses what CuPy refuses (implicit conversion to NumPy, NumPy
arrays as arguments, arrays from another device), pretends to have two devices, and counts kernel
launches, host syncs and transfers in ``COUNTERS`` (``reset_counters()`` zeroes them). It runs on
NumPy, so it proves the GPU path's logic and its launch count, never its speed.
"""

import numpy as np

from . import cuda, cupyx, random
from .core import API, COUNTERS, State, call, count_launch, ndarray, reset_counters, wrap
from .kernels import ElementwiseKernel, fuse

__version__ = "standin (API of " + __import__("json").loads(
    (__import__("pathlib").Path(__file__).with_name("cupy_api.json")).read_text())["recorded_from"] + ")"

# Functions that make views or read metadata: no kernel.
_NO_LAUNCH = {"reshape", "transpose", "expand_dims", "squeeze", "broadcast_to", "broadcast_arrays", "moveaxis",
              "swapaxes", "rollaxis", "shape", "ndim", "size", "result_type", "can_cast", "promote_types",
              "isscalar", "iinfo", "finfo", "empty", "empty_like", "split", "array_split", "atleast_1d",
              "atleast_2d", "atleast_3d", "min_scalar_type", "common_type", "issubdtype", "dtype"}


def asarray(a, dtype=None, order=None, copy=None, blocking=False):
    if isinstance(a, ndarray):
        if a._device != State.current:
            COUNTERS["to_device"] += 1  # a peer copy between devices
            a = wrap(a._array.copy())
        return a.astype(dtype, copy=bool(copy)) if dtype is not None else (a.copy() if copy else a)
    COUNTERS["to_device"] += 1
    return wrap(np.array(a, dtype=dtype, order=order or "K"))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    if isinstance(obj, ndarray) and obj._device == State.current:
        count_launch([obj])
        return wrap(np.array(obj._array, dtype=dtype, order=order, ndmin=ndmin))
    result = asarray(obj, dtype=dtype)
    return wrap(np.array(result._array, ndmin=ndmin, copy=False)) if ndmin else result


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    if a._array.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    count_launch([a])
    return wrap(np.ascontiguousarray(a._array, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    import sys

    return sys.modules[__name__] if any(isinstance(arg, ndarray) for arg in args) else np


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _POOL


_EXPLICIT = {name: value for name, value in globals().items()
             if name in ("asarray", "array", "ascontiguousarray", "asnumpy", "get_array_module", "ndarray",
                         "ElementwiseKernel", "fuse", "get_default_memory_pool",
                         "get_default_pinned_memory_pool", "cuda", "random")}
_FUNCTIONS = {}


def _numpy_function(name):
    numpy_function = getattr(np, name)

    def function(*args, **kwargs):
        return call("cupy", name, numpy_function, args, kwargs, launches=name not in _NO_LAUNCH)

    function.__name__ = name
    return function


def namespace_function(name):
    """The stand-in's function called ``name``, or None where the real CuPy has none."""
    if name in _EXPLICIT:
        return _EXPLICIT[name]
    if name not in API["cupy"] or not hasattr(np, name):
        return None
    entry = API["cupy"][name]
    if entry["kind"] != "callable" or isinstance(getattr(np, name), type):
        return getattr(np, name)
    if name not in _FUNCTIONS:
        _FUNCTIONS[name] = _numpy_function(name)
    return _FUNCTIONS[name]


def __getattr__(name):
    if name in API["cupy"] or name in _EXPLICIT:
        value = namespace_function(name)
        if value is not None:
            return value
        raise AttributeError(f"the CuPy stand-in does not implement cupy.{name}")
    raise AttributeError(f"module 'cupy' has no attribute {name!r}")
