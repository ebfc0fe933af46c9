"""python -m minifcn.train end to end on tiny settings: outputs, resumption, bad input."""

import csv
import json
import signal
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
    # Small batches and learned upsampling for the synthetic job; the reference's fixed bilinear
    # upsampling and 8 images a step for real data.
    assert (synthetic.batch_size, synthetic.learn_upsampling) == (4, True)
    assert (camvid.batch_size, camvid.learn_upsampling) == (8, False)
    assert config("--no-learn-upsampling").learn_upsampling is False
    real = config("--data", "camvid", "--data-root", "somewhere", "--learn-upsampling", "--batch-size", "2")
    assert (real.batch_size, real.learn_upsampling) == (2, True)
    # The thread count is resolved when the run starts, so config.json (and --resume) keep it.
    assert synthetic.threads == available_cores() and config("--threads", "1").threads == 1


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minifcn.train", *args], capture_output=True, text=True, timeout=1800)


@pytest.mark.parametrize("args, message", [
    (["--data", "camvid"], "needs --data-root"),
    (["--data", "camvid", "--data-root", "/nonexistent/camvid"], "/nonexistent/camvid"),
    (["--device", "tpu"], "unknown device"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--threads", "0"], "--threads must be positive"),
    (["--freeze", "conv9_9"], "cannot freeze"),
    (["--init", "/nonexistent.npz"], "no such file"),
    (["--resume", "/nonexistent/run"], "not a run directory"),
    (["--scale", "0", "0"], "--scale LOW HIGH needs 0 < LOW <= HIGH"),
    (["--width", "nan"], "--width must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--crop-size", "3"], "--crop-size must be at least 32"),
    (["--time-limit", "-1"], "--time-limit must be 0 or more"),
    (["--time-limit", "nan"], "--time-limit must be 0 or more"),
    (["--width", "60", "--fc-channels", "100000"], "refused before building it"),
    (["--warmup", "-5"], "--warmup must be 0 or more"),
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
    result = run_cli("--device", "gpu", "--epochs", "1", "--synthetic-size", "16", "8", "--batch-size", "8",
                     "--out", str(out), "--no-progress")
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


def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    result = run_cli(*TINY, "--out", str(target))
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and target.read_text() == "mine"


def test_flags_given_with_resume_are_honoured_or_refused(tmp_path):
    """--epochs extends a fixed-rate run exactly (the same weights as a run trained that long from the
    start); under the poly schedule, and for any option config.json holds, it is refused in one line."""
    fixed = TINY + ["--lr-policy", "fixed"]
    whole, extended = tmp_path / "whole", tmp_path / "extended"
    assert main(fixed + ["--out", str(whole), "--epochs", "3"]) == 0
    assert main(fixed + ["--out", str(extended), "--epochs", "2"]) == 0
    assert main(["--resume", str(extended), "--epochs", "3", "--no-progress"]) == 0
    a, b = load_checkpoint(whole / "last.npz"), load_checkpoint(extended / "last.npz")
    assert b.metadata["training"]["iteration"] == a.metadata["training"]["iteration"]
    for name in a.state:
        assert np.array_equal(a.state[name], b.state[name]), name
    assert json.loads((extended / "config.json").read_text())["epochs"] == 3

    poly = tmp_path / "poly"
    assert main(TINY + ["--out", str(poly), "--epochs", "1"]) == 0
    before = (poly / "last.npz").read_bytes()
    for args, message in ((["--epochs", "3"], "only a --lr-policy fixed run can be extended exactly"),
                          (["--lr", "0.5"], "--lr cannot be changed"),
                          (["--batch-size", "2"], "--batch-size cannot be changed"),
                          (["--out", str(tmp_path / "x")], "--out cannot be changed")):
        result = run_cli("--resume", str(poly), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("--resume", str(extended), "--epochs", "1")
    assert result.returncode == 2 and "has already reached epoch 3" in result.stderr, result.stderr
    assert (poly / "last.npz").read_bytes() == before


def test_overwrite_clears_the_old_checkpoints_before_the_new_run_writes(tmp_path, monkeypatch):
    """--overwrite, then the new run dies before its first checkpoint: --resume must not find the old
    run's weights (it starts the new run from the beginning)."""
    out = tmp_path / "run"
    assert main(TINY + ["--out", str(out), "--epochs", "1"]) == 0
    from minifcn.training.loop import Trainer

    def die(self):
        raise RuntimeError("killed before the first checkpoint")

    monkeypatch.setattr(Trainer, "fit", die)
    with pytest.raises(RuntimeError):
        main(TINY + ["--out", str(out), "--overwrite", "--seed", "5"])
    assert not (out / "last.npz").exists() and not (out / "best.npz").exists() and not (out / "log.csv").exists()
    assert json.loads((out / "config.json").read_text())["seed"] == 5


def test_two_trainings_on_one_run_directory_the_second_is_refused(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "minifcn.train", *TINY, "--epochs", "50", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stdout:
            if line.startswith("training "):
                break
        second = run_cli(*TINY, "--out", str(out), "--overwrite")
        assert second.returncode == 2 and "in use by another training" in second.stderr, second.stderr
        resumed = run_cli("--resume", str(out))
        assert resumed.returncode == 2 and "in use by another training" in resumed.stderr, resumed.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert json.loads((out / "config.json").read_text())["epochs"] == 50


def test_a_latin_1_classes_txt_is_one_line(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / split / "images" / "a.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / split / "masks" / "a.png")
    (root / "classes.txt").write_bytes("caf\xe9\nroad\n".encode("latin-1"))
    result = run_cli("--data", "folder", "--data-root", str(root), "--width", "0.0625", "--fc-channels", "8",
                     "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 2 and "not UTF-8" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
