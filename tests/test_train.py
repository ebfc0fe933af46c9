"""python -m minifcn.train end to end on tiny settings: outputs, resumption, bad input."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from minifcn.files.checkpoint import load_checkpoint
from minifcn.train import main

TINY = ["--synthetic-size", "16", "8", "--image-size", "32", "--width", "0.0625", "--fc-channels", "8",
        "--batch-size", "4", "--epochs", "2", "--no-progress", "--warmup", "2"]


def test_a_tiny_run_writes_everything(tmp_path):
    """config.json, log.csv with one row per evaluation, best/last checkpoints and both figures."""
    out = tmp_path / "run"
    assert main(TINY + ["--out", str(out)]) == 0
    for name in ("config.json", "log.csv", "best.npz", "last.npz", "learning_curves.png", "predictions.png"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert [int(row["iteration"]) for row in rows] == [4, 8]
    for row in rows:
        assert 0 <= float(row["mean_iou"]) <= 1 and np.isfinite(float(row["train_loss"]))
    checkpoint = load_checkpoint(out / "last.npz")
    assert checkpoint.metadata["arch"] == "fcn8s"
    assert checkpoint.metadata["num_classes"] == 6
    assert checkpoint.metadata["training"]["iteration"] == 8
    assert json.loads((out / "config.json").read_text())["width"] == 0.0625


def test_an_existing_run_directory_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(Exception, match="exists and is not empty"):
        main(TINY + ["--out", str(out)])
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, optimizer):
    """Stopped after its first iteration and resumed, a run ends with exactly the weights of an
    uninterrupted run with the same seed (data order, dropout masks and optimizer state restored)."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    common = TINY + ["--dropout", "0.5", "--optimizer", optimizer]
    assert main(common + ["--out", str(whole)]) == 0
    assert main(common + ["--out", str(split), "--time-limit", "0"]) == 0
    assert load_checkpoint(split / "last.npz").metadata["training"]["iteration"] == 1
    assert main(["--resume", str(split), "--no-progress"]) == 0
    a, b = load_checkpoint(whole / "last.npz").state, load_checkpoint(split / "last.npz").state
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_defaults_depend_on_the_data():
    """Synthetic data trains from scratch with Adam; real data gets the reference's SGD recipe;
    anything given on the command line wins."""
    from minifcn.data_parallel import available_cores
    from minifcn.train import build_parser, config_from_args

    def config(*args):
        return config_from_args(build_parser().parse_args(list(args)))

    synthetic = config()
    assert (synthetic.optimizer, synthetic.lr, synthetic.weight_decay, synthetic.dropout) == ("adam", 3e-3, 0.0, 0.0)
    camvid = config("--data", "camvid", "--data-root", "somewhere")
    assert (camvid.optimizer, camvid.lr, camvid.weight_decay, camvid.dropout) == ("sgd", 0.01, 5e-4, 0.5)
    assert (camvid.width, camvid.fc_channels, camvid.geometry) == (1.0, 4096, "reference")
    mine = config("--optimizer", "sgd", "--lr", "0.05", "--weight-decay", "0", "--dropout", "0.2")
    assert (mine.optimizer, mine.lr, mine.weight_decay, mine.dropout) == ("sgd", 0.05, 0.0, 0.2)
    assert config("--optimizer", "sgd").lr == 0.01
    # The thread count is resolved when the run starts, so config.json (and --resume) keep it.
    assert synthetic.threads == available_cores() and config("--threads", "1").threads == 1


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minifcn.train", *args], capture_output=True, text=True, timeout=1800)


@pytest.mark.parametrize("args, message", [
    (["--data", "camvid"], "needs --data-root"),
    (["--data", "camvid", "--data-root", "/nonexistent/camvid"], "/nonexistent/camvid"),
    (["--device", "tpu"], "unknown device"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--threads", "0"], "--threads must be positive"),
    (["--freeze", "conv9_9"], "cannot freeze"),
    (["--init", "/nonexistent.npz"], "no such file"),
    (["--resume", "/nonexistent/run"], "not a run directory"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli(*args, "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_device_gpu_trains_briefly_or_says_what_is_missing(tmp_path):
    """Where a GPU (or the CuPy stand-in) is usable, a one-epoch run on 16 images trains on it and
    writes its checkpoints; elsewhere --device gpu is one line naming CuPy, exit 2, and no run directory."""
    from minifcn.backend import gpu_available

    out = tmp_path / "run"
    result = run_cli("--device", "gpu", "--epochs", "1", "--synthetic-size", "16", "8", "--out", str(out),
                     "--no-progress")
    if gpu_available():
        assert result.returncode == 0, result.stderr
        assert (out / "last.npz").exists() and load_checkpoint(out / "last.npz").metadata["training"]["iteration"] == 2
        return
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CuPy" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_help():
    result = run_cli("--help")
    assert result.returncode == 0 and "--data-root" in result.stdout and "--resume" in result.stdout
