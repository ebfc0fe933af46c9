"""The stand-in's ``cupy.random``: seeded generators on the device.

Their streams deliberately differ from NumPy's for the same seed (Philox here, PCG64 in
``numpy.random.default_rng``), as CuPy's XORWOW streams do, so no test can rely on CPU and GPU drawing
the same numbers.
"""

import numpy as np

from .core import call, check_keywords


class Generator:
    """``cupy.random.Generator``: ``random``, ``standard_normal``, ``integers``, each one launch."""

    def __init__(self, seed=None):
        self._numpy = np.random.Generator(np.random.Philox(seed))

    def _draw(self, name, *args, **kwargs):
        check_keywords("cupy.random.Generator", name, kwargs)
        return call("cupy.random.Generator", name, getattr(self._numpy, name), args, kwargs)

    def random(self, size=None, dtype=np.float64, out=None):
        return self._draw("random", size=size, dtype=dtype)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return self._draw("standard_normal", size=size, dtype=dtype)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return self._draw("integers", low, high, size=size, dtype=dtype, endpoint=endpoint)


def default_rng(seed=None):
    return Generator(seed)
