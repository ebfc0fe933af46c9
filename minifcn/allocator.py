"""Let this process keep freed memory for reuse (glibc's malloc), for the command-line programs only.

Every training step allocates and frees the same large arrays (activations, im2col columns,
gradients). glibc serves an allocation above its mmap threshold (32 MiB at most) with fresh pages
from the kernel and hands them back on free, so each step pays a page fault for every 4 KiB page it
touches again. Raising the mmap and trim thresholds keeps that memory in the process for the next
step (``python benchmarks/cpu_benchmark.py --cases full,small`` shows the difference; the figures are
in benchmarks/RESULTS.md). The peak memory is the same either way; what changes is that the
process does not give memory back to the system between steps.

Threads (``ops/fast/cores.py``'s, that split one image's layers and the optimizers' updates) would each
get an arena of their own from glibc, each keeping the memory its thread freed: one CamVid image's
step peaked at 829 MiB with its Winograd layers split over two threads, against 668 MiB unsplit. With
one arena for the whole process the threads reuse each other's freed memory (677 MiB); their
allocations are few and large, so sharing the arena's lock costs no measurable time.

This changes the allocator of the whole process, so only minifcn's own programs (``cli.run``) call
it; importing minifcn never does. Where the C library is not glibc it does nothing.
"""

import ctypes
import ctypes.util
import sys

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
KEEP_UP_TO = 1 << 30  # allocations below 1 GiB come from the heap, and up to 1 GiB of free heap is kept


def keep_freed_memory():
    """Ask glibc to reuse freed memory instead of returning it to the kernel; True if it agreed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, KEEP_UP_TO), (M_TRIM_THRESHOLD, KEEP_UP_TO), (M_ARENA_MAX, 1))
    return all([bool(mallopt(parameter, value)) for parameter, value in settings])
