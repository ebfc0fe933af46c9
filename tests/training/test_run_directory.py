"""The run directory: config.json, log.csv and checkpoints written and read back, resume exact."""

import csv
import json

import numpy as np
import pytest

from minifcn.data.transforms import PREPROCESSING_CAFFE_FCN, PREPROCESSING_FROM_SCRATCH
from minifcn.files.checkpoint import load_checkpoint
from minifcn.models import build_model
from minifcn.optim import SGD, Adam
from minifcn.training import RunDirectory, RunDirectoryError, TrainingConfig, TrainingState, read_config

CONFIG = TrainingConfig(width=0.0625, fc_channels=8, dropout=0.5)
NAMES, COLORS = ["a", "b", "c"], np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)


def make_run(path, optimizer_class=Adam, preprocessing=PREPROCESSING_FROM_SCRATCH, source="random"):
    model = build_model("fcn8s", num_classes=3, width=CONFIG.width, fc_channels=CONFIG.fc_channels,
                        geometry=CONFIG.geometry, dropout=CONFIG.dropout, seed=CONFIG.seed)
    optimizer = optimizer_class(model.parameters(), 0.01)
    return RunDirectory(path, CONFIG, model, optimizer, preprocessing, source, NAMES, COLORS)


def take_two_steps(run):
    """Change the weights, the optimizer's state and the dropout stream as training would."""
    rng = np.random.default_rng(3)
    for _ in range(2):
        for _, parameter in run.model.parameters():
            parameter.grad[...] = rng.standard_normal(parameter.shape)
        run.optimizer.step()
    run.model.dropout_rng.random(5)


@pytest.mark.parametrize("optimizer_class", [Adam, SGD])
def test_last_npz_restores_weights_optimizer_position_and_dropout_stream(tmp_path, optimizer_class):
    saved = make_run(tmp_path, optimizer_class, PREPROCESSING_CAFFE_FCN, "initialised from vgg16.npz")
    take_two_steps(saved)
    state = TrainingState(epoch=1, batch_in_epoch=3, iteration=7, seconds=12.5, best_mean_iou=0.25,
                          rows=[{"epoch": 1, "iteration": 4, "mean_iou": 0.25}])
    saved.save_checkpoint("last.npz", state)

    restored = make_run(tmp_path, optimizer_class)  # a fresh model, optimizer, preprocessing and source
    assert restored.restore("cpu") == state
    for (name, a), (_, b) in zip(saved.model.parameters(), restored.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    expected, got = saved.optimizer.state_dict(), restored.optimizer.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key], err_msg=key)
    np.testing.assert_array_equal(saved.model.dropout_rng.random(4), restored.model.dropout_rng.random(4))
    assert restored.preprocessing == PREPROCESSING_CAFFE_FCN and restored.source == "initialised from vgg16.npz"


def test_best_npz_holds_no_optimizer_state_and_describes_the_classes(tmp_path):
    run = make_run(tmp_path)
    take_two_steps(run)
    run.save_checkpoint("best.npz", TrainingState(iteration=2))
    run.save_checkpoint("last.npz", TrainingState(iteration=2))
    best, last = load_checkpoint(tmp_path / "best.npz"), load_checkpoint(tmp_path / "last.npz")
    assert best.extra == {} and all(key.startswith("optimizer/") for key in last.extra) and last.extra
    assert best.metadata["class_names"] == NAMES and best.metadata["class_colors"] == COLORS.tolist()
    assert best.metadata["num_classes"] == 3 and best.metadata["arch"] == "fcn8s"
    assert TrainingConfig.from_json(json.dumps(best.metadata["training"]["config"])) == CONFIG


def test_no_checkpoint_yet_restores_nothing(tmp_path):
    run = make_run(tmp_path)
    assert not run.has_checkpoint() and run.restore("cpu") is None


def test_a_checkpoint_of_another_model_is_a_run_directory_error(tmp_path):
    make_run(tmp_path).save_checkpoint("last.npz", TrainingState())
    other = make_run(tmp_path)
    other.model = build_model("fcn32s", num_classes=3, width=0.0625, fc_channels=8)
    with pytest.raises(RunDirectoryError, match="last.npz"):
        other.restore("cpu")


def test_config_json_round_trip_and_a_directory_without_one(tmp_path):
    with pytest.raises(RunDirectoryError, match="not a run directory"):
        read_config(tmp_path)
    run = make_run(tmp_path / "run")
    run.create()
    assert read_config(tmp_path / "run") == CONFIG


