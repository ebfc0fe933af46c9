"""The stand-in's ``cupy.cuda``: devices (two by default), the runtime calls minifcn makes, streams."""

import time
import types

from .core import API, Device, State, count_sync


class CUDARuntimeError(RuntimeError):
    """What the CUDA runtime raises."""


def _get_device_count():
    return State.device_count


def _set_device(index):
    Device(index).use()


def _get_device_properties(index):
    Device(index)
    return {"name": b"CuPy stand-in (NumPy)", "totalGlobalMem": 16 * 2**30, "major": 9, "minor": 0}


runtime = types.SimpleNamespace(
    getDeviceCount=_get_device_count, getDevice=lambda: State.current, setDevice=_set_device,
    getDeviceProperties=_get_device_properties, deviceSynchronize=count_sync,
    CUDARuntimeError=CUDARuntimeError, runtimeGetVersion=lambda: 12080, driverGetVersion=lambda: 12080,
)


class Stream:
    """A stream; synchronising it is a host sync."""

    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        pass

    def synchronize(self):
        count_sync()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream.null


class Event:
    """An event that records host time (the stand-in has no device clock)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        count_sync()


def get_elapsed_time(start_event, end_event):
    return (end_event.time - start_event.time) * 1000


def is_available():
    return State.device_count > 0


def __getattr__(name):
    if name in API["cupy.cuda"]:
        raise AttributeError(f"the CuPy stand-in does not implement cupy.cuda.{name}")
    raise AttributeError(f"module 'cupy.cuda' has no attribute {name!r}")
