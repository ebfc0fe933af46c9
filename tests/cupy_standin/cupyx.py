"""The stand-in's ``cupyx``: ``allow_synchronize`` (which the tests use to prove a step never waits on
the device) and ``scatter_add``."""

import contextlib

import numpy as np

from .core import DeviceSynchronized, State, call


@contextlib.contextmanager
def allow_synchronize(allow):
    previous = State.allow_sync
    State.allow_sync = bool(allow)
    try:
        yield
    finally:
        State.allow_sync = previous


def scatter_add(a, slices, value):
    call("cupyx", "scatter_add", np.add.at, (a, slices, value), {})


__all__ = ["DeviceSynchronized", "allow_synchronize", "scatter_add"]
