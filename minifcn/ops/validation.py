"""Input checks shared by the ops: each raises ValueError naming what was expected and what came."""

from ..backend import get_array_module, to_numpy


def require_floating(name, array):
    """Reject integer or boolean arrays: silently promoting them would hide a data-pipeline bug."""
    if array.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array, got dtype {array.dtype}")


def require_ndim(name, array, ndim, letters):
    """Require ``array.ndim == ndim``; ``letters`` names the axes, e.g. "(N, C, H, W)"."""
    if array.ndim != ndim:
        raise ValueError(f"{name} must have shape {letters}, got shape {tuple(array.shape)}")


def require_channels(name, array, expected):
    """Require axis 1 (C) of an NCHW array to equal ``expected``."""
    if array.shape[1] != expected:
        raise ValueError(
            f"{name} must have {expected} channels (shape (N, {expected}, H, W)), "
            f"got shape {tuple(array.shape)}"
        )


def pair(value, name):
    """Turn an int or a 2-sequence into a pair of non-negative ints (height, width)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {value!r}")
        first, second = int(value[0]), int(value[1])
    else:
        first = second = int(value)
    if first < 0 or second < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return first, second


def out_of_range_labels(labels, num_classes, ignore_index):
    """The distinct values of ``labels`` (integers of any shape, NumPy or CuPy) that are neither in
    [0, K) nor ``ignore_index``, sorted, as Python ints; [] when every value is valid.

    The one definition of a valid label: the loss checks its input with it, the datasets and the
    loader their masks and batches.
    On a GPU it reads a flag back from the device, which is why batches are checked on the host.
    """
    xp = get_array_module(labels)
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if not bool(bad.any()):
        return []
    return [int(value) for value in to_numpy(xp.unique(labels[bad]))]
