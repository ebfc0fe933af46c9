"""A training step on a GPU issues few kernels and never waits on the device.

Counted on the CuPy stand-in (its counters), with the steps of benchmarks/gpu_benchmark.py: the
reference FCN-8s with SGD (on a small image here; on a GPU every method's launch count is the same
for any image size) and the default job's step with Adam. The whole step runs inside
``cupyx.allow_synchronize(False)``, so any host sync fails it. The bounds are the budget's: the
reference at most 1,000 launches, the default job at most 400. Nothing is copied to the device in a step except the reference's two dropout
masks, which Dropout draws on the host unless it is given ``device_masks=True``.
"""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_benchmark.py"

pytestmark = pytest.mark.gpu


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case, size, budget, masks_copied", [("reference", 64, 1000, 2), ("default", None, 400, 0)])
def test_a_step_stays_within_its_launch_budget_without_host_syncs(cupy_backend, case, size, budget, masks_copied):
    step = load_benchmark().minifcn_step(case, "gpu", size)
    step()  # the first step creates the optimizer's state
    cupy_backend.reset_counters()
    with cupy_backend.cupyx.allow_synchronize(False):
        step()
    counters = cupy_backend.COUNTERS
    assert counters["syncs"] == 0 and counters["to_host"] == 0 and counters["to_device"] == masks_copied
    assert counters["launches"] <= budget
