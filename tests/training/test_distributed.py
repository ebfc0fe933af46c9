"""Training over several processes (training.distributed, sharding, allreduce) against one process.

The first tests run the ranks as threads of this process, summing through a barrier, so they need no
MPI: the summed gradients of a batch split over ranks equal the whole batch's, on the CPU and on the
CuPy stand-in. The rest launch ``mpiexec -n 2 python -m minifcn.train`` (mpi4py and the mpich wheel,
``pip install -e '.[distributed]'``; skipped where they are missing, failed where
MINIFCN_REQUIRE_MPI is set, as in CI): the same final weights as one process, kills, signals, a NaN
loss and failures of one rank.
"""

import copy
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minifcn.backend import to_device, to_numpy
from minifcn.data import BatchLoader
from minifcn.data.synthetic import SyntheticShapes
from minifcn.data.transforms import PREPROCESSING_FROM_SCRATCH
from minifcn.files.checkpoint import load_checkpoint
from minifcn.layers import SoftmaxCrossEntropy
from minifcn.models import build_model
from minifcn.training.allreduce import DeviceViaHostAllReduce, HostAllReduce, labelled_weight
from minifcn.training.distributed import (PeerFailed, SingleProcess, agree_on_failure, default_threads,
                                          launched_size, rank_dropout_stream)
from minifcn.training.sharding import TrainingShard, ValidationShard, shard

IGNORE = 255
K = 4


# --- ranks as threads ---------------------------------------------------------------------------------

class ThreadWorld:
    """Rank ``rank`` of ``size`` ranks that are threads of this process; ``sum`` and ``max`` meet at a
    barrier and combine the ranks' arrays in rank order, so every rank gets the same result (as MPI)."""

    def __init__(self, shared, rank):
        self.shared, self.rank, self.size = shared, rank, shared["size"]
        self.is_root, self.local_rank, self.local_size = rank == 0, rank, self.size

    def _combine(self, values, combine):
        shared = self.shared
        shared["slots"][self.rank] = values.copy()
        shared["barrier"].wait()
        result = shared["slots"][0].copy()
        for other in shared["slots"][1:]:
            result = combine(result, other)
        shared["barrier"].wait()  # nobody overwrites a slot before every rank has read them all
        values[...] = result
        return values

    def sum(self, values):
        return self._combine(values, np.add)

    def max(self, values):
        return self._combine(values, np.maximum)

    def any(self, flag):
        return bool(self.max(np.array([int(flag)]))[0])


