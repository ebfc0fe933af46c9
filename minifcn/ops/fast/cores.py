"""The parts of one operation on all the cores: Python threads, each with one BLAS thread.

Why: some methods do much of their work outside BLAS. Winograd's transforms (``winograd.py``) are
NumPy additions that run on the calling core whatever BLAS does, and its products are many small
ones. With one image on a multi-core machine, BLAS's own threads would share only the products while
the other cores wait through the transforms. Cut into parts (Winograd's: runs of tile rows), each
part computed in its own thread with BLAS limited to one thread per call, the whole operation is
shared, transforms included. NumPy's ufuncs and BLAS release the GIL while they compute, so the
threads run at once.

Elementwise updates too large for one core to do quickly (the optimizers' steps over all the
parameters, data_parallel's sum of gradients) are cut into runs of elements (``element_runs``), one
per core: each element's update is its own, so the values are the same to the bit. Each run is
updated a cache-sized piece at a time (``CACHE_PIECE``): an update is a chain of NumPy operations,
each a pass over its arrays, and over a piece that stays in the cache only the first pass reads
memory and the last writes it (SGD's step over the full-size FCN-8s took about half the time).

``data_parallel`` runs the parts of a batch one per core, each in its own process, with BLAS limited
to one thread (``single_blas_thread``). There ``blas_threads()`` is 1, so an operation makes one part
and runs it on the calling thread: the cores are never asked for twice.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from threadpoolctl import ThreadpoolController

_CONTROLLER = ThreadpoolController()
# The BLAS libraries NumPy has loaded, asked how many threads their next product will use.
_BLAS = _CONTROLLER.select(user_api="blas")

# OPENBLAS_THREAD_TIMEOUT is how long OpenBLAS's idle threads spin after a product before they sleep,
# 2^value CPU cycles: the default, 28, is about 0.1 s, long enough to take the cores from the split
# parts of the next layer; at or below this (about 0.3 ms) they leave them soon enough.
SHORT_BLAS_SPIN = 20

_pool = None  # the worker threads, started at the first split operation; idle ones end with the process
_pool_size = 0
_pool_lock = threading.Lock()


def blas_threads():
    """The threads a matrix product will use now: the most of any BLAS library NumPy has loaded (1 if
    none is known). Inside ``data_parallel``'s parts it is 1, outside them all the cores by default."""
    # Each library's thread count alone (a call into it), not ``info()``'s dict of everything known
    # about it: every convolution asks, and the GIL is held while it does.
    return max((library.num_threads for library in _BLAS.lib_controllers), default=1)


def _openblas_sleeps_when_idle():
    """Whether every BLAS library NumPy has loaded is OpenBLAS with a short spin (``SHORT_BLAS_SPIN``):
    OPENBLAS_THREAD_TIMEOUT set, by the user or by ``minifcn/__init__.py``, before NumPy loaded it. It
    is read then, and this is asked right after (NumPy is loaded by now); other libraries keep their
    own idle threads spinning for similar times, and get False."""
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "").strip()
    libraries = _BLAS.info()
    short = timeout.isdigit() and int(timeout) <= SHORT_BLAS_SPIN
    return bool(libraries) and short and all(info["internal_api"] == "openblas" for info in libraries)


# Whether BLAS's idle threads leave the cores free soon after a product: then the parts of one
# operation may run on threads of their own between BLAS's multi-threaded products.
BLAS_SLEEPS_WHEN_IDLE = _openblas_sleeps_when_idle()


def elementwise_threads():
    """How many runs an elementwise update (the optimizers', a sum of gradients) is cut into: one per
    BLAS thread where BLAS's idle threads leave the cores soon after a product, so that the runs do not
    wait for cores a spinning BLAS thread holds; else 1. Inside ``data_parallel``'s parts it is 1."""
    return blas_threads() if BLAS_SLEEPS_WHEN_IDLE else 1


def element_runs(sizes, runs):
    """Cut the elements of arrays of these ``sizes``, taken one after the other, into at most ``runs``
    runs of sizes as equal as possible: for each run, a list of ``(array index, start, stop)`` over the
    flattened arrays. An elementwise operation computed run by run, each on a core of its own
    (``on_cores``), gives the same values to the bit as computed whole."""
    total = sum(sizes)
    runs = max(1, min(runs, total))
    bounds = [total * index // runs for index in range(runs + 1)]
    cut, offset = [[] for _ in range(runs)], 0
    for index, size in enumerate(sizes):
        for run, (low, high) in enumerate(zip(bounds[:-1], bounds[1:])):
            start, stop = max(low, offset) - offset, min(high, offset + size) - offset
            if start < stop:
                cut[run].append((index, start, stop))
        offset += size
    return [ranges for ranges in cut if ranges]


def elements(array, start, stop):
    """The elements ``start:stop`` of ``array`` in C order, as a view to compute in place: the array
    itself when that is all of it (any layout), else a slice of its flattened view (C-contiguous only:
    flattening anything else would copy, and an update of the copy would be lost)."""
    if (start, stop) == (0, array.size):
        return array
    if not array.flags.c_contiguous:
        raise ValueError("only a C-contiguous array can be cut into runs")
    return array.reshape(-1)[start:stop]


# Elements of one piece of an elementwise update: 1 MiB of float32 an array, so that the four to six
# arrays of an optimizer's update stay in the cache (L3) through its chain of passes. Smaller pieces
# cost more calls from Python, and on two cores each call is a wait for the interpreter lock.
CACHE_PIECE = 262144


def elementwise_on_cores(groups, update):
    """``update(run, index, arrays)`` over every group of same-shaped host arrays in ``groups`` (a
    parameter's data, gradient and optimizer state), the elements of all of them cut into one run per
    core and the runs computed at once: ``update`` gets the run's number, the group's index and the
    group's arrays cut to one piece of the run (at most ``CACHE_PIECE`` elements where the arrays
    are C-contiguous), and must change them elementwise in place."""
    contiguous = all(array.flags.c_contiguous for group in groups for array in group)
    runs = element_runs([group[0].size for group in groups], elementwise_threads() if contiguous else 1)
    if not runs:
        return

    def compute(numbered_run):
        run, pieces = numbered_run
        for index, start, stop in pieces:
            size = CACHE_PIECE if contiguous else stop - start  # other layouts only whole
            for low in range(start, stop, size):
                update(run, index, [elements(array, low, min(stop, low + size)) for array in groups[index]])

    on_cores(compute, list(enumerate(runs)))


def on_cores(work, parts):
    """``[work(part) for part in parts]``, part i on thread i with BLAS limited to one thread per call;
    a single part runs on the calling thread, BLAS untouched. Every part has finished before an error
    from any of them is raised here."""
    if len(parts) == 1:
        return [work(parts[0])]
    with single_blas_thread():
        futures = [_workers(len(parts)).submit(work, part) for part in parts]
        wait(futures)
    return [future.result() for future in futures]


def single_blas_thread():
    """A context in which BLAS computes each product on one thread: the calling thread's core."""
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _workers(count):
    """The pool, grown to at least ``count`` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < count:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(count, thread_name_prefix="minifcn-cores")
            _pool_size = count
        return _pool
