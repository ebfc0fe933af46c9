"""Tests for minifcn.backend: device names, device checks, moving arrays, the array module."""

import numpy as np
import pytest

from minifcn import backend
from minifcn.backend import DeviceUnavailableError


def device_for(xp):
    """The device name whose arrays use the array module ``xp``."""
    return "cpu" if xp is np else "gpu"


@pytest.fixture
def no_cupy(monkeypatch):
    """Make the backend believe CuPy failed to import, whatever this machine has."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_import_error", ModuleNotFoundError("No module named 'cupy'"))


@pytest.fixture
def with_fake_cupy(monkeypatch, cupy_backend):
    """Put the CuPy stand-in in the backend with a chosen device count (or a runtime error raised when
    counting); returns the installer."""

    def install(device_count):
        if isinstance(device_count, Exception):
            def get_device_count():
                raise device_count

            monkeypatch.setattr(cupy_backend.cuda.runtime, "getDeviceCount", get_device_count)
        else:
            monkeypatch.setattr(cupy_backend.State, "device_count", device_count)

    return install


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cpu", ("cpu", None)),
        ("CPU", ("cpu", None)),
        (" cpu ", ("cpu", None)),
        ("gpu", ("gpu", None)),
        ("gpu:0", ("gpu", 0)),
        ("gpu:1", ("gpu", 1)),
        ("cuda", ("gpu", None)),
        ("cuda:0", ("gpu", 0)),
        ("GPU:12", ("gpu", 12)),
    ],
)
def test_parse_device_accepts_known_names(name, expected):
    """cpu, gpu, gpu:N and the cuda spellings parse to (kind, index)."""
    assert backend.parse_device(name) == expected


@pytest.mark.parametrize("name", ["tpu", "", "gpu:", "gpu:-1", "gpu:x", "cpu:0", "gpu1", "gpu:1:2", "mps", None, 0])
def test_parse_device_rejects_bad_names(name):
    """Anything that is not cpu, gpu, gpu:N or cuda[:N] is a ValueError that repeats the bad name."""
    with pytest.raises(ValueError, match=r"cpu.*gpu") as info:
        backend.parse_device(name)
    assert repr(name) in str(info.value)


def test_check_device_cpu():
    """The CPU is always usable and has the canonical name "cpu"."""
    assert backend.check_device("cpu") == "cpu"
    assert backend.check_device(" CPU") == "cpu"


def test_check_device_rejects_bad_name():
    """A malformed name is a ValueError, not a DeviceUnavailableError."""
    with pytest.raises(ValueError, match="unknown device"):
        backend.check_device("gpu:two")


def test_check_device_gpu_on_this_machine():
    """Where no GPU is usable, asking for one raises DeviceUnavailableError saying what to install."""
    if backend.gpu_available():
        assert backend.check_device("gpu") == "gpu"
        return
    with pytest.raises(DeviceUnavailableError, match="install") as info:
        backend.check_device("gpu")
    message = str(info.value)
    assert "'gpu'" in message
    if backend.cupy_or_none() is None:
        assert "pip install" in message and "cupy" in message.lower()


@pytest.mark.parametrize("name", ["gpu", "gpu:0", "cuda:1"])
def test_check_device_without_cupy_says_what_to_install(no_cupy, name):
    """With CuPy missing, the error names the device, the import failure and the pip command."""
    with pytest.raises(DeviceUnavailableError) as info:
        backend.check_device(name)
    message = str(info.value)
    assert repr(name) in message
    assert "No module named 'cupy'" in message
    assert "pip install" in message and "cupy-cuda" in message


def test_gpu_available_is_false_without_cupy(no_cupy):
    """gpu_available never raises; without CuPy it is False."""
    assert backend.gpu_available() is False


def test_to_device_gpu_without_cupy_never_falls_back(no_cupy):
    """Moving to the GPU without CuPy raises instead of silently returning a CPU array."""
    with pytest.raises(DeviceUnavailableError, match="pip install"):
        backend.to_device(np.zeros(3), "gpu")


@pytest.mark.parametrize(
    "count, name, match",
    [
        (0, "gpu", "there is no CUDA device"),
        (RuntimeError("cudaErrorNoDevice"), "gpu", "no CUDA device is usable.*cudaErrorNoDevice"),
        (1, "gpu:1", r"only 1 CUDA device\(s\), numbered 0\.\.0"),
        (2, "gpu:5", r"only 2 CUDA device\(s\), numbered 0\.\.1"),
    ],
)
def test_check_device_with_cupy_but_no_usable_device(with_fake_cupy, count, name, match):
    """CuPy present but no (or too few) CUDA devices is a DeviceUnavailableError naming the reason."""
    with_fake_cupy(count)
    with pytest.raises(DeviceUnavailableError, match=match):
        backend.check_device(name)
    assert backend.gpu_available() is (not isinstance(count, Exception) and count > 0)


@pytest.mark.parametrize("name, canonical", [("gpu", "gpu"), ("cuda:1", "gpu:1"), ("gpu:0", "gpu:0")])
def test_check_device_with_devices_returns_canonical_name(with_fake_cupy, name, canonical):
    """With enough CUDA devices, check_device returns the canonical gpu / gpu:N name."""
    with_fake_cupy(2)
    assert backend.check_device(name) == canonical


def test_to_device_cpu_returns_numpy_without_copy():
    """to_device(x, "cpu") of a NumPy array is that very array; of a list, a NumPy array."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert backend.to_device(x, "cpu") is x
    moved = backend.to_device([[1.0, 2.0]], "cpu")
    assert isinstance(moved, np.ndarray)
    np.testing.assert_array_equal(moved, [[1.0, 2.0]])


