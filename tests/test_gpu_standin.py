"""The CuPy stand-in (tests/cupy_standin) refuses what CuPy refuses and counts what a GPU would do.

These run without a GPU: they test the stand-in itself, which the GPU-marked tests run on in CI.
"""

import numpy as np
import pytest


def test_implicit_conversion_to_numpy_is_refused(standin):
    x = standin.ones(3, dtype=standin.float32)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.testing.assert_array_equal(x, np.ones(3))
    np.testing.assert_array_equal(x.get(), np.ones(3))
    np.testing.assert_array_equal(standin.asnumpy(x), np.ones(3))


@pytest.mark.parametrize("operation", [
    lambda xp, x, host: x + host,
    lambda xp, x, host: host * x,
    lambda xp, x, host: xp.maximum(x, host),
    lambda xp, x, host: xp.concatenate([x, host]),
    lambda xp, x, host: xp.matmul(x, host),
    lambda xp, x, host: xp.sum(host),
])
def test_numpy_arrays_are_refused_as_arguments(standin, operation):
    x = standin.ones(3, dtype=standin.float32)
    with pytest.raises(TypeError, match="Unsupported type"):
        operation(standin, x, np.ones(3, np.float32))


def test_scalars_are_accepted(standin):
    x = standin.ones(3, dtype=standin.float32)
    y = x * 2 + np.float32(1) - 0.5
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.get(), [2.5, 2.5, 2.5])


def test_unknown_names_and_keywords_are_refused(standin):
    """Only what the recorded CuPy API has: NumPy names CuPy lacks and NumPy-only keywords fail."""
    with pytest.raises(AttributeError):
        standin.fromregex  # NumPy has it, CuPy does not
    with pytest.raises(TypeError, match="unexpected keyword argument 'like'"):
        standin.zeros(3, like=None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'where'"):
        standin.ones(3).sum(where=True)
    with pytest.raises(TypeError, match="CuPy has no ufunc|Unsupported"):
        np.spacing(standin.ones(3))  # a NumPy ufunc that CuPy lacks


def test_reductions_return_zero_dimensional_arrays(standin):
    x = standin.arange(6, dtype=standin.float32).reshape(2, 3)
    for reduced in (x.sum(), x.max(), standin.sum(x), x.mean(), (x > 2).any(), x[1, 2]):
        assert isinstance(reduced, standin.ndarray) and reduced.shape == ()
    assert float(x.sum()) == 15.0


def test_numpy_functions_and_ufuncs_dispatch_to_the_standin(standin):
    x = standin.arange(4, dtype=standin.float32)
    for result in (np.sum(x), np.exp(x), np.concatenate([x, x]), np.maximum(x, 1), np.where(x > 1, x, 0)):
        assert isinstance(result, standin.ndarray)
    np.testing.assert_allclose(np.exp(x).get(), np.exp(np.arange(4, dtype=np.float32)))


def test_two_devices_with_a_current_one(standin):
    assert standin.cuda.runtime.getDeviceCount() == 2
    assert standin.cuda.Device().id == 0
    with standin.cuda.Device(1):
        on_one = standin.zeros(3)
        assert on_one.device.id == 1
        assert (on_one + 1).device.id == 1
    on_zero = standin.zeros(3)
    with pytest.raises(ValueError, match="current device"):
        on_one + on_zero
    with pytest.raises(ValueError, match="current device"):
        on_one * 2  # device 0 is current again
    with pytest.raises(RuntimeError, match="invalid device"):
        standin.cuda.Device(2)
    moved = standin.asarray(on_one)  # a peer copy to the current device
    assert moved.device.id == 0


def test_allow_synchronize_refuses_host_syncs(standin):
    x = standin.ones(3)
    with standin.cupyx.allow_synchronize(False):
        y = (x * 2).sum()  # launches are fine
        for sync in (lambda: float(y), lambda: y.item(), lambda: x.get(), lambda: bool(y > 0),
                     lambda: standin.cuda.get_current_stream().synchronize()):
            with pytest.raises(standin.cupyx.DeviceSynchronized):
                sync()
    assert float(y) == 6.0


def test_counters_of_launches_syncs_and_transfers(standin):
    host = np.ones((2, 3), np.float32)
    x = standin.asarray(host)
    assert standin.COUNTERS == {"launches": 0, "syncs": 0, "to_device": 1, "to_host": 0}
    y = (x * 2 + 1).sum(axis=0)  # three kernels
    view = x.reshape(3, 2).T[0]  # views launch nothing
    assert standin.COUNTERS["launches"] == 3
    y.get()
    assert standin.COUNTERS == {"launches": 3, "syncs": 1, "to_device": 1, "to_host": 1}
    assert view.shape == (3,)


def test_elementwise_kernel_runs_its_numpy_twin_as_one_launch(standin):
    kernel = standin.ElementwiseKernel("T g, T lr", "T w, T v", "v = 0.9f * v - lr * g; w += v;", "sgd")
    w, v = standin.ones(4, dtype=standin.float32), standin.full(4, 0.5, dtype=standin.float32)
    g = standin.arange(4, dtype=standin.float32)
    standin.reset_counters()
    kernel(g, 0.1, w, v)
    assert standin.COUNTERS["launches"] == 1
    expected_v = np.float32(0.9) * np.float32(0.5) - np.float32(0.1) * np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(v.get(), expected_v)
    np.testing.assert_array_equal(w.get(), 1 + expected_v)
    assert w.dtype == np.float32
    with pytest.raises(NotImplementedError):
        standin.ElementwiseKernel("T x", "T y", "if (x > 0) y = x;", "branchy")
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel(np.ones(4, np.float32), 0.1, w, v)


def test_fuse_counts_one_launch(standin):
    @standin.fuse()
    def axpy(a, x, y):
        return a * x + y

    x = standin.ones(3, dtype=standin.float32)
    standin.reset_counters()
    np.testing.assert_array_equal(axpy(2, x, x).get(), [3, 3, 3])
    assert standin.COUNTERS["launches"] == 1


def test_seeded_generator_on_the_device(standin):
    first = standin.random.default_rng(7).random((3, 4), dtype=standin.float32)
    again = standin.random.default_rng(7).random((3, 4), dtype=standin.float32)
    assert isinstance(first, standin.ndarray) and first.dtype == np.float32
    np.testing.assert_array_equal(first.get(), again.get())
    # A different stream than NumPy's for the same seed, as on a real GPU.
    assert not np.array_equal(first.get(), np.random.default_rng(7).random((3, 4), dtype=np.float32))


def test_recorded_api_is_from_the_real_cupy(standin):
    import json
    from pathlib import Path

    record = json.loads((Path(standin.__file__).with_name("cupy_api.json")).read_text())
    assert record["recorded_from"].startswith("cupy ")
    assert {"cupy", "cupy.cuda", "cupyx", "cupy.ndarray"} <= set(record["api"])
    assert "ElementwiseKernel" in record["api"]["cupy"] and "allow_synchronize" in record["api"]["cupyx"]


def test_scatter_add_sums_repeated_indices(standin):
    a = standin.zeros((2, 5), dtype=standin.float32)
    rows = standin.asarray(np.array([[0, 1, 1], [3, 3, 4]]))
    standin.cupyx.scatter_add(a, (slice(None), rows), standin.ones((2, 2, 3), dtype=standin.float32))
    expected = np.zeros((2, 5), np.float32)
    np.add.at(expected, (slice(None), np.array([[0, 1, 1], [3, 3, 4]])), 1)
    np.testing.assert_array_equal(a.get(), expected)