def run_ranks(size, work):
    """``work(world)`` on ``size`` thread ranks; their results in rank order (an error in any is raised)."""
    shared = {"size": size, "slots": [None] * size, "barrier": threading.Barrier(size, timeout=60)}
    results, errors = [None] * size, [None] * size

    def body(rank):
        try:
            results[rank] = work(ThreadWorld(shared, rank))
        except BaseException as error:  # noqa: BLE001 - carried to the test's thread
            errors[rank] = error
            shared["barrier"].abort()

    threads = [threading.Thread(target=body, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None and not isinstance(error, threading.BrokenBarrierError):
            raise error
    return results


def make_model(device="cpu"):
    model = build_model("fcn8s", num_classes=K, width=0.0625, fc_channels=8, geometry="compact", dropout=0.0,
                        seed=0)
    rng = np.random.default_rng(1)
    # Non-zero score layers, so that every parameter has a gradient worth comparing.
    model.load_state_dict({name: (rng.standard_normal(value.shape) * 0.1).astype(np.float32)
                           for name, value in model.state_dict().items()})
    return model.to(device).train()


def make_batch(n=5, size=32):
    """Images and labels where each image has a different number of labelled pixels (image i has
    its first 6 i rows ignored), so the ranks' shares of the batch have different loss normalisers."""
    rng = np.random.default_rng(2)
    images = (rng.standard_normal((n, 3, size, size)) * 50).astype(np.float32)
    labels = rng.integers(0, K, (n, size, size)).astype(np.int32)
    for index in range(n):
        labels[index, :6 * index] = IGNORE
    return images, labels


def gradients(model):
    return {name: to_numpy(parameter.grad).copy() for name, parameter in model.parameters()}


def whole_batch_gradients(loss_layer, device="cpu"):
    """The loss and gradients of one process on the whole batch."""
    model = make_model(device)
    images, labels = make_batch()
    model.zero_grad()
    loss = loss_layer.forward(model.forward(to_device(images, device)), to_device(labels, device))
    model.backward(loss_layer.backward())
    return float(to_numpy(loss)), gradients(model)


def split_batch_gradients(size, loss_layer, device="cpu", allreduce=HostAllReduce, weight=labelled_weight):
    """The loss and gradients every rank has after its share of the batch and the all-reduce; the
    ranks' weights W_r come from ``weight(labels, loss_layer)``."""
    images, labels = make_batch()

    def rank_step(world):
        model, layer = make_model(device), copy.deepcopy(loss_layer)
        part = shard(len(images), world.rank, world.size)
        reducer = allreduce(world, [parameter for _, parameter in model.parameters()], layer.normalize)
        model.zero_grad()
        loss = layer.forward(model.forward(to_device(images[part], device)), to_device(labels[part], device))
        model.backward(layer.backward())
        reduced = reducer.reduce(loss, weight(labels[part], layer), {"sigterm": world.rank == 1})
        return float(to_numpy(reduced.loss)), gradients(model), reduced.flags

    return run_ranks(size, rank_step)


def max_relative_difference(a, b):
    """The largest difference of two gradient dicts, relative to each gradient's largest value (the
    fixed upsampling layers have none)."""
    assert a.keys() == b.keys()
    return max(float(np.abs(a[name] - b[name]).max() / np.abs(b[name]).max()) for name in b if np.any(b[name]))


LOSS_LAYERS = {
    "mean over labelled pixels": SoftmaxCrossEntropy(IGNORE),
    "class-weighted mean": SoftmaxCrossEntropy(IGNORE, class_weights=np.array([0.5, 1, 2, 4], np.float32)),
    "sum (--no-loss-normalize)": SoftmaxCrossEntropy(IGNORE, normalize=False),
}
TOLERANCE = 5e-5  # float32 sums in another order; a wrong normalisation is off by percents


@pytest.mark.parametrize("name", LOSS_LAYERS)
@pytest.mark.parametrize("size", [2, 3])
def test_gradients_summed_over_ranks_equal_the_whole_batch(name, size):
    loss, expected = whole_batch_gradients(LOSS_LAYERS[name])
    for rank_loss, rank_gradients, flags in split_batch_gradients(size, LOSS_LAYERS[name]):
        assert rank_loss == pytest.approx(loss, rel=1e-5)
        assert max_relative_difference(rank_gradients, expected) < TOLERANCE
        assert flags == {"sigint": 0, "sigterm": 1, "time_up": 0}  # rank 1's stop reached every rank


def test_averaging_the_ranks_means_instead_would_fail_the_comparison():
    """Each rank's mean loss weighted alike (W_r = 1): the pixels of the rank with fewer labelled
    pixels count more than on one process, and the test above would catch it."""
    _, expected = whole_batch_gradients(LOSS_LAYERS["mean over labelled pixels"])
    results = split_batch_gradients(2, LOSS_LAYERS["mean over labelled pixels"], weight=lambda labels, layer: 1.0)
    assert max_relative_difference(results[0][1], expected) > 100 * TOLERANCE


def test_through_host_buffers_on_the_device_the_same(cupy_backend):
    """The GPU fallback where NCCL is missing (packed on the device, summed in host memory), on the
    CuPy stand-in: every rank ends with the whole batch's gradients, on the device."""
    layer = LOSS_LAYERS["mean over labelled pixels"]
    loss, expected = whole_batch_gradients(layer, "gpu")
    for rank_loss, rank_gradients, _ in split_batch_gradients(2, layer, "gpu", DeviceViaHostAllReduce):
        assert rank_loss == pytest.approx(loss, rel=1e-5)
        assert max_relative_difference(rank_gradients, expected) < TOLERANCE


def test_labelled_weight_is_what_the_loss_layer_divides_by():
    labels = np.array([[[0, 1], [IGNORE, 3]]], np.int32)
    assert labelled_weight(labels, SoftmaxCrossEntropy(IGNORE)) == 3
    weighted = SoftmaxCrossEntropy(IGNORE, class_weights=np.array([0.5, 1, 2, 4], np.float32))
    assert labelled_weight(labels, weighted) == 0.5 + 1 + 4
    assert labelled_weight(labels, SoftmaxCrossEntropy(IGNORE, normalize=False)) == 1


# --- the world, shards and agreements ------------------------------------------------------------------

def test_the_launcher_is_read_from_the_environment():
    assert launched_size({}) == 1
    assert launched_size({"PMI_SIZE": "4", "PMI_RANK": "1"}) == 4  # MPICH, Intel MPI, Slurm's PMI-2
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3  # Open MPI
    assert launched_size({"MV2_COMM_WORLD_SIZE": "2"}) == 2  # MVAPICH
    assert launched_size({"PMI_SIZE": ""}) == 1


def test_a_plain_run_never_loads_mpi():
    code = ("import sys; from minifcn.training.distributed import detect_world; "
            "print(type(detect_world()).__name__, 'mpi4py' in sys.modules)")
    env = {key: value for key, value in os.environ.items() if key not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["SingleProcess", "False"], result.stderr


def test_threads_default_to_the_cores_shared_among_the_ranks_of_a_machine():
    class Node:
        local_size = 3

    assert default_threads(8, SingleProcess()) == 8
    assert default_threads(8, Node()) == 2
    assert default_threads(2, Node()) == 1


def test_shards_split_each_batch_in_order_and_together_are_the_whole():
    assert [shard(5, rank, 3) for rank in range(3)] == [slice(0, 1), slice(1, 3), slice(3, 5)]
    assert [shard(1, rank, 3) for rank in range(3)] == [slice(0, 0), slice(0, 0), slice(0, 1)]
    dataset = SyntheticShapes("train", 11, image_size=32)
    options = dict(crop_size=24, shuffle=True, flip=True, seed=3)
    whole = BatchLoader(dataset, 5, PREPROCESSING_FROM_SCRATCH, **options)
    parts = [TrainingShard(dataset, 5, PREPROCESSING_FROM_SCRATCH, rank=rank, size=3, **options) for rank in range(3)]
    for loader in [whole, *parts]:
        loader.set_epoch(2)
    assert all(len(part) == len(whole) == 3 for part in parts)
    for batch, *shares in zip(whole.iterate(), *(part.iterate() for part in parts)):
        present = [share for share in shares if share[0] is not None]
        np.testing.assert_array_equal(np.concatenate([images for images, _ in present]), batch[0])
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in present]), batch[1])
    # The last batch has one image: two ranks have none and say so.
    assert [share[0] is None for share in zip(*(part.iterate(start=2) for part in parts))][0] is False
    last = [next(part.iterate(start=2)) for part in parts]
    assert [images is None for images, _ in last] == [True, True, False]


