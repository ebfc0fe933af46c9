"""The stand-in's array type, its counters and the rules CuPy enforces where bugs hide.

An ``ndarray`` here wraps a NumPy array and the id of the (pretend) device it lives on. Like CuPy's:

- it refuses implicit conversion to NumPy (``np.asarray(x)`` raises TypeError; ``x.get()`` is explicit),
- operations refuse NumPy arrays as arguments (Python and NumPy scalars are fine),
- reductions return 0-d arrays, never Python or NumPy scalars,
- NumPy functions and ufuncs called on it dispatch to the stand-in (``__array_function__``,
  ``__array_ufunc__``), and only to names the real CuPy has, with the keywords it accepts,
- every kernel checks that its arrays live on the current device.

Every kernel launch, host synchronisation and host<->device transfer is counted in ``COUNTERS``, so a
test or benchmark can say how many launches a training step issues and that it never waits on the GPU.
"""

import json
from pathlib import Path

import numpy as np

API = json.loads(Path(__file__).with_name("cupy_api.json").read_text())["api"]

COUNTERS = {"launches": 0, "syncs": 0, "to_device": 0, "to_host": 0}


class State:
    """Process-wide device state: how many devices, which is current, whether syncs are allowed."""

    device_count = 2
    current = 0
    allow_sync = True
    fused_depth = 0       # inside a fused kernel or an ElementwiseKernel twin: count one launch, not each op
    kernel_failure = None  # an exception to raise at every launch (a driver without NVRTC, say)


class DeviceSynchronized(RuntimeError):
    """Raised when the host waits on the device inside ``cupyx.allow_synchronize(False)``."""


def reset_counters():
    for key in COUNTERS:
        COUNTERS[key] = 0


def count_launch(arrays=()):
    """One kernel launch over ``arrays``, which must all live on the current device (as in CuPy)."""
    for array in arrays:
        if isinstance(array, ndarray) and array._device != State.current:
            raise ValueError(f"Array device must be same as the current device: array device = "
                             f"{array._device} while current = {State.current}")
    if State.fused_depth:
        return
    if State.kernel_failure is not None:
        raise State.kernel_failure
    COUNTERS["launches"] += 1


def count_sync():
    if not State.allow_sync:
        raise DeviceSynchronized("synchronization with the device is not allowed here")
    COUNTERS["syncs"] += 1


def check_keywords(where, name, kwargs):
    """Refuse keywords the real CuPy does not accept for ``where.name``."""
    entry = API.get(where, {}).get(name)
    known = None if entry is None else entry.get("keywords")
    if known is None or "**" in known:
        return
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r} (not accepted by CuPy)")


def unwrap(value, arrays):
    """The NumPy array inside a stand-in array (collected in ``arrays``); NumPy arrays are refused."""
    if isinstance(value, ndarray):
        arrays.append(value)
        return value._array
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(item, arrays) for item in value)
    return value


def wrap(value, device=None):
    """Stand-in arrays for NumPy results; a NumPy scalar becomes a 0-d array, as CuPy returns."""
    device = State.current if device is None else device
    if isinstance(value, np.ndarray):
        return ndarray._from_numpy(value, device)
    if isinstance(value, np.generic):
        return ndarray._from_numpy(np.asarray(value), device)
    if isinstance(value, tuple):
        return tuple(wrap(item, device) for item in value)
    if isinstance(value, list):
        return [wrap(item, device) for item in value]
    return value


def call(where, name, function, args, kwargs, launches=1):
    """Run ``function`` (NumPy's) on the NumPy insides of ``args``; wrap what it returns."""
    check_keywords(where, name, kwargs)
    arrays = []
    raw_args = unwrap(tuple(args), arrays)
    raw_kwargs = {key: unwrap(value, arrays) for key, value in kwargs.items()}
    if launches:
        count_launch(arrays)
    result = function(*raw_args, **raw_kwargs)
    out = kwargs.get("out")
    if isinstance(out, ndarray):
        return out
    return wrap(result)


# ndarray methods that make a view or read metadata: no kernel.
VIEW_METHODS = {"reshape", "transpose", "swapaxes", "squeeze", "view", "diagonal"}


class Device:
    """``cupy.cuda.Device``: a device id; as a context manager it is current inside the block."""

    def __init__(self, device=None):
        self.id = State.current if device is None else int(device.id if isinstance(device, Device) else device)
        if not 0 <= self.id < State.device_count:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")
        self._previous = []

    def use(self):
        State.current = self.id

    def synchronize(self):
        count_sync()

    @property
    def compute_capability(self):
        return "90"

    def __enter__(self):
        self._previous.append(State.current)
        State.current = self.id
        return self

    def __exit__(self, *exc):
        State.current = self._previous.pop()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _binary(ufunc, reflected=False, inplace=False):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        if inplace:
            return apply_ufunc(ufunc, (self, other), {"out": self})
        return apply_ufunc(ufunc, (other, self) if reflected else (self, other), {})
    return method


def _unary(ufunc):
    return lambda self: apply_ufunc(ufunc, (self,), {})


def apply_ufunc(ufunc, inputs, kwargs):
    name = ufunc.__name__
    if name not in API["cupy"]:
        raise TypeError(f"CuPy has no ufunc {name!r}")
    out = kwargs.get("out")
    if isinstance(out, tuple):
        out = out[0] if len(out) == 1 else out
        kwargs = dict(kwargs, out=out)
    return call("cupy", name, ufunc, inputs, kwargs)


