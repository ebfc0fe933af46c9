"""python -m minifcn.convert: formats in, minifcn checkpoints out, exit codes 0 / 2 / 1."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minifcn import convert
from minifcn.files.checkpoint import load_checkpoint, load_checkpoint_metadata
from minifcn.convert import main
from minifcn.layers.bilinear import bilinear_kernel
from minifcn.models.shapes import fcn_shapes

from .pth_files import TORCHVISION_CONV_INDICES, full_size_vgg16_file, write_torch_zip

ROOT = Path(__file__).resolve().parent.parent
CONV_NAMES = [f"conv{b}_{j}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for j in range(1, n + 1)]


def _run_main(capsys, *argv):
    """main(argv) -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_bad_input(capsys, match, *argv):
    code, out, err = _run_main(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("minifcn.convert: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and match in err, err
    return err


def _fake_caffe_vgg16(path, **changes):
    """A conv-only Caffe-style VGG16 .npz with small random values (real shapes)."""
    rng = np.random.default_rng(0)
    arrays, cin = {}, 3
    for name, (cout) in zip(CONV_NAMES, (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)):
        arrays[f"{name}_W"] = rng.standard_normal((cout, cin, 3, 3), dtype=np.float32)
        arrays[f"{name}_b"] = rng.standard_normal(cout, dtype=np.float32)
        cin = cout
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


# --- command line basics -----------------------------------------------------------------------------


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "minifcn.convert", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0
    assert "usage: python -m minifcn.convert" in result.stdout and "--arch" in result.stdout


def test_bad_input_from_a_subprocess_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minifcn.convert", str(tmp_path / "absent.pth"),
                             str(tmp_path / "out.npz")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr
    assert not (tmp_path / "out.npz").exists()


def test_real_conv_only_vgg16_weights(vgg16_weights_path, tmp_path, capsys):
    dst = tmp_path / "vgg16.npz"
    code, out, err = _run_main(capsys, vgg16_weights_path, dst)
    assert code == 0, err
    assert out.count("\n") == 1 and "arch vgg16" in out and "26 tensors" in out and "14,714,688" in out
    checkpoint = load_checkpoint(dst)
    assert len(checkpoint.state) == 26
    assert sum(a.size for a in checkpoint.state.values()) == 14_714_688
    assert checkpoint.arch == "vgg16" and checkpoint.num_classes is None
    assert checkpoint.preprocessing == {"channel_order": "BGR", "scale": 255.0, "mean": [103.939, 116.779, 123.68],
                                        "std": [1.0, 1.0, 1.0]}
    assert checkpoint.metadata["source"]["format"] == "caffe-vgg16-npz"
    with np.load(vgg16_weights_path) as source:
        for name in CONV_NAMES:
            np.testing.assert_array_equal(checkpoint.state[f"{name}.weight"], source[f"{name}_W"])
            np.testing.assert_array_equal(checkpoint.state[f"{name}.bias"], source[f"{name}_b"])
            assert checkpoint.state[f"{name}.weight"].dtype == np.float32


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    src = _fake_caffe_vgg16(tmp_path / "vgg.npz")
    dst = tmp_path / "out.npz"
    dst.write_bytes(b"precious")
    _assert_bad_input(capsys, "already exists (use --force", src, dst)
    assert dst.read_bytes() == b"precious"
    code, _, _ = _run_main(capsys, src, dst, "--force")
    assert code == 0 and load_checkpoint(dst).arch == "vgg16"
    _assert_bad_input(capsys, "is the source file itself", src, src, "--force")


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    dst = tmp_path / "out.npz"
    _assert_bad_input(capsys, "no such file", tmp_path / "absent.pth", dst)
    (tmp_path / "noise.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 999, dtype=np.uint8).tobytes())
    _assert_bad_input(capsys, "not a zip", tmp_path / "noise.bin", dst)
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    _assert_bad_input(capsys, "unknown format", tmp_path / "other.npz", dst)
    wrong = _fake_caffe_vgg16(tmp_path / "wrong.npz", conv3_1_W=np.zeros((256, 128, 5, 5), np.float32))
    _assert_bad_input(capsys, "shape mismatch for conv3_1_W", wrong, dst)
    missing = _fake_caffe_vgg16(tmp_path / "missing.npz", conv5_3_b=None)
    _assert_bad_input(capsys, "missing conv5_3_b", missing, dst)
    _assert_bad_input(capsys, "expects a torch .pth", _fake_caffe_vgg16(tmp_path / "v.npz"), dst,
                      "--format", "torchvision-vgg16")
    _assert_bad_input(capsys, "--num-classes and --random-fc only apply with --arch",
                      tmp_path / "v.npz", dst, "--num-classes", "3")
    assert not dst.exists()


def test_hostile_pth_is_refused_and_not_run(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    src = write_torch_zip(tmp_path / "evil.pth", pickle.dumps({"features.0.weight": Payload()}, protocol=2))
    _assert_bad_input(capsys, "system, which is not needed to rebuild tensors", src, tmp_path / "out.npz")
    assert not marker.exists() and not (tmp_path / "out.npz").exists()


def test_unexpected_failure_exits_1(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(convert, "save_checkpoint", broken)
    code, _, err = _run_main(capsys, _fake_caffe_vgg16(tmp_path / "vgg.npz"), tmp_path / "out.npz")
    assert code == 1 and "boom" in err and "unexpected failure" in err


# --- building an FCN from VGG16 weights -------------------------------------------------------------


def test_arch_from_conv_only_weights_initialises_fc_at_random(tmp_path, capsys):
    src = _fake_caffe_vgg16(tmp_path / "vgg.npz")
    dst = tmp_path / "fcn8s.npz"
    code, out, err = _run_main(capsys, src, dst, "--arch", "fcn8s", "--num-classes", "5", "--fc-channels", "64",
                               "--seed", "3", "--class-names", "a,b,c,d,e")
    assert code == 0, err
    assert "arch fcn8s" in out and "He-normal" in out and "default_rng(3)" in out
    checkpoint = load_checkpoint(dst)
    state, md = checkpoint.state, checkpoint.metadata
    assert md["options"]["fc_channels"] == 64 and md["options"]["seed"] == 3 and md["num_classes"] == 5
    assert md["class_names"] == ["a", "b", "c", "d", "e"] and len(md["class_colors"]) == 5
    assert "He-normal" in md["source"]["init"]["fc6, fc7"]
    assert md["preprocessing"]["mean"] == [103.939, 116.779, 123.68]  # the source's convention is kept
    with np.load(src) as source:
        for name in CONV_NAMES:
            np.testing.assert_array_equal(state[f"{name}.weight"], source[f"{name}_W"])
    assert state["fc6.weight"].shape == (64, 512, 7, 7)
    assert abs(state["fc6.weight"].std() / np.sqrt(2 / (512 * 49)) - 1) < 0.05
    assert not state["fc6.bias"].any()
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not state[f"{name}.weight"].any() and not state[f"{name}.bias"].any()
    np.testing.assert_array_equal(state["upscore2.weight"], bilinear_kernel(5, 4))
    np.testing.assert_array_equal(state["upscore8.weight"], bilinear_kernel(5, 16))
    # The same seed gives the same weights.
    code, _, _ = _run_main(capsys, src, tmp_path / "again.npz", "--arch", "fcn8s", "--num-classes", "5",
                           "--fc-channels", "64", "--seed", "3")
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "again.npz").state["fc7.weight"], state["fc7.weight"])


def test_arch_from_a_converted_vgg16_checkpoint_and_bad_options(tmp_path, capsys):
    src = _fake_caffe_vgg16(tmp_path / "vgg.npz")
    vgg = tmp_path / "vgg16.npz"
    assert _run_main(capsys, src, vgg)[0] == 0
    code, out, err = _run_main(capsys, vgg, tmp_path / "fcn32s.npz", "--arch", "fcn32s", "--num-classes", "2",
                               "--fc-channels", "16", "--geometry", "compact")
    assert code == 0, err
    checkpoint = load_checkpoint(tmp_path / "fcn32s.npz")
    assert checkpoint.arch == "fcn32s" and checkpoint.options["geometry"] == "compact"
    assert checkpoint.metadata["source"]["upstream"]["format"] == "caffe-vgg16-npz"  # provenance kept
    np.testing.assert_array_equal(checkpoint.state["upscore.weight"], bilinear_kernel(2, 64))
    dst = tmp_path / "x.npz"
    _assert_bad_input(capsys, "only fit width 1.0", vgg, dst, "--arch", "fcn8s", "--num-classes", "2",
                      "--width", "0.5")
    _assert_bad_input(capsys, "needs --num-classes", vgg, dst, "--arch", "fcn8s")
    _assert_bad_input(capsys, "--class-names lists 1 names for 2 classes", vgg, dst, "--arch", "fcn8s",
                      "--num-classes", "2", "--fc-channels", "8", "--class-names", "one")
    _assert_bad_input(capsys, "already an fcn32s", tmp_path / "fcn32s.npz", dst, "--arch", "fcn8s",
                      "--num-classes", "2")
    _assert_bad_input(capsys, "already a minifcn checkpoint", vgg, dst)
    assert not dst.exists()


def test_arch_copies_fc_layers_that_fit_and_random_fc_replaces_them(tmp_path, capsys):
    from minifcn.files.checkpoint import PREPROCESSING_CAFFE_VGG16, make_metadata, save_checkpoint

    with np.load(_fake_caffe_vgg16(tmp_path / "vgg.npz")) as caffe:
        state = {f"{n}.{p}": caffe[f"{n}_{s}"] for n in CONV_NAMES for p, s in (("weight", "W"), ("bias", "b"))}
    rng = np.random.default_rng(1)
    state.update({"fc6.weight": rng.standard_normal((16, 512, 7, 7), dtype=np.float32),
                  "fc6.bias": np.ones(16, np.float32),
                  "fc7.weight": rng.standard_normal((16, 16, 1, 1), dtype=np.float32),
                  "fc7.bias": np.ones(16, np.float32)})
    src = tmp_path / "vgg16-fc16.npz"
    save_checkpoint(src, state, make_metadata("vgg16", PREPROCESSING_CAFFE_VGG16, options={"fc_channels": 16}))
    code, out, err = _run_main(capsys, src, tmp_path / "copied.npz", "--arch", "fcn8s", "--num-classes", "2",
                               "--fc-channels", "16")
    assert code == 0 and "He-normal" not in out, err
    copied = load_checkpoint(tmp_path / "copied.npz").state
    np.testing.assert_array_equal(copied["fc6.weight"], state["fc6.weight"])
    np.testing.assert_array_equal(copied["fc7.bias"], state["fc7.bias"])
    _assert_bad_input(capsys, "has 16-channel fc6/fc7 but --fc-channels is 8", src, tmp_path / "x.npz",
                      "--arch", "fcn8s", "--num-classes", "2", "--fc-channels", "8")
    code, out, err = _run_main(capsys, src, tmp_path / "random.npz", "--arch", "fcn8s", "--num-classes", "2",
                               "--fc-channels", "16", "--random-fc")
    assert code == 0 and "--random-fc" in out and "He-normal" in out, err
    random = load_checkpoint(tmp_path / "random.npz").state
    assert not np.array_equal(random["fc6.weight"], state["fc6.weight"]) and not random["fc6.bias"].any()
    np.testing.assert_array_equal(random["conv1_1.weight"], state["conv1_1.weight"])


def test_arch_refuses_a_vgg16_checkpoint_missing_a_convolution(tmp_path, capsys):
    from minifcn.files.checkpoint import PREPROCESSING_CAFFE_VGG16, make_metadata, save_checkpoint

    with np.load(_fake_caffe_vgg16(tmp_path / "vgg.npz")) as caffe:
        state = {f"{n}.{p}": caffe[f"{n}_{s}"] for n in CONV_NAMES for p, s in (("weight", "W"), ("bias", "b"))}
    del state["conv5_3.bias"]
    src = tmp_path / "vgg16-partial.npz"
    save_checkpoint(src, state, make_metadata("vgg16", PREPROCESSING_CAFFE_VGG16, options={"fc_channels": None}))
    _assert_bad_input(capsys, "does not fit fcn8s: missing conv5_3.bias (expected shape (512,))", src,
                      tmp_path / "x.npz", "--arch", "fcn8s", "--num-classes", "2", "--fc-channels", "8")
    assert not (tmp_path / "x.npz").exists()


# --- PyTorch sources (torch writes them; minifcn reads them without torch) ---------------------------


def _assert_same(actual, expected, name=""):
    """Exact equality, cheaper than assert_array_equal on 400 MB arrays."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, name
    assert np.array_equal(actual, expected), name


@pytest.fixture
def no_fsync(monkeypatch):
    """Durability is not under test here; fsync of half a gigabyte is most of a test's time on a VM."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.mark.torch
def test_torchvision_vgg16_maps_to_minifcn_names(torch, tmp_path_factory, tmp_path, capsys, no_fsync):
    src, expected = full_size_vgg16_file(torch, tmp_path_factory)
    dst = tmp_path / "vgg16.npz"
    code, out, err = _run_main(capsys, src, dst)
    assert code == 0, err
    assert "torchvision-vgg16" in out and "30 tensors" in out and "134,260,544" in out and "RGB" in out
    checkpoint = load_checkpoint(dst)
    state = checkpoint.state
    assert list(state) == [f"{n}.{p}" for n in CONV_NAMES for p in ("weight", "bias")] + [
        "fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"]
    for name, index in zip(CONV_NAMES, TORCHVISION_CONV_INDICES):
        _assert_same(state[f"{name}.weight"], expected[f"features.{index}.weight"], name)
        _assert_same(state[f"{name}.bias"], expected[f"features.{index}.bias"], name)
    _assert_same(state["fc6.weight"], expected["classifier.0.weight"].reshape(4096, 512, 7, 7))
    _assert_same(state["fc6.bias"], expected["classifier.0.bias"])
    _assert_same(state["fc7.weight"], expected["classifier.3.weight"].reshape(4096, 4096, 1, 1))
    _assert_same(state["fc7.bias"], expected["classifier.3.bias"])
    assert checkpoint.preprocessing == {"channel_order": "RGB", "scale": 1.0, "mean": [0.485, 0.456, 0.406],
                                        "std": [0.229, 0.224, 0.225]}
    # The reshape is the one that makes fc6-as-convolution equal torchvision's Linear on flattened pool5.
    pool5 = np.random.default_rng(0).standard_normal((512, 7, 7)).astype(np.float32)
    linear = expected["classifier.0.weight"] @ pool5.reshape(-1)
    conv = np.einsum("ochw,chw->o", state["fc6.weight"][:16], pool5)  # a 7x7 convolution at one position
    np.testing.assert_allclose(conv, linear[:16], rtol=1e-4, atol=1e-4)
    del checkpoint, state

    # --arch keeps fc6/fc7 from the classifier (when --fc-channels fits them) and the RGB convention.
    code, out, err = _run_main(capsys, src, tmp_path / "fcn.npz", "--arch", "fcn16s", "--num-classes", "3")
    assert code == 0, err
    assert "He-normal" not in out
    with np.load(tmp_path / "fcn.npz") as fcn:  # read only the entries checked
        _assert_same(fcn["fc6.weight"], expected["classifier.0.weight"].reshape(4096, 512, 7, 7))
        _assert_same(fcn["conv5_3.weight"], expected["features.28.weight"])
        assert fcn["upscore16.weight"].shape == (3, 3, 32, 32) and not fcn["score_pool4.weight"].any()
    metadata = load_checkpoint_metadata(tmp_path / "fcn.npz")
    assert metadata["preprocessing"]["channel_order"] == "RGB"
    assert "copied" in metadata["source"]["init"]["fc6, fc7"]
    for path in (dst, tmp_path / "fcn.npz"):  # half a gigabyte each; pytest keeps old tmp dirs around
        path.unlink()


@pytest.mark.torch
def test_reference_fcn_pth(torch, tmp_path, capsys):
    # Real VGG16 shapes, but 32-channel fc6/fc7 to stay small: the converter reads the width from the file.
    k, fc = 21, 32
    rng = np.random.default_rng(0)
    shapes = fcn_shapes("fcn8s", k, fc_channels=fc)
    state = {name: torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) for name, shape in shapes.items()}
    state["conv1_1.weight"] = state["conv1_1.weight"].transpose(0, 1).contiguous().transpose(0, 1)  # strided
    state["fc6.bias"] = state["fc6.bias"].half()  # a half-precision export converts as well
    src = tmp_path / "fcn8s_from_caffe.pth"
    torch.save(state, src)
    dst = tmp_path / "fcn8s.npz"
    code, out, err = _run_main(capsys, src, dst)
    assert code == 0, err
    assert "fcn-pth" in out and "arch fcn8s, 21 classes" in out and "39 tensors" in out
    checkpoint = load_checkpoint(dst)
    assert checkpoint.arch == "fcn8s" and checkpoint.num_classes == 21
    assert checkpoint.options["fc_channels"] == fc and checkpoint.options["geometry"] == "reference"
    assert checkpoint.metadata["class_names"][:2] == ["background", "aeroplane"]
    assert checkpoint.metadata["class_colors"][1] == [128, 0, 0]
    assert checkpoint.preprocessing["mean"] == [104.00698793, 116.66876762, 122.67891434]
    assert list(checkpoint.state) == list(shapes)
    for name, tensor in state.items():
        assert checkpoint.state[name].dtype == np.float32, name
        np.testing.assert_array_equal(checkpoint.state[name], tensor.float().numpy(), err_msg=name)
    _assert_bad_input(capsys, "already an fcn8s", src, tmp_path / "x.npz", "--arch", "fcn8s", "--num-classes", "2")

    # The converted checkpoint loads into the model it describes.
    from minifcn.models import build_model

    model = build_model(checkpoint.arch, **checkpoint.options)
    model.load_state_dict(checkpoint.state)

    # A state dict of neither layout is named as such.
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.ones(2)}, other)
    _assert_bad_input(capsys, "unknown format", other, tmp_path / "x.npz")


