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


def _add_at(a, slices, value):
    """numpy.add.at's sums, computed by a bincount over the target cells' flat indices: the same
    result (summed in float64, then rounded), and fast enough for whole feature maps."""
    targets = np.arange(a.size).reshape(a.shape)[slices]
    values = np.broadcast_to(value, targets.shape)
    sums = np.bincount(targets.ravel(), weights=values.ravel(), minlength=a.size).reshape(a.shape)
    a += sums.astype(a.dtype)


def scatter_add(a, slices, value):
    call("cupyx", "scatter_add", _add_at, (a, slices, value), {})


__all__ = ["DeviceSynchronized", "allow_synchronize", "scatter_add"]
