"""minifcn.files.pth: torch checkpoints read exactly, hostile ones refused without running anything."""

import copyreg
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from minifcn.files.pth import RefusedGlobalError, UnsafeOrCorruptPthError, load_pth, load_pth_object

from ..pth_files import (
    float_bytes,
    full_size_vgg16_file,
    p_call,
    p_dict,
    p_global,
    p_int,
    p_str,
    p_tensor,
    p_tuple,
    pickle_of,
    write_torch_zip,
)

# --- files written by torch.save --------------------------------------------------------------------


@pytest.mark.torch
def test_full_size_torchvision_vgg16_reads_back_exactly(torch, tmp_path_factory):
    path, expected = full_size_vgg16_file(torch, tmp_path_factory)
    state = load_pth(path)
    assert list(state) == list(expected)  # the file's order is kept
    for name, array in state.items():
        assert array.dtype == expected[name].dtype and array.shape == expected[name].shape, name
        assert array.flags.c_contiguous and array.flags.writeable
        assert np.array_equal(array, expected[name]), name  # exact; cheaper than assert_array_equal here
    assert state["classifier.0.weight"].shape == (4096, 25088)


@pytest.mark.torch
def test_strided_views_dtypes_and_shared_storages(torch, tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    shared = torch.arange(10, dtype=torch.float32)
    tensors = {
        "base": base,
        "transposed": base.T,  # same storage, non-contiguous
        "sliced": base[1:, ::2],  # offset and strides
        "expanded": torch.tensor([7.0]).expand(3, 5),  # stride 0
        "head": shared[:4],
        "tail": shared[6:],  # two views of one storage
        "half": torch.linspace(-2, 2, 7, dtype=torch.float16),
        "double": torch.tensor([[1.5, -2.25], [1e-300, 3.0]], dtype=torch.float64),
        "long": torch.tensor([2**40, -3, 0], dtype=torch.int64),
        "int": torch.tensor([1, -2], dtype=torch.int32),
        "uint8": torch.tensor([0, 255], dtype=torch.uint8),
        "int8": torch.tensor([-128, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "bfloat16": torch.tensor([1.0, -0.5, 3.140625], dtype=torch.bfloat16),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
        "complex": torch.tensor([1 + 2j], dtype=torch.complex64),
    }
    path = tmp_path / "mixed.pth"
    torch.save(tensors, path)
    state = load_pth(path)
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        reference = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert state[name].shape == reference.shape, name
        assert state[name].dtype == reference.dtype, name
        assert state[name].flags.c_contiguous, name
        np.testing.assert_array_equal(state[name], reference, err_msg=name)
    assert state["bfloat16"].dtype == np.float32  # widened exactly
    # Views of one storage come back as arrays of their own: writing one leaves the others alone.
    state["head"][0] = 100
    assert state["tail"][0] == 6 and state["base"][0, 0] == 0


@pytest.mark.torch
def test_newer_dtypes_saved_as_untyped_storages(torch, tmp_path):
    # torch >= 2.3 writes uint16/32/64 (and float8) through _rebuild_tensor_v3 and an untyped storage.
    path = tmp_path / "unsigned.pth"
    u16 = torch.tensor([1, 2, 65535], dtype=torch.int32).to(torch.uint16)
    u32 = torch.tensor([7, 2**32 - 1], dtype=torch.int64).to(torch.uint32)
    torch.save({"u16": u16[1:], "u32": u32}, path)
    state = load_pth(path)
    assert state["u16"].dtype == np.uint16 and state["u16"].tolist() == [2, 65535]
    assert state["u32"].dtype == np.uint32 and state["u32"].tolist() == [7, 2**32 - 1]
    torch.save({"f8": torch.zeros(2, dtype=torch.float8_e4m3fn)}, tmp_path / "f8.pth")
    with pytest.raises(UnsafeOrCorruptPthError, match="float8_e4m3fn, which NumPy cannot represent"):
        load_pth(tmp_path / "f8.pth")


@pytest.mark.torch
def test_training_checkpoint_is_unwrapped_and_object_keeps_structure(torch, tmp_path):
    weight, bias = torch.randn(2, 3), torch.randn(2)
    model = {"weight": weight, "bias": bias}
    # What torch.optim.SGD(...).state_dict() holds after a step with momentum.
    optimizer = {"state": {0: {"momentum_buffer": weight * 0.5}, 1: {"momentum_buffer": None}},
                 "param_groups": [{"lr": 0.1, "momentum": 0.9, "nesterov": False, "params": [0, 1]}]}
    for key in ("state_dict", "model_state_dict", "model"):
        path = tmp_path / f"{key}.pth"
        torch.save({key: model, "optimizer": optimizer, "epoch": 4, "best": 0.25, "arch": "fcn8s"}, path)
        state = load_pth(path)
        assert list(state) == ["weight", "bias"]
        np.testing.assert_array_equal(state["weight"], weight.numpy())
    obj = load_pth_object(tmp_path / "model.pth")
    assert obj["epoch"] == 4 and obj["best"] == 0.25 and obj["arch"] == "fcn8s"
    np.testing.assert_array_equal(obj["optimizer"]["state"][0]["momentum_buffer"], (weight * 0.5).numpy())
    assert obj["optimizer"]["state"][1]["momentum_buffer"] is None
    assert obj["optimizer"]["param_groups"][0]["lr"] == 0.1


@pytest.mark.torch
def test_same_tensor_twice_and_big_endian_archive(torch, tmp_path):
    weight = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    path = tmp_path / "tied.pth"
    torch.save({"a": weight, "b": weight, "c": weight[1]}, path)
    state = load_pth(path)
    np.testing.assert_array_equal(state["b"], weight.numpy())
    np.testing.assert_array_equal(state["c"], weight[1].numpy())

    # The same archive as a big-endian machine would write it: byteorder "big", storages byte-swapped.
    swapped = tmp_path / "big.pth"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(swapped, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, "<f8").astype(">f8").tobytes()
            target.writestr(info.filename, data)
    big = load_pth(swapped)
    assert big["a"].dtype.isnative
    np.testing.assert_array_equal(big["a"], weight.numpy())


@pytest.mark.torch
def test_legacy_and_truncated_torch_files_are_refused(torch, tmp_path):
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeOrCorruptPthError, match="re-save it with a recent torch"):
        load_pth(legacy)

    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(1000)}, good)
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        truncated = tmp_path / f"cut{cut}.pth"
        truncated.write_bytes(data[:cut])
        with pytest.raises(UnsafeOrCorruptPthError) as info:
            load_pth(truncated)
        assert str(truncated) in str(info.value) and "\n" not in str(info.value)

    # A flipped byte inside a storage is caught by the CRC check.
    corrupted = bytearray(data)
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
    # torch pads the local header's extra field to align storages, so read its length from there.
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    corrupted[info.header_offset + 30 + name_length + extra_length + 8] ^= 0xFF
    flipped = tmp_path / "flipped.pth"
    flipped.write_bytes(bytes(corrupted))
    with pytest.raises(UnsafeOrCorruptPthError, match="CRC"):
        load_pth(flipped)