def test_validation_batches_go_to_the_ranks_in_turn():
    dataset = SyntheticShapes("val", 7, image_size=32)
    whole = list(BatchLoader(dataset, 2, PREPROCESSING_FROM_SCRATCH, shuffle=False))
    shares = [ValidationShard(dataset, 2, PREPROCESSING_FROM_SCRATCH, shuffle=False, rank=rank, size=3)
              for rank in range(3)]
    assert [len(share) for share in shares] == [2, 1, 1]
    for rank, share in enumerate(shares):
        for (images, _), (expected, _) in zip(share, whole[rank::3]):
            np.testing.assert_array_equal(images, expected)


def failing_phase(size, failing_ranks, code=2):
    def work(world):
        try:
            with agree_on_failure(world, lambda error: code):
                if world.rank in failing_ranks:
                    raise ValueError(f"rank {world.rank}'s data is missing")
        except PeerFailed as failure:
            return "quiet", failure.code
        except ValueError as error:
            return "raised", str(error)
        return "ok", None

    return run_ranks(size, work)


def test_a_start_up_failure_of_one_rank_stops_every_rank_with_its_code():
    assert failing_phase(3, {2}) == [("quiet", 2), ("quiet", 2), ("raised", "rank 2's data is missing")]
    # All failing alike (a bad option): the root alone says it.
    assert failing_phase(2, {0, 1}) == [("raised", "rank 0's data is missing"), ("quiet", 2)]
    assert failing_phase(2, set()) == [("ok", None), ("ok", None)]
    # Exit code 0 (--help) still ends the phase on every rank.
    assert failing_phase(2, {0, 1}, code=0) == [("raised", "rank 0's data is missing"), ("quiet", 0)]


