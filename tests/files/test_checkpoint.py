"""minifcn.files.checkpoint: round trips, pickle-free files, atomic writes, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest

from minifcn.files import checkpoint as ckpt
from minifcn.files.checkpoint import (
    PREPROCESSING_CAFFE_FCN,
    PREPROCESSING_TORCHVISION,
    CheckpointError,
    describe_mismatch,
    load_checkpoint,
    make_metadata,
    save_checkpoint,
    summarize_mismatch,
)


def _metadata(**changes):
    fields = dict(options={"width": 1.0, "fc_channels": 8, "geometry": "reference"}, num_classes=3,
                  class_names=["sky", "road", "car"], class_colors=[[0, 0, 255], [128, 64, 128], [64, 0, 128]])
    fields.update(changes)
    return make_metadata("fcn8s", PREPROCESSING_CAFFE_FCN, **fields)


def _state(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "conv1_1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv1_1.bias": rng.standard_normal(4).astype(np.float32),
        "score_fr.weight": np.zeros((3, 8, 1, 1), np.float32),
        "counter": np.array(7, np.int64),
    }


def _leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def test_round_trip_keeps_arrays_metadata_and_extras(tmp_path):
    path = tmp_path / "model.npz"
    state = _state()
    extra = {"momentum/conv1_1.weight": np.ones((4, 3, 3, 3), np.float32), "rng": np.arange(3, dtype=np.uint64)}
    training = {"epoch": np.int64(3), "iteration": 1200, "best_mean_iu": np.float32(0.5), "loss": [1.0, 0.5]}
    written = save_checkpoint(path, state, _metadata(training=training, source={"format": "test"}), extra)
    loaded = load_checkpoint(path)
    assert list(loaded.state) == list(state)
    for name, array in state.items():
        assert loaded.state[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.state[name], array)
    assert set(loaded.extra) == set(extra)
    np.testing.assert_array_equal(loaded.extra["rng"], extra["rng"])
    assert loaded.metadata == written
    assert loaded.metadata["format"] == "minifcn-checkpoint" and loaded.metadata["version"] == 1
    assert loaded.metadata["training"] == {"epoch": 3, "iteration": 1200, "best_mean_iu": 0.5, "loss": [1.0, 0.5]}
    assert loaded.arch == "fcn8s" and loaded.num_classes == 3
    assert loaded.preprocessing["channel_order"] == "BGR"
    assert loaded.path == str(path)


def test_device_arrays_are_saved_from_the_host(tmp_path, xp):
    # Models on the GPU hand over CuPy arrays; the checkpoint holds NumPy ones.
    weight = xp.arange(6, dtype=xp.float32).reshape(2, 3)
    save_checkpoint(tmp_path / "device.npz", {"w": weight}, _metadata())
    loaded = load_checkpoint(tmp_path / "device.npz").state["w"]
    assert isinstance(loaded, np.ndarray)
    np.testing.assert_array_equal(loaded, np.arange(6, dtype=np.float32).reshape(2, 3))


def test_file_is_a_plain_npz_that_needs_no_pickle(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, _state(), _metadata())
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == set(_state()) | {"__metadata__"}
        raw = npz["__metadata__"]
        assert raw.dtype == np.uint8 and raw.ndim == 1
        assert json.loads(raw.tobytes().decode("utf-8"))["arch"] == "fcn8s"
    # A metadata entry stored as a NumPy string (another writer's choice) loads as well.
    meta = json.dumps(_metadata())
    np.savez(tmp_path / "str.npz", __metadata__=np.array(meta), w=np.ones(2))
    assert load_checkpoint(tmp_path / "str.npz").state["w"].shape == (2,)


def test_saving_refuses_what_could_not_load_cleanly(tmp_path):
    path = tmp_path / "model.npz"
    with pytest.raises(CheckpointError, match="arch must be one of"):
        save_checkpoint(path, _state(), {**_metadata(), "arch": "resnet"})
    with pytest.raises(CheckpointError, match="class_names has 2 entries for 3 classes"):
        _metadata(class_names=["a", "b"])
    with pytest.raises(CheckpointError, match="channel_order"):
        make_metadata("vgg16", {**PREPROCESSING_TORCHVISION, "channel_order": "rgb"})
    with pytest.raises(CheckpointError, match="not JSON serialisable"):
        _metadata(training={"when": object()})
    with pytest.raises(CheckpointError, match="dtype object"):
        save_checkpoint(path, {"w": np.array([{}], dtype=object)}, _metadata())
    for name in ("__metadata__", "../escape", "/abs", "a//b", ""):
        with pytest.raises(CheckpointError, match="array name"):
            save_checkpoint(path, {name: np.ones(1)}, _metadata())
    assert not path.exists() and _leftovers(tmp_path) == []
    # A bare VGG16 trunk has no classes.
    save_checkpoint(path, _state(), make_metadata("vgg16", PREPROCESSING_TORCHVISION))
    assert load_checkpoint(path).num_classes is None


def test_write_failure_leaves_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_checkpoint(path, _state(0), _metadata())
    before = path.read_bytes()
    write_array = np.lib.format.write_array
    calls = []

    def fail_on_second_array(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", fail_on_second_array)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, _state(1), _metadata())
    monkeypatch.undo()
    assert path.read_bytes() == before and _leftovers(tmp_path) == []

    def fail_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(PermissionError):
        save_checkpoint(path, _state(1), _metadata())
    monkeypatch.undo()
    assert path.read_bytes() == before and _leftovers(tmp_path) == []

    def interrupt_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _state(1), _metadata())
    monkeypatch.undo()
    assert path.read_bytes() == before and _leftovers(tmp_path) == []
    np.testing.assert_array_equal(load_checkpoint(path).state["conv1_1.bias"], _state(0)["conv1_1.bias"])


def test_overwrite_false_and_missing_directory(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, _state(0), _metadata())
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_checkpoint(path, _state(1), _metadata(), overwrite=False)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []
    save_checkpoint(tmp_path / "new.npz", _state(1), _metadata(), overwrite=False)
    assert load_checkpoint(tmp_path / "new.npz").state.keys() == _state().keys()
    save_checkpoint(path, _state(1), _metadata())  # overwrite=True replaces
    assert path.read_bytes() != before
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "such" / "dir.npz", _state(), _metadata())


def test_overwrite_false_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # e.g. some network or FAT filesystems

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "model.npz"
    save_checkpoint(path, _state(0), _metadata(), overwrite=False)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_checkpoint(path, _state(1), _metadata(), overwrite=False)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def _rewrite_metadata(src, dst, text):
    with zipfile.ZipFile(src) as source, zipfile.ZipFile(dst, "w") as target:
        for info in source.infolist():
            if info.filename == "__metadata__.npy":
                with target.open("__metadata__.npy", "w") as member:
                    np.lib.format.write_array(member, np.frombuffer(text.encode(), np.uint8))
            else:
                target.writestr(info, source.read(info))


def test_bad_files_raise_one_clear_checkpoint_error(tmp_path):
    good = tmp_path / "good.npz"
    save_checkpoint(good, _state(), _metadata())
    data = good.read_bytes()
    cases = {}

    def case(name, content, match):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        cases[path] = match

    case("random.npz", np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes(), "not an .npz")
    case("empty.npz", b"", "not an .npz")
    case("truncated.npz", data[: len(data) // 2], "not an .npz|truncated")
    flipped = bytearray(data)
    flipped[200] ^= 0xFF  # inside conv1_1.weight's values
    case("flipped.npz", bytes(flipped), "corrupt or truncated")
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    case("plain.npz", None, "no __metadata__ entry")
    np.savez(tmp_path / "pickled.npz", w=np.array([{}], dtype=object), __metadata__=np.frombuffer(b"{}", np.uint8))
    case("pickled.npz", None, "corrupt or truncated .*allow_pickle")
    for name, text, match in (
        ("badjson.npz", "{not json", "not valid JSON"),
        ("format.npz", json.dumps({**_metadata(), "format": "other"}), "format 'other'"),
        ("newer.npz", json.dumps({**_metadata(), "version": 99}), "newer minifcn"),
        ("invalid.npz", json.dumps({**_metadata(), "num_classes": 0}), "invalid metadata: num_classes"),
        ("list.npz", "[1, 2]", "not a minifcn checkpoint"),
    ):
        _rewrite_metadata(good, tmp_path / name, text)
        cases[tmp_path / name] = match
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as zf:
        zf.writestr("__metadata__.npy", good.read_bytes()[:0])
        zf.writestr("notes.txt", b"hello")
    case("raw.npz", None, "not a .npy array|corrupt")
    case("absent.npz", None, "no such file")

    for path, match in cases.items():
        with pytest.raises(CheckpointError, match=match) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message, message
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    assert issubclass(CheckpointError, ValueError)


def test_describe_mismatch_lists_missing_shape_and_unexpected():
    expected = {"conv1_1.weight": (4, 3, 3, 3), "conv1_1.bias": (4,), "fc6.weight": (8, 4, 7, 7)}
    state = {"conv1_1.weight": np.zeros((4, 3, 3, 3)), "fc6.weight": np.zeros((8, 196)), "extra": np.zeros(2)}
    problems = describe_mismatch(expected, state)
    assert problems == [
        "missing conv1_1.bias (expected shape (4,))",
        "shape mismatch for fc6.weight: expected (8, 4, 7, 7), got (8, 196)",
        "unexpected extra (shape (2,))",
    ]
    assert describe_mismatch(expected, {n: np.zeros(s) for n, s in expected.items()}) == []
    line = summarize_mismatch(problems, limit=2)
    assert line.endswith("; and 1 more") and "\n" not in line


def test_checkpoint_module_does_not_import_models():
    # Models import checkpoint helpers, not the other way round (no import cycle, no heavy import).
    source = open(ckpt.__file__).read()
    assert "minifcn.models" not in source and "from ..models" not in source


def _forged(path, good, name, declared_shape, dtype="<f4", compress=False, payload=None):
    """A copy of the checkpoint ``good`` with one more member ``name`` whose .npy header declares
    ``declared_shape``; it holds ``payload`` bytes (default 1 KB), streamed in, never held in memory."""
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(declared_shape)}
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(
            path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED, allowZip64=True) as zf:
        for info in source.infolist():
            zf.writestr(info.filename, source.read(info))
        with zf.open(name + ".npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            remaining = 1024 if payload is None else payload
            chunk = bytes(1 << 22)
            while remaining > 0:
                member.write(chunk[:remaining])
                remaining -= len(chunk)


def _peak_traced_bytes(function):
    import tracemalloc  # NumPy reports its array allocations to tracemalloc

    tracemalloc.start()
    try:
        function()
    except CheckpointError as error:
        return tracemalloc.get_traced_memory()[1], str(error)
    finally:
        tracemalloc.stop()
    pytest.fail("no CheckpointError")


def test_a_header_declaring_more_than_its_member_holds_is_refused_before_allocating(tmp_path):
    """2 GB declared in a 1 KB member: refused from the header, with nothing near that allocated."""
    good = tmp_path / "good.npz"
    save_checkpoint(good, _state(), _metadata())
    bomb = tmp_path / "bomb.npz"
    _forged(bomb, good, "conv1_2.weight", (20000, 25000))
    peak, message = _peak_traced_bytes(lambda: load_checkpoint(bomb))
    assert "declares shape (20000, 25000)" in message and "holds 1024 bytes" in message
    assert peak < 20 * 2**20, peak


def test_declared_shapes_are_checked_against_the_architecture_before_reading(tmp_path):
    """A deflated member truly holding 400 MB (of zeros, a few hundred KB on disk) is refused from its
    header when the network the metadata names has no such array: with ``shapes``, nothing is read."""
    good = tmp_path / "good.npz"
    save_checkpoint(good, _state(), _metadata())
    bomb = tmp_path / "zeros.npz"
    _forged(bomb, good, "__extra__/optimizer/m/conv1_1.weight", (100_000_000,), compress=True,
            payload=400_000_000)
    assert bomb.stat().st_size < 4 * 2**20

    def shapes(metadata):
        return {"conv1_1.weight": (4, 3, 3, 3), "conv1_1.bias": (4,), "score_fr.weight": (3, 8, 1, 1)}

    peak, message = _peak_traced_bytes(lambda: load_checkpoint(bomb, shapes=shapes))
    assert "larger than any parameter" in message
    assert peak < 20 * 2**20, peak
    forged_shape = tmp_path / "shape.npz"
    state = dict(_state())
    state["conv1_1.weight"] = np.zeros((4, 3, 3, 4), np.float32)
    save_checkpoint(forged_shape, state, _metadata())
    with pytest.raises(CheckpointError, match=r"shape mismatch for conv1_1.weight: expected \(4, 3, 3, 3\)"):
        load_checkpoint(forged_shape, shapes=shapes)
    integer = tmp_path / "integer.npz"
    state["conv1_1.weight"] = np.zeros((4, 3, 3, 3), np.int64)
    save_checkpoint(integer, state, _metadata())
    with pytest.raises(CheckpointError, match="not floating point"):
        load_checkpoint(integer, shapes=shapes)
    with pytest.raises(CheckpointError, match="no network"):
        load_checkpoint(good, shapes=lambda metadata: (_ for _ in ()).throw(ValueError("no network")))
    assert load_checkpoint(good, shapes=shapes).state.keys() == _state().keys()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_weights_are_refused_at_load(tmp_path, value):
    path = tmp_path / "diverged.npz"
    state = _state()
    state["conv1_1.weight"][1, 2, 0, 0] = value
    save_checkpoint(path, state, _metadata())
    with pytest.raises(CheckpointError, match="conv1_1.weight holds NaN or infinite values") as info:
        load_checkpoint(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    extra_path = tmp_path / "diverged_optimizer.npz"
    save_checkpoint(extra_path, _state(), _metadata(), {"optimizer/m/fc6.weight": np.full(3, value, np.float32)})
    with pytest.raises(CheckpointError, match="optimizer/m/fc6.weight holds NaN"):
        load_checkpoint(extra_path)