def test_to_device_rejects_bad_name():
    """A malformed device name is a ValueError from to_device too."""
    with pytest.raises(ValueError, match="unknown device"):
        backend.to_device(np.zeros(2), "gpu-0")


def test_to_numpy_of_numpy_is_a_no_op():
    """to_numpy returns a NumPy array as it is (no copy)."""
    x = np.ones((2, 2), np.float32)
    assert backend.to_numpy(x) is x


def test_get_array_module_of_numpy_is_numpy():
    """NumPy arrays, scalars, and no arguments at all give numpy."""
    assert backend.get_array_module(np.zeros(3)) is np
    assert backend.get_array_module(np.zeros(3), np.ones(2)) is np
    assert backend.get_array_module(np.float32(1)) is np
    assert backend.get_array_module() is np


def test_round_trip_on_each_backend(xp):
    """to_device puts an array on the xp backend, get_array_module sees it, to_numpy brings it back intact."""
    host = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    device = device_for(xp)
    moved = backend.to_device(host, device)
    assert backend.get_array_module(moved) is xp
    assert backend.get_array_module(host, moved) is xp
    assert backend.device_of(moved) == ("cpu" if xp is np else f"gpu:{moved.device.id}")
    back = backend.to_numpy(moved)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host)
    assert backend.to_device(moved, device) is moved


def test_check_device_runs_a_kernel_and_says_what_is_missing(cupy_backend):
    """A driver without NVRTC counts its devices but cannot compile a kernel: check_device finds that
    with one tiny kernel and a product, and says in one line what to install."""
    cupy_backend.State.kernel_failure = RuntimeError("CompileException: nvrtc: libnvrtc.so.12 not found\nmore")
    with pytest.raises(DeviceUnavailableError) as info:
        backend.check_device("gpu")
    message = str(info.value)
    assert "cannot run a kernel" in message and "[ctk]" in message and "libnvrtc" in message
    assert "\n" not in message
    assert backend.gpu_available() is False
    cupy_backend.State.kernel_failure = None
    assert backend.check_device("gpu") == "gpu"


def test_get_array_module_sees_cupy_imported_by_the_script(monkeypatch, standin):
    """A script that imports CuPy itself and calls an op with its arrays gets CuPy, although nothing
    went through the backend's device check first."""
    monkeypatch.setenv("MINIFCN_CUPY", "standin")
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_import_error", None)
    x = standin.ones((2, 3), dtype=standin.float32)
    assert backend.get_array_module(x) is standin
    from minifcn.ops.relu import relu

    y, _ = relu(x)
    assert isinstance(y, standin.ndarray)


def test_gpu_n_stays_current_for_the_arrays_the_ops_create(cupy_backend):
    """Data moved to gpu:1 makes device 1 current, so arrays the ops create land beside it."""
    from minifcn.ops.relu import relu

    x = backend.to_device(np.ones((2, 3), np.float32), "gpu:1")
    assert backend.device_of(x) == "gpu:1"
    y, _ = relu(x - 2)
    assert backend.device_of(y) == "gpu:1" and backend.device_of(cupy_backend.zeros(2)) == "gpu:1"
    cupy_backend.cuda.Device(0).use()