def test_each_rank_drops_with_its_own_stream_and_the_shared_one_advances_one_draw():
    model = build_model("fcn8s", num_classes=K, width=0.0625, fc_channels=8, geometry="compact", dropout=0.5).train()
    start = copy.deepcopy(model.dropout_rng.bit_generator.state)

    def masks(world):
        replica = copy.deepcopy(model)
        with rank_dropout_stream(replica, world):
            replica.forward(np.ones((1, 3, 32, 32), np.float32))
        return dict(replica.named_layers())["drop6"].last_mask, replica.dropout_rng.bit_generator.state

    (mask0, state0), (mask1, state1) = run_ranks(2, masks)
    assert not np.array_equal(mask0, mask1)
    assert state0 == state1  # what the root's checkpoint saves is every rank's
    model.dropout_rng.integers(2**63)
    assert model.dropout_rng.bit_generator.state == state0 != start


# --- mpiexec -n 2 python -m minifcn.train ----------------------------------------------------------------

def mpi_missing():
    """Why the MPI tests cannot run here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install -e '.[distributed]')"
    if launcher() is None:
        return "mpiexec is not on PATH (pip install -e '.[distributed]' brings the mpich wheel's)"
    return None


def launcher():
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(mpi_missing() is not None and not os.environ.get("MINIFCN_REQUIRE_MPI"),
                               reason=str(mpi_missing()))
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
# 32 training images in batches of 8 (four steps an epoch), one validation batch; a few seconds a run.
RUN = ["--synthetic-size", "32", "8", "--image-size", "32", "--width", "0.0625", "--fc-channels", "8",
       "--batch-size", "8", "--no-progress", "--warmup", "2", "--threads", "1",
       "--scale", "0.5", "1", "--crop-size", "32"]  # rescaled and padded: images differ in labelled pixels

# A stand-in for the command that lets a test change one rank's behaviour (``PATCH``) first.
WRAPPER = """
import os, sys
rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
if os.environ.get("PID_DIR"):
    open(os.path.join(os.environ["PID_DIR"], str(rank)), "w").write(str(os.getpid()))
