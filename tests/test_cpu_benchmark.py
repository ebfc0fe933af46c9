"""The CPU benchmark's bookkeeping (its timings are run by hand, never in the tests)."""

import importlib.util
import platform
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cpu_benchmark.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("cpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rounds_pool_their_timed_runs_and_keep_the_highest_peak():
    """Two rounds of a case become one result: the median and minimum over all six runs (hand-computed),
    the higher peak with its own baseline; a case seen in one round only is kept as it is."""
    bench = load_benchmark()
    found = [
        dict(case="small/fwd+bwd", times=[0.30, 0.10, 0.20], median=0.20, min=0.10, peak_mb=150.0, baseline_mb=30.0),
        dict(case="full/fwd", times=[2.0], median=2.0, min=2.0, peak_mb=900.0, baseline_mb=32.0),
        dict(case="small/fwd+bwd", times=[0.50, 0.40, 0.60], median=0.50, min=0.40, peak_mb=160.0, baseline_mb=31.0),
    ]
    pooled = {item["case"]: item for item in bench.pool_rounds(found)}
    small = pooled["small/fwd+bwd"]
    assert sorted(small["times"]) == [0.10, 0.20, 0.30, 0.40, 0.50, 0.60]
    assert small["median"] == 0.35 and small["min"] == 0.10 and small["rounds"] == 2
    assert (small["peak_mb"], small["baseline_mb"]) == (160.0, 31.0)
    assert pooled["full/fwd"]["median"] == 2.0 and pooled["full/fwd"]["rounds"] == 1


def test_torch_child_takes_the_allocator_it_is_given():
    """``--torch-allocator minifcn`` reaches PyTorch's child, which applies minifcn's allocator settings
    and says so; by default the child leaves glibc's allocator as it is."""
    pytest.importorskip("torch")
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt")
    bench = load_benchmark()
    common = ["--worker", "torch", "--job", "layer:small:conv5_3", "--repeats", "1", "--warmup", "0",
              "--threads", "1"]
    for allocator in ("minifcn", "pytorch"):
        reply = bench.run_child(common + ["--torch-allocator", allocator], 1, 300)
        assert "error" not in reply, reply
        assert reply["env"]["allocator"] == allocator
        assert [r["case"] for r in reply["results"]] == ["small:conv5_3/fwd", "small:conv5_3/fwd+bwd"]
