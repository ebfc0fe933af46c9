"""Tests for minifcn.ops.fast.cores: one operation's parts on threads of their own, one BLAS thread each."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_info

from minifcn.ops.fast import cores
from minifcn.ops.fast.cores import blas_threads, element_runs, elements, elementwise_on_cores, on_cores


def test_parts_run_on_threads_of_their_own_with_one_blas_thread():
    """Three parts: three distinct threads, none of them the caller's, each seeing one BLAS thread;
    the results come back in the parts' order, and BLAS's setting is restored after."""
    before = blas_threads()
    barrier = threading.Barrier(3, timeout=10)  # passes only if the three parts run at the same time

    def work(part):
        barrier.wait()
        return part, threading.get_ident(), blas_threads()

    results = on_cores(work, ["a", "b", "c"])
    assert [part for part, _, _ in results] == ["a", "b", "c"]
    threads = {ident for _, ident, _ in results}
    assert len(threads) == 3 and threading.get_ident() not in threads
    assert [threads_seen for _, _, threads_seen in results] == [1, 1, 1]
    assert blas_threads() == before


def test_one_part_runs_on_the_calling_thread_with_blas_untouched():
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        expected = blas_threads()
        [(ident, seen)] = on_cores(lambda part: (threading.get_ident(), blas_threads()), ["only"])
    assert ident == threading.get_ident()
    assert seen == expected


def test_an_error_is_raised_after_every_part_has_finished():
    finished = []

    def work(part):
        if part == 0:
            raise ValueError("part 0 failed")
        time.sleep(0.2)
        finished.append(part)

    with pytest.raises(ValueError, match="part 0 failed"):
        on_cores(work, [0, 1])
    assert finished == [1]


# Which OPENBLAS_THREAD_TIMEOUT the process ends up with, and whether cores counts on idle BLAS
# threads sleeping, for an import order and the user's own setting.
PROBE = """
import os, sys
for name in sys.argv[1].split(","):
    __import__(name)
from minifcn.ops.fast import cores
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), cores.BLAS_SLEEPS_WHEN_IDLE)
"""


def probe(imports, timeout=None):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    out = subprocess.run([sys.executable, "-c", PROBE, imports], env=env, capture_output=True, text=True, check=True)
    value, sleeps = out.stdout.split()
    return value, sleeps == "True"


@pytest.mark.skipif(not any(info["internal_api"] == "openblas" for info in threadpool_info()),
                    reason="NumPy's BLAS here is not OpenBLAS")
def test_blas_timeout_is_set_before_numpy_loads_it_or_not_at_all():
    """Imported before NumPy, minifcn sets OpenBLAS's idle-thread timeout short and counts on it; the
    user's own setting is kept (and counted on only if short); after NumPy, nothing is set or counted on."""
    assert probe("minifcn") == ("20", True)
    assert probe("minifcn", timeout="6") == ("6", True)
    assert probe("minifcn", timeout="28") == ("28", False)
    assert probe("numpy,minifcn") == ("None", False)


@pytest.mark.parametrize("sizes, runs", [([7, 1, 30, 0, 5], 2), ([7, 1, 30, 0, 5], 3), ([4], 9), ([100], 1), ([], 2)])
def test_element_runs_cover_every_element_once_in_equal_runs(sizes, runs):
    """Listed run by run, the ranges are the arrays' elements in order, each once; the runs' sizes
    differ by at most one, and there are never more runs than elements."""
    cut = element_runs(sizes, runs)
    covered = [(index, position) for ranges in cut for index, start, stop in ranges for position in range(start, stop)]
    assert covered == [(index, position) for index, size in enumerate(sizes) for position in range(size)]
    totals = [sum(stop - start for _, start, stop in ranges) for ranges in cut]
    assert len(cut) == min(runs, sum(sizes)) and (not totals or max(totals) - min(totals) <= 1)


def test_elements_are_views_that_update_the_array():
    array = np.arange(12.0).reshape(3, 4)
    elements(array, 5, 9)[...] = -1
    assert array.reshape(-1).tolist() == [0, 1, 2, 3, 4, -1, -1, -1, -1, 9, 10, 11]
    transposed = array.T
    assert elements(transposed, 0, 12) is transposed  # whole: any layout
    with pytest.raises(ValueError, match="C-contiguous"):
        elements(transposed, 0, 6)  # flattening it would copy, and the update would be lost


@pytest.mark.parametrize("threads", [1, 2])
def test_elementwise_updates_come_in_cache_sized_pieces_and_equal_the_whole(monkeypatch, threads):
    """An update that is a chain of passes (as an optimizer's), over arrays of several pieces and
    one smaller than a piece: every call gets at most CACHE_PIECE elements, every element is
    updated once, and the values equal the chain computed over the whole arrays, to the bit."""
    monkeypatch.setattr(cores, "CACHE_PIECE", 1000)
    monkeypatch.setattr(cores, "elementwise_threads", lambda: threads)
    rng = np.random.default_rng(0)
    shapes = [(3, 1001), (17,), (40, 50, 2)]
    data = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    moments = [np.zeros(shape, np.float32) for shape in shapes]
    expected = [array.copy() for array in data]
    for values, grad in zip(expected, grads):
        moment = 0.1 * grad
        values -= 0.01 * moment / (np.sqrt(grad * grad) + 1e-3)
    sizes, lock = [], threading.Lock()

    def update(run, index, arrays):
        values, grad, moment = arrays
        with lock:
            sizes.append(values.size)
        moment += 0.1 * grad
        values -= 0.01 * moment / (np.sqrt(grad * grad) + 1e-3)

    elementwise_on_cores(list(zip(data, grads, moments)), update)
    assert max(sizes) <= 1000 and sum(sizes) == sum(array.size for array in data)
    for values, wanted in zip(data, expected):
        np.testing.assert_array_equal(values, wanted)