# --- what no conversion should pass on ----------------------------------------------------------------


def test_nan_or_infinite_weights_are_refused(tmp_path, capsys):
    bad = np.zeros((64, 3, 3, 3), np.float32)
    bad[3, 1, 2, 0] = np.inf
    source = _fake_caffe_vgg16(tmp_path / "vgg16_inf.npz", conv1_1_W=bad)
    _assert_bad_input(capsys, "conv1_1.weight holds NaN or infinite values", source, tmp_path / "out.npz")
    _assert_bad_input(capsys, "conv1_1.weight holds NaN or infinite values", source, tmp_path / "out.npz",
                      "--arch", "fcn8s", "--num-classes", "3")
    assert not (tmp_path / "out.npz").exists()


def test_a_member_declaring_more_than_any_vgg16_layer_is_refused_before_reading_it(tmp_path, capsys):
    import zipfile

    source = _fake_caffe_vgg16(tmp_path / "vgg16.npz")
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in original.infolist():
            zf.writestr(info.filename, original.read(info))
        with zf.open("conv9_9_W.npy", "w", force_zip64=True) as member:  # 1.2 GB of zeros, ~1 MB on disk
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (300_000_000,)})
            for _ in range(300):
                member.write(bytes(4_000_000))
    _assert_bad_input(capsys, "conv9_9_W declares shape (300000000,), larger than any VGG16 layer", bomb,
                      tmp_path / "out.npz")


def test_arch_refuses_an_enormous_model_before_building_it(tmp_path, capsys):
    source = _fake_caffe_vgg16(tmp_path / "vgg16.npz")
    _assert_bad_input(capsys, "refused before building it", source, tmp_path / "out.npz", "--arch", "fcn8s",
                      "--num-classes", "3", "--fc-channels", "3000000", "--random-fc")