# --- crafted files: the reader itself ---------------------------------------------------------------


def test_crafted_file_round_trip(tmp_path):
    path = write_torch_zip(
        tmp_path / "ok.pth",
        pickle_of(p_dict(w=p_tensor("0", 6, 0, (2, 3), (3, 1)), t=p_tensor("0", 6, 1, (2, 2), (1, 3)))),
        {"0": float_bytes(range(6))},
    )
    state = load_pth(path)
    np.testing.assert_array_equal(state["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(state["t"], np.array([[1, 4], [2, 5]], np.float32))


# --- hostile pickles ---------------------------------------------------------------------------------


def _assert_refused(path, marker, match):
    with pytest.raises(UnsafeOrCorruptPthError, match=match) as info:
        load_pth(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert not marker.exists(), "the payload ran"
    return info.value


def _touch_command(marker):
    return f"touch {marker}"


class _SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalCall:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def test_os_system_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    # Hidden inside an otherwise ordinary state dict, as a real attack would be.
    payload = pickle.dumps({"weight": _SystemCall(_touch_command(marker))}, protocol=2)
    path = write_torch_zip(tmp_path / "system.pth", payload)
    error = _assert_refused(path, marker, r"(posix|os|nt)\.system")
    assert isinstance(error, RefusedGlobalError)
    pickle.loads(payload)  # the payload is live: unpickled naively it does run
    assert marker.exists()


def test_builtins_eval_and_old_builtin_module_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    path = write_torch_zip(tmp_path / "eval.pth", pickle.dumps(_EvalCall(code), protocol=4))  # STACK_GLOBAL
    _assert_refused(path, marker, r"builtins\.eval")
    # Python 2's module name, which pickle maps to builtins for old protocols.
    old = pickle_of(p_call(p_global("__builtin__", "eval"), p_str(code.replace("'", '"'))))
    path = write_torch_zip(tmp_path / "builtin.pth", old)
    _assert_refused(path, marker, r"__builtin__\.eval")


def test_nested_reduce_inside_an_allowed_call_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    # _rebuild_tensor_v2(storage, os.system("touch ..."), ...): the inner global fails before any call.
    inner = p_call(p_global("os", "system"), p_str(_touch_command(marker)))
    payload = pickle_of(p_call(p_global("torch._utils", "_rebuild_tensor_v2"), inner, p_int(0)))
    path = write_torch_zip(tmp_path / "nested.pth", payload)
    _assert_refused(path, marker, r"os\.system")


def test_getattr_chains_and_dotted_names_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    # getattr(__import__("os"), "system")("touch ...")
    os_module = p_call(p_global("builtins", "__import__"), p_str("os"))
    chain = p_call(p_call(p_global("builtins", "getattr"), os_module, p_str("system")), p_str(_touch_command(marker)))
    _assert_refused(write_torch_zip(tmp_path / "getattr.pth", pickle_of(chain)), marker, r"builtins\.getattr")
    # Protocol 4 resolves dotted names attribute by attribute; an allowed module must not open that door.
    for module, name in (("collections", "OrderedDict.__init__.__globals__"),
                         ("torch._utils", "_rebuild_tensor_v2.__globals__"),
                         ("torch", "FloatStorage.__class__")):
        payload = b"\x80\x04" + _short_unicode(module) + _short_unicode(name) + b"\x93."  # STACK_GLOBAL
        path = write_torch_zip(tmp_path / "dotted.pth", payload)
        _assert_refused(path, marker, "refused")


def _short_unicode(text):
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def test_inst_and_extension_registry_opcodes_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    inst = b"(" + p_str(_touch_command(marker)) + b"ios\nsystem\n."  # INST: old-style class instantiation
    _assert_refused(write_torch_zip(tmp_path / "inst.pth", inst), marker, r"os\.system")
    copyreg.add_extension("os", "system", 0xF1)  # as if something in the process had registered it
    try:
        payload = b"\x80\x02\x82\xf1" + p_tuple(p_str(_touch_command(marker))) + b"R."
        _assert_refused(write_torch_zip(tmp_path / "ext.pth", payload), marker, r"os\.system")
    finally:
        copyreg.remove_extension("os", "system", 0xF1)


def test_calling_or_mutating_the_allowed_objects_is_refused(tmp_path):
    storage = {"0": float_bytes(range(4))}
    # BUILD on a validated tensor would move its offset past the checks.
    build = p_tensor("0", 4, 0, (4,), (1,)) + b"(N(dS'offset'\nI100\nstb."
    with pytest.raises(UnsafeOrCorruptPthError, match="modify a tensor"):
        load_pth(write_torch_zip(tmp_path / "build.pth", build, storage))
    call_storage = pickle_of(p_call(p_global("torch", "FloatStorage"), p_int(10)))
    with pytest.raises(UnsafeOrCorruptPthError, match="calls torch.FloatStorage"):
        load_pth(write_torch_zip(tmp_path / "call.pth", call_storage))
    bad_pid = pickle_of(p_tuple(p_str("storage"), p_global("torch", "FloatStorage"), p_str("../x"), p_str("cpu"),
                                p_int(1)) + b"Q")
    with pytest.raises(UnsafeOrCorruptPthError, match="invalid key"):
        load_pth(write_torch_zip(tmp_path / "pid.pth", bad_pid))
    text_pid = pickle_of(b"P0\n")  # protocol-0 persistent id: a string, never what torch writes
    with pytest.raises(UnsafeOrCorruptPthError, match="persistent id"):
        load_pth(write_torch_zip(tmp_path / "pid0.pth", text_pid))


def test_self_referencing_and_exponential_structures(tmp_path):
    # A list that contains itself.
    cyclic = b"(lp0\ng0\na."
    with pytest.raises(UnsafeOrCorruptPthError, match="holds itself"):
        load_pth_object(write_torch_zip(tmp_path / "cycle.pth", cyclic))
    # Billion laughs: each level holds the previous one twice, 2**60 leaves if walked naively; shared
    # references are converted once, so this is instant.
    laughs = b"(lp0\n" + b"".join(f"(g{i}\ng{i}\nlp{i + 1}\n".encode() for i in range(60)) + b"."
    obj = load_pth_object(write_torch_zip(tmp_path / "laughs.pth", laughs))
    assert obj[0] is obj[1]
    deep = b"(lp0\n" + b"".join(f"(g{i}\nlp{i + 1}\n".encode() for i in range(100)) + b"."
    with pytest.raises(UnsafeOrCorruptPthError, match="deep"):
        load_pth_object(write_torch_zip(tmp_path / "deep.pth", deep))


# --- hostile archives --------------------------------------------------------------------------------


def test_path_traversal_and_stray_entries_are_refused(tmp_path):
    ok = pickle_of(p_dict(w=p_tensor("0", 1, 0, (1,), (1,))))
    storage = {"0": float_bytes([1])}
    for name in ("archive/../../evil", "/etc/evil", "../archive/data/1", "archive/data/..\\x", "C:/evil"):
        path = write_torch_zip(tmp_path / "bad.pth", ok, storage, extra={name: b"x"})
        with pytest.raises(UnsafeOrCorruptPthError, match="unsafe zip entry name"):
            load_pth(path)
    path = write_torch_zip(tmp_path / "stray.pth", ok, storage, extra={"other/file": b"x"})
    with pytest.raises(UnsafeOrCorruptPthError, match="outside its archive folder"):
        load_pth(path)
    # Extra entries inside the archive folder (torch adds new bookkeeping files over time) are ignored.
    path = write_torch_zip(tmp_path / "extra.pth", ok, storage, extra={"archive/.data/serialization_id": b"1"})
    assert load_pth(path)["w"][0] == 1
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = write_torch_zip(tmp_path / "dup.pth", ok, storage, extra={"archive/data/0": float_bytes([2])})
    with pytest.raises(UnsafeOrCorruptPthError, match="twice"):
        load_pth(path)


def test_huge_declared_storage_fails_before_allocating(tmp_path):
    payload = pickle_of(p_dict(w=p_tensor("0", 2**40, 0, (2**40,), (1,))))
    path = write_torch_zip(tmp_path / "huge.pth", payload, {"0": float_bytes([1])})
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeOrCorruptPthError, match="declares 1099511627776 x FloatStorage"):
            load_pth(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_views_outside_their_storage_or_expanded_into_bombs_are_refused(tmp_path):
    storage = {"0": float_bytes(range(4))}
    cases = {
        "reaches element": p_tensor("0", 4, 2, (3,), (1,)),  # runs past the end
        "invalid stride": p_tensor("0", 4, 0, (2,), (-1,)),
        "invalid size": p_tensor("0", 4, 0, (-2,), (1,)),
        "would need": p_tensor("0", 4, 0, (2**17, 2**17), (0, 0)),  # 64 GiB from 16 bytes
    }
    for match, tensor in cases.items():
        path = write_torch_zip(tmp_path / "view.pth", pickle_of(p_dict(w=tensor)), storage)
        with pytest.raises(UnsafeOrCorruptPthError, match=match):
            load_pth(path)
    missing = write_torch_zip(tmp_path / "missing.pth", pickle_of(p_dict(w=p_tensor("7", 4, 0, (4,), (1,)))))
    with pytest.raises(UnsafeOrCorruptPthError, match="entry data/7 is missing"):
        load_pth(missing)


def test_not_torch_files(tmp_path):
    cases = {
        "random.pth": (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a zip"),
        "empty.pth": (b"", "not a zip"),
        "bare.pkl": (pickle.dumps({"w": 1}, protocol=2), "bare pickle"),
    }
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnsafeOrCorruptPthError, match=match):
            load_pth(tmp_path / name)
    np.savez(tmp_path / "arrays.npz", w=np.ones(2))
    with pytest.raises(UnsafeOrCorruptPthError, match="NumPy .npz"):
        load_pth(tmp_path / "arrays.npz")
    with pytest.raises(UnsafeOrCorruptPthError, match="no such file"):
        load_pth(tmp_path / "absent.pth")
    with pytest.raises(UnsafeOrCorruptPthError, match="not a state dict"):
        load_pth(write_torch_zip(tmp_path / "list.pth", pickle_of(b"(lp0\nI1\na")))
    assert issubclass(UnsafeOrCorruptPthError, ValueError)
