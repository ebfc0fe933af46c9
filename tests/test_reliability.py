"""Training survives what happens to long runs: SIGKILL at any moment, Ctrl-C, a loss gone NaN, memory
running out. Each case ends with the run's files intact and, where it can continue, with exactly the
weights of a run that was never interrupted."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minifcn.files.checkpoint import load_checkpoint
from minifcn.data_parallel import DataParallel
from minifcn.train import main

from .test_train import TINY

# Sixteen epochs of twelve iterations, about 5 s after a start-up of under a second: kills at random
# moments land in start-up, steps, evaluations and checkpoint writes alike.
RUN = ["--synthetic-size", "48", "8", "--image-size", "64", "--width", "0.125", "--fc-channels", "16",
       "--batch-size", "4", "--epochs", "16", "--dropout", "0.5", "--no-progress", "--warmup", "2"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def train(*args, own_group=False):
    """The training command running in the background; ``own_group``: in a process group of its own
    (with the batch parts' processes), as a scheduler starts a job."""
    return subprocess.Popen([sys.executable, "-m", "minifcn.train", *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=own_group)


def final_weights(run_dir):
    return load_checkpoint(run_dir / "last.npz").state


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The weights of the run with nothing happening to it."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    process = train(*RUN, "--out", run_dir)
    _, err = process.communicate(timeout=1800)
    assert process.returncode == 0, err
    return final_weights(run_dir)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_with_the_same_weights(tmp_path, uninterrupted):
    """Killed with SIGKILL six times at random moments (during start-up, steps, evaluations and
    checkpoint writes alike), resumed each time, the run ends bit for bit where the uninterrupted one does."""
    run_dir = tmp_path / "run"
    kills = 0

    def start():
        if (run_dir / "config.json").exists():
            return train("--resume", run_dir, "--no-progress")
        return train(*RUN, "--out", run_dir, "--overwrite")  # killed before the run directory was complete

    for delay in np.random.default_rng(8).uniform(0.3, 1.6, size=6):
        process = start()
        try:
            process.communicate(timeout=delay)
            break  # it finished before the kill
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            kills += 1
    else:
        process = start()
        process.communicate(timeout=1800)
    assert process.returncode == 0
    assert kills >= 3, "the kills should land inside the run, not after it"
    assert_same_weights(final_weights(run_dir), uninterrupted)
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == [str(epoch) for epoch in range(1, 17)]  # no repeats


# Runs the training command, but the process dies (os._exit, as abruptly as SIGKILL) in the middle of
# writing a checkpoint: at the DIE_AT-th array written to any .npz.
DIE_DURING_A_WRITE = """
import os, sys
import numpy as np
from minifcn.cli import run
from minifcn.train import main, PROG
die_at, written, write_array = int(sys.argv[1]), [0], np.lib.format.write_array
def dying_write_array(*args, **kwargs):
    written[0] += 1
    if written[0] == die_at:
        os._exit(137)
    return write_array(*args, **kwargs)
np.lib.format.write_array = dying_write_array
sys.exit(run(main, sys.argv[2:], PROG))
"""


@pytest.mark.slow
def test_dying_in_the_middle_of_checkpoint_writes_then_resume_ends_with_the_same_weights(tmp_path, uninterrupted):
    """Killed inside the writes of best.npz and last.npz of several epochs: the files on disk stay
    whole (the old ones), and resuming ends bit for bit where the uninterrupted run does."""
    run_dir = tmp_path / "run"
    # A checkpoint is ~40 arrays (last.npz also the optimizer's): these land inside different writes.
    for die_at in (20, 150, 400):
        args = ["--resume", str(run_dir), "--no-progress"] if (run_dir / "config.json").exists() else \
            RUN + ["--out", str(run_dir), "--overwrite"]
        died = subprocess.run([sys.executable, "-c", DIE_DURING_A_WRITE, str(die_at), *args], env=ENV,
                              capture_output=True, text=True, timeout=1800)
        assert died.returncode == 137, died.stderr
        for name in ("best.npz", "last.npz"):
            if (run_dir / name).exists():
                load_checkpoint(run_dir / name)  # whole and readable, never half written
    process = train("--resume", run_dir, "--no-progress")
    _, err = process.communicate(timeout=1800)
    assert process.returncode == 0, err
    assert_same_weights(final_weights(run_dir), uninterrupted)
    assert not list(run_dir.glob(".*.tmp")), "resuming removes the temporary files of interrupted writes"


@pytest.mark.slow
def test_ctrl_c_saves_last_npz_says_how_to_resume_and_resumes_exactly(tmp_path, uninterrupted):
    """Three Ctrl-C at seeded moments after training is under way, each resumed: exit code 130 and a
    resume line each time, and the same final weights (Ctrl-C waits for the step to finish, so no
    optimizer update is ever saved half applied)."""
    run_dir = tmp_path / "run"
    iterations = []
    for index, delay in enumerate(np.random.default_rng(5).uniform(0.05, 0.3, size=3)):
        process = train(*RUN, "--out", run_dir) if index == 0 else train("--resume", run_dir, "--no-progress")
        for line in process.stdout:  # wait until training is under way
            if line.startswith("epoch "):
                break
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=600)
        assert process.returncode == 130, err
        assert "interrupted at iteration" in err and f"--resume {run_dir}" in err
        assert "Traceback" not in err
        iterations.append(load_checkpoint(run_dir / "last.npz").metadata["training"]["iteration"])
    assert iterations == sorted(iterations) and iterations[0] >= 12
    process = train("--resume", run_dir, "--no-progress")
    _, err = process.communicate(timeout=1800)
    assert process.returncode == 0, err
    assert_same_weights(final_weights(run_dir), uninterrupted)


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_says_how_to_resume_and_resumes_exactly(tmp_path, uninterrupted):
    """SIGTERM (docker stop, a scheduler's time limit) is handled as Ctrl-C is: the step under way
    finishes, last.npz is saved with the epoch in progress, the resume line is printed, and the exit
    code is 143 (128 + SIGTERM's 15, what a shell reports); resuming ends on the uninterrupted weights.
    The signal goes to the whole process group, as a scheduler sends it: the batch parts' processes
    get it too, and must neither die in the middle of the step nor announce it a second time."""
    run_dir = tmp_path / "run"
    process = train(*RUN, "--out", run_dir, own_group=True)
    for line in process.stdout:
        if line.startswith("epoch 2 "):  # inside epoch 3, past two checkpoints
            break
    time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 143, err
    assert err.count("SIGTERM: stopping after the current step") == 1, err
    assert "interrupted by SIGTERM at iteration" in err
    assert f"--resume {run_dir}" in err and "Traceback" not in err
    iteration = load_checkpoint(run_dir / "last.npz").metadata["training"]["iteration"]
    assert f"interrupted by SIGTERM at iteration {iteration} " in err and iteration >= 24
    process = train("--resume", run_dir, "--no-progress")
    _, err = process.communicate(timeout=1800)
    assert process.returncode == 0, err
    assert_same_weights(final_weights(run_dir), uninterrupted)


THREE_EPOCHS = TINY + ["--epochs", "3"]  # 4 steps and 2 validation batches an epoch


def fail_at(monkeypatch, cls, method, iteration, make_failure):
    """Make ``cls.method`` fail (as ``make_failure(result)`` says) from its ``iteration``-th call on."""
    original = getattr(cls, method)
    calls = []

    def patched(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls.append(1)
        return make_failure(result) if len(calls) >= iteration else result

    monkeypatch.setattr(cls, method, patched)


def test_a_non_finite_loss_stops_naming_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                                        capsys):
    # Epoch 1 has 4 iterations: the 5th training step is epoch 2's first. On the CPU the loop runs the
    # model through DataParallel, one forward_backward call (forward, loss, backward) per step.
    fail_at(monkeypatch, DataParallel, "forward_backward", 5, lambda loss: loss * np.float32("nan"))
    out = tmp_path / "run"
    assert main(THREE_EPOCHS + ["--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "the loss became nan at iteration" in err and "learning rate" in err
    checkpoint = load_checkpoint(out / "last.npz")
    assert checkpoint.metadata["training"]["iteration"] == 4
    assert all(np.isfinite(value).all() for value in checkpoint.state.values())


@pytest.mark.parametrize("failure", [
    MemoryError("Unable to allocate 2.00 GiB for an array"),
    RuntimeError("cudaErrorMemoryAllocation: out of memory"),  # as the CUDA runtime reports it
])
def test_running_out_of_memory_suggests_smaller_batches_and_leaves_the_checkpoint_intact(tmp_path, monkeypatch,
                                                                                          capsys, failure):
    out = tmp_path / "run"

    def raise_failure(result):
        raise failure

    # The 5th training step is the first of epoch 2 (4 steps, then 2 validation batches); on the CPU
    # the loop runs the model through DataParallel, one forward_backward call per step.
    fail_at(monkeypatch, DataParallel, "forward_backward", 5, raise_failure)
    assert main(THREE_EPOCHS + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "out of memory on cpu at iteration 5" in err and "--batch-size" in err and "--crop-size" in err
    assert "last.npz is intact" in err and len(err.strip().splitlines()) == 1
    assert load_checkpoint(out / "last.npz").metadata["training"]["iteration"] == 4