class ndarray:
    """The stand-in's ``cupy.ndarray``: a NumPy array on a pretend device."""

    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._array = np.empty(shape, dtype, order=order)
        self._device = State.current

    @classmethod
    def _from_numpy(cls, array, device):
        new = cls.__new__(cls)
        new._array = array
        new._device = device
        return new

    # -- conversions CuPy refuses or makes explicit -------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        count_sync()
        COUNTERS["to_host"] += 1
        array = np.array(self._array, order=order)
        if out is not None:
            out[...] = array
            return out
        return array

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        COUNTERS["to_device"] += 1
        self._array[...] = arr

    def item(self):
        count_sync()
        COUNTERS["to_host"] += 1
        return self._array.item()

    def tolist(self):
        count_sync()
        COUNTERS["to_host"] += 1
        return self._array.tolist()

    def __bool__(self):
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.ndim or self.dtype.kind not in "iu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self.item())

    def __format__(self, spec):
        return format(self.item(), spec) if self.ndim == 0 else format(str(self), spec)

    def __repr__(self):
        count_sync()
        return repr(self._array).replace("array(", "standin_array(")

    def __str__(self):
        count_sync()
        return str(self._array)

    # -- NumPy's protocols: dispatch to the stand-in, as CuPy does ------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            cupy_ufunc = getattr(ufunc, method)
            return call("cupy", ufunc.__name__, cupy_ufunc, inputs, kwargs)
        return apply_ufunc(ufunc, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import namespace_function

        function = namespace_function(func.__name__)
        if function is None:
            return NotImplemented
        return function(*args, **kwargs)

    # -- metadata ----------------------------------------------------------------------------------
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    strides = property(lambda self: self._array.strides)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    flags = property(lambda self: self._array.flags)
    device = property(lambda self: Device(self._device))
    T = property(lambda self: wrap(self._array.T, self._device))

    @property
    def base(self):
        return None if self._array.base is None else wrap(self._array.base, self._device)

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    __hash__ = None

    # -- indexing ----------------------------------------------------------------------------------
    def _key(self, key, arrays):
        if isinstance(key, np.ndarray):  # CuPy copies a NumPy index to the device
            COUNTERS["to_device"] += 1
            return key
        if isinstance(key, tuple):
            return tuple(self._key(item, arrays) for item in key)
        return unwrap(key, arrays)

    @staticmethod
    def _is_basic(key):
        items = key if isinstance(key, tuple) else (key,)
        return all(item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice)) for item in items)

    def __getitem__(self, key):
        arrays = [self]
        raw = self._key(key, arrays)
        if self._is_basic(raw):
            return wrap(self._array[raw], self._device)
        count_launch(arrays)
        # CuPy writes an advanced index's result into a new C-ordered array (NumPy may not).
        return wrap(np.ascontiguousarray(self._array[raw]), self._device)

    def __setitem__(self, key, value):
        arrays = [self]
        raw = self._key(key, arrays)
        if isinstance(value, np.ndarray):
            COUNTERS["to_device"] += 1
        else:
            value = unwrap(value, arrays)
        count_launch(arrays)
        self._array[raw] = value

    # -- methods -----------------------------------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        count_launch([self])
        return wrap(self._array.astype(dtype, order=order), self._device)

    def copy(self, order="C"):
        count_launch([self])
        return wrap(self._array.copy(order=order), self._device)

    def fill(self, value):
        count_launch([self])
        self._array.fill(unwrap(value, []))

    def ravel(self, order="C"):
        if not self._array.flags.c_contiguous:
            count_launch([self])
        return wrap(self._array.ravel(order), self._device)

    def reshape(self, *shape, order="C", copy=None):
        result = self._array.reshape(*shape, order=order)
        if not np.may_share_memory(result, self._array):
            count_launch([self])
        return wrap(result, self._device)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()


def _method(name):
    def method(self, *args, **kwargs):
        return call("cupy.ndarray", name, getattr(self._array.__class__, name), (self,) + args, kwargs,
                    launches=name not in VIEW_METHODS)
    method.__name__ = name
    return method


for _name, _entry in API["cupy.ndarray"].items():
    if (_entry["kind"] == "callable" and not _name.startswith("_") and _name not in ndarray.__dict__
            and hasattr(np.ndarray, _name)):
        setattr(ndarray, _name, _method(_name))

for _dunder, _ufunc in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                        ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power),
                        ("matmul", np.matmul), ("and", np.bitwise_and), ("or", np.bitwise_or),
                        ("xor", np.bitwise_xor), ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    setattr(ndarray, f"__{_dunder}__", _binary(_ufunc))
    setattr(ndarray, f"__r{_dunder}__", _binary(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_dunder}__", _binary(_ufunc, inplace=True))
for _dunder, _ufunc in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                        ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(ndarray, f"__{_dunder}__", _binary(_ufunc))
for _dunder, _ufunc in [("neg", np.negative), ("pos", np.positive), ("abs", np.absolute), ("invert", np.invert)]:
    setattr(ndarray, f"__{_dunder}__", _unary(_ufunc))
