"""minifcn: FCN-8s semantic segmentation from scratch on NumPy and CuPy."""

import os
import sys

__version__ = "0.1.0"

# OpenBLAS's idle threads spin for about 0.1 s after each multi-threaded product, waiting for the next
# one, and take the cores that ``ops/fast/cores.py``'s threads then need (one image's Winograd layers
# split over the cores ran 1.4x slower than unsplit). 2^20 cycles, about 0.3 ms, still catches the
# next product of a run of them; the shortest, 2^4, timed two images a step (data_parallel's threads)
# up to 8% slower, within the machine's noise but in every run. OpenBLAS reads it once, when NumPy
# loads it, so it is set here, before minifcn imports NumPy, unless the user set it; where NumPy was
# imported first it cannot take effect, and ``cores`` knows that.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