exec(os.environ.get("PATCH", ""))
from minifcn.cli import run
from minifcn.train import PROG, main
sys.exit(run(main, sys.argv[1:], PROG))
"""


def mpiexec(*args, processes=2, patch="", pid_dir=None):
    """Start ``mpiexec -n processes`` on the training command (through WRAPPER when patched or when
    the ranks' process ids are wanted)."""
    if mpi_missing():
        pytest.fail(mpi_missing())
    env = dict(ENV, PATCH=patch, PID_DIR=str(pid_dir or ""))
    command = [sys.executable, "-c", WRAPPER] if patch or pid_dir else [sys.executable, "-m", "minifcn.train"]
    return subprocess.Popen([launcher(), "-n", str(processes), *command, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def one_process(*args):
    return subprocess.run([sys.executable, "-m", "minifcn.train", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=300)


def weights(run_dir):
    return load_checkpoint(Path(run_dir) / "last.npz").state


def largest_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[name] - b[name]).max() / max(np.abs(b[name]).max(), 1e-12)) for name in a)


@needs_mpi
def test_two_processes_end_at_the_weights_of_one_with_the_same_global_batch(tmp_path):
    """Global batch 8 as 4 + 4 images, eight Adam steps: the weights of one process with batch 8, up
    to the order of float sums; averaging the two ranks' mean losses instead (no weighting by their
    labelled pixels) lands measurably elsewhere."""
    args = RUN + ["--epochs", "2"]
    single = one_process(*args, "--out", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    code, out, err = finish(mpiexec(*args, "--out", tmp_path / "two"))
    assert code == 0, err
    assert "2 processes on cpu" in out and out.count("epoch 2 iteration 8:") == 1  # the root prints, once
    assert largest_difference(weights(tmp_path / "two"), weights(tmp_path / "one")) < 1e-4
    # The validation scores are those of the whole validation set.
    assert (tmp_path / "two" / "log.csv").read_text().split("\n")[1].split(",")[3:8] == \
        (tmp_path / "one" / "log.csv").read_text().split("\n")[1].split(",")[3:8]

    mean_of_means = "import minifcn.training.loop as loop; loop.labelled_weight = lambda labels, layer: 1.0"
    code, _, err = finish(mpiexec(*args, "--out", tmp_path / "wrong", patch=mean_of_means))
    assert code == 0, err
    assert largest_difference(weights(tmp_path / "wrong"), weights(tmp_path / "one")) > 1e-3


@needs_mpi
def test_on_the_cupy_standin_through_host_buffers_the_same(tmp_path):
    """--device gpu on the stand-in (no NCCL there): each rank on its own device, gradients summed in
    host memory, the weights of one process on one device."""
    args = RUN + ["--epochs", "1", "--device", "gpu"]
    env = dict(ENV, MINIFCN_CUPY="standin")
    single = subprocess.run([sys.executable, "-m", "minifcn.train", *args, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    process = subprocess.Popen([launcher(), "-n", "2", sys.executable, "-m", "minifcn.train", *args, "--out",
                                str(tmp_path / "two")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    code, out, err = finish(process)
    assert code == 0, err
    assert "DeviceViaHostAllReduce" in out
    assert largest_difference(weights(tmp_path / "two"), weights(tmp_path / "one")) < 1e-4


LONG = RUN + ["--epochs", "6", "--dropout", "0.5"]  # 24 steps; dropout: the ranks' streams resume too


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final weights of the 2-process run nothing happens to."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    code, _, err = finish(mpiexec(*LONG, "--out", run_dir))
    assert code == 0, err
    return weights(run_dir)


def wait_for_line(process, start):
    for line in process.stdout:
        if line.startswith(start):
            return
    raise AssertionError(f"no line starting {start!r}: {process.stderr.read()}")


def pid_of(pid_dir, rank):
    for _ in range(100):
        if (pid_dir / str(rank)).exists() and (pid_dir / str(rank)).read_text():
            return int((pid_dir / str(rank)).read_text())
        time.sleep(0.05)
    raise AssertionError(f"rank {rank} wrote no process id")


@needs_mpi
def test_killing_one_rank_ends_the_run_and_resuming_ends_at_the_uninterrupted_weights(tmp_path, uninterrupted):
    run_dir, pid_dir = tmp_path / "run", tmp_path / "pids"
    pid_dir.mkdir()
    process = mpiexec(*LONG, "--out", run_dir, pid_dir=pid_dir)
    wait_for_line(process, "epoch 2 ")  # inside epoch 3, past two checkpoints
    os.kill(pid_of(pid_dir, 1), signal.SIGKILL)
    code, _, err = finish(process, timeout=120)  # the launcher ends the other rank: nobody waits forever
    assert code != 0
    code, out, err = finish(mpiexec("--resume", run_dir, "--no-progress"))
    assert code == 0, err
    assert "resuming" in out and "iteration 8" in out
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(weights(run_dir)[name], value, err_msg=name)


@needs_mpi
def test_sigterm_to_one_rank_stops_every_rank_at_one_step_and_resumes_exactly(tmp_path, uninterrupted):
    """SIGTERM reaching one rank only (a scheduler's, a kill): the ranks agree in the next step's
    all-reduce, the root saves last.npz and says so once, every rank exits with 143."""
    run_dir, pid_dir = tmp_path / "run", tmp_path / "pids"
    pid_dir.mkdir()
    process = mpiexec(*LONG, "--out", run_dir, pid_dir=pid_dir)
    wait_for_line(process, "epoch 2 ")
    os.kill(pid_of(pid_dir, 1), signal.SIGTERM)
    code, _, err = finish(process, timeout=120)
    assert code == 143, err
    assert err.count("interrupted by SIGTERM at iteration") == 1 and "Traceback" not in err
    iteration = load_checkpoint(run_dir / "last.npz").metadata["training"]["iteration"]
    assert f"interrupted by SIGTERM at iteration {iteration} " in err and iteration > 8
    assert f"resume with: mpiexec -n 2 python -m minifcn.train --resume {run_dir}" in err
    code, _, err = finish(mpiexec("--resume", run_dir, "--no-progress"))
    assert code == 0, err
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(weights(run_dir)[name], value, err_msg=name)


@needs_mpi
def test_ctrl_c_to_the_launcher_stops_every_rank_with_130(tmp_path):
    process = mpiexec(*LONG, "--out", tmp_path / "run")
    wait_for_line(process, "epoch 1 ")
    process.send_signal(signal.SIGINT)  # mpiexec hands it to every rank
    code, _, err = finish(process, timeout=120)
    assert code == 130, err
    assert err.count("interrupted at iteration") == 1 and err.count("Ctrl-C: stopping after") == 1


RANK_1_FORWARD = """
if rank == 1:
    from minifcn.layers import SoftmaxCrossEntropy
    original, calls = SoftmaxCrossEntropy.forward, []
    def forward(self, scores, labels):
        calls.append(1)
        loss = original(self, scores, labels)
        if len(calls) == 6:  # rank 1's sixth loss: the second step of epoch 2
            {action}
        return loss
    SoftmaxCrossEntropy.forward = forward
"""


@needs_mpi
def test_a_loss_gone_nan_on_one_rank_stops_every_rank_with_1(tmp_path):
    patch = RANK_1_FORWARD.format(action="loss = loss * float('nan')")
    code, _, err = finish(mpiexec(*RUN, "--epochs", "3", "--out", tmp_path / "run", patch=patch))
    assert code == 1, err
    assert err.count("the loss became nan at iteration 5") == 1 and "Traceback" not in err
    assert load_checkpoint(tmp_path / "run" / "last.npz").metadata["training"]["iteration"] == 4


@needs_mpi
def test_an_error_on_one_rank_ends_every_rank_at_once(tmp_path):
    patch = RANK_1_FORWARD.format(action="raise RuntimeError('a bug on rank 1')")
    started = time.monotonic()
    code, _, err = finish(mpiexec(*RUN, "--epochs", "3", "--out", tmp_path / "run", patch=patch), timeout=120)
    assert code == 1 and "RuntimeError: a bug on rank 1" in err
    assert time.monotonic() - started < 60


@needs_mpi
@pytest.mark.parametrize("case", ["rank 1 cannot read its data", "batch smaller than the processes",
                                  "an unknown option"])
def test_a_start_up_failure_is_one_line_exit_2_and_no_run_directory(tmp_path, case):
    patch, args = "", RUN + ["--epochs", "1"]
    if case == "rank 1 cannot read its data":
        patch = ("import minifcn.training.build as build\nfrom minifcn.data import DataError\n"
                 "def fail(config):\n    raise DataError('no data on this machine')\n"
                 "if rank == 1:\n    build.open_splits = fail")
        expected = "error: no data on this machine"
    elif case == "batch smaller than the processes":
        args += ["--batch-size", "1"]
        expected = "--batch-size 1 is the batch of all 2 processes together: it must be at least 2"
    else:
        args += ["--bogus"]
        expected = "unrecognized arguments: --bogus"
    code, _, err = finish(mpiexec(*args, "--out", tmp_path / "run", patch=patch))
    assert code == 2, err
    assert err.count(expected) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()