def test_log_csv_has_a_row_per_evaluation_with_short_floats(tmp_path):
    run = make_run(tmp_path)
    rows = [{"epoch": e, "iteration": 4 * e, "train_loss": 1 / 3, "val_loss": 0.5, "pixel_accuracy": 0.9,
             "mean_accuracy": 0.8, "mean_iou": 0.7, "frequency_weighted_iou": 0.85, "seconds": 1.0}
            for e in (1, 2)]
    run.write_log(rows)
    read = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [row["epoch"] for row in read] == ["1", "2"] and read[0]["train_loss"] == "0.333333"


def test_leftover_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.npz.abc123.tmp").write_bytes(b"half written")
    (tmp_path / ".notes.txt.abc.tmp").write_bytes(b"not ours")
    make_run(tmp_path).remove_leftover_temporaries()
    assert [path.name for path in tmp_path.iterdir()] == [".notes.txt.abc.tmp"]


# --- one run per directory ------------------------------------------------------------------------

HOLD_THE_LOCK = """
import sys, time
from minifcn.training import lock_run_directory
lock_run_directory(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def test_a_run_directory_is_held_by_one_process_and_freed_when_it_dies(tmp_path):
    import signal
    import subprocess
    import sys

    from minifcn.training import lock_run_directory

    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryError, match=f"in use by another training \\(process {holder.pid}\\)"):
            lock_run_directory(run_dir)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with lock_run_directory(run_dir):  # a killed holder leaves nothing stuck
        with pytest.raises(RunDirectoryError, match="in use"):
            lock_run_directory(run_dir)
    lock_run_directory(run_dir).release()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        lock_run_directory(tmp_path / "file")


def test_clear_removes_the_old_runs_checkpoints_and_files_only(tmp_path):
    run = make_run(tmp_path)
    run.create()
    run.save_checkpoint("last.npz", TrainingState(iteration=2))
    run.save_checkpoint("best.npz", TrainingState(iteration=2))
    (tmp_path / "notes.txt").write_text("mine")
    run.clear()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_refuses_a_checkpoint_of_another_config_and_malformed_training_metadata(tmp_path):
    saved = make_run(tmp_path)
    saved.create()
    saved.save_checkpoint("last.npz", TrainingState(epoch=1, iteration=4))
    other = make_run(tmp_path)
    other.config = TrainingConfig(**{**CONFIG.to_dict(), "lr": 0.5, "seed": 3})
    with pytest.raises(RunDirectoryError, match=r"last.npz was not trained with .*config.json \(they differ in lr "
                                                r"0.003 vs 0.5, seed 0 vs 3\)"):
        other.restore("cpu")
    # A fixed learning rate lets a run be extended: epochs may differ, nothing else.
    fixed = TrainingConfig(**{**CONFIG.to_dict(), "lr_policy": "fixed"})
    saved.config = fixed
    saved.save_checkpoint("last.npz", TrainingState(epoch=1, iteration=4))
    extended = make_run(tmp_path)
    extended.config = TrainingConfig(**{**fixed.to_dict(), "epochs": 20})
    assert extended.restore("cpu").iteration == 4
    saved.config = CONFIG

    path = tmp_path / "last.npz"
    checkpoint = load_checkpoint(path)
    from minifcn.files.checkpoint import save_checkpoint

    for training in ({"iteration": "many", "config": CONFIG.to_dict()}, {"epoch": 3, "iteration": 1,
                     "config": CONFIG.to_dict()}, {"rows": [1, 2], "config": CONFIG.to_dict()}, {"epoch": 1},
                     ["not", "a", "dict"]):
        metadata = dict(checkpoint.metadata, training=training)
        save_checkpoint(path, checkpoint.state, metadata, checkpoint.extra)
        with pytest.raises(RunDirectoryError, match="malformed") as info:
            make_run(tmp_path).restore("cpu")
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not a valid run configuration"),
    ('["a list"]', "not a valid run configuration"),
    ('{"epochs": "many"}', "--epochs must be an integer"),
    ('{"width": NaN}', "--width must be a finite number"),
    ('{"scale": [0, 0]}', "--scale"),
    ('{"epochs": 0}', "--epochs must be positive"),
])
def test_a_hand_edited_config_json_is_one_clear_error(tmp_path, text, match):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(RunDirectoryError, match=match) as info:
        read_config(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "config.json").write_bytes("{\"data_root\": \"caf\xe9\"}".encode("latin-1"))
    with pytest.raises(RunDirectoryError, match="not a valid run configuration"):
        read_config(tmp_path)
