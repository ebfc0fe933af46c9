"""DataParallel against the model run whole on one thread: the same scores, loss and gradients."""

import copy
import gc
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from minifcn.data_parallel import DataParallel, split_batch
from minifcn.layers import SoftmaxCrossEntropy
from minifcn.models import build_model
from minifcn.ops.dropout import dropout_mask
from minifcn.optim import SGD

from .models.test_fcn import random_state

OPTIONS = dict(num_classes=5, width=0.125, fc_channels=32, geometry="compact")
IGNORE = 255


def make_model(dropout=0.0, seed=0):
    model = build_model("fcn8s", dropout=dropout, seed=seed, **OPTIONS)
    model.load_state_dict(random_state(model, np.random.default_rng(seed)))  # non-zero score layers
    return model.train()


def batch(n=5, size=32, seed=1):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 3, size, size)) * 50).astype(np.float32)
    labels = rng.integers(0, OPTIONS["num_classes"], (n, size, size)).astype(np.int32)
    labels[0, :20] = IGNORE  # the first part has fewer labelled pixels: the normaliser must be the batch's
    return x, labels


def step(runner, x, labels):
    """One training step's loss; the gradients are left in the parameters."""
    loss_layer = SoftmaxCrossEntropy(IGNORE)
    loss = loss_layer.forward(runner.forward(x), labels)
    runner.zero_grad()
    runner.backward(loss_layer.backward())
    return float(loss)


def assert_same_gradients(expected_model, model):
    for (name, expected), (_, actual) in zip(expected_model.parameters(), model.parameters()):
        scale = np.abs(expected.grad).max()
        assert scale > 0 or not expected.requires_grad, name
        np.testing.assert_allclose(actual.grad, expected.grad, rtol=0, atol=2e-5 * scale + 1e-30, err_msg=name)


@pytest.mark.parametrize("n, threads", [(5, 2), (5, 3), (2, 4)])
def test_loss_and_gradients_equal_the_whole_batch_on_one_thread(n, threads):
    x, labels = batch(n)
    plain = make_model()
    expected_loss = step(plain, x, labels)
    model = make_model()
    parallel = DataParallel(model, threads)
    loss = step(parallel, x, labels)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert_same_gradients(plain, model)
    assert len(parallel._processes) == min(n, threads) - 1
    assert all(part.process.is_alive() for part in parallel._processes)
    parallel.close()


def fused_step(runner, x, labels, loss_layer):
    """The training loop's step: zero_grad, then forward, loss and backward in one call."""
    runner.zero_grad()
    return float(runner.forward_backward(x, labels, loss_layer))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, threads", [(5, 2), (5, 3), (5, 5), (2, 1)])
def test_forward_backward_is_the_whole_batchs_step(n, threads, weighted):
    """forward_backward, each part's loss computed in its process with the batch's normaliser, gives
    the one-thread step's loss and gradients, and the very gradients (to the bit) of forward, loss on
    the joined scores and backward; with an image (with 5 threads a part) whose pixels are all
    ignored, and with class weights."""
    x, labels = batch(n)
    labels[-1] = IGNORE  # an image with nothing labelled (with 5 threads, a part)
    weights = np.linspace(0.5, 2.0, OPTIONS["num_classes"]).astype(np.float32) if weighted else None
    plain = make_model()
    expected_loss = fused_step(plain, x, labels, SoftmaxCrossEntropy(IGNORE, class_weights=weights))
    joined = make_model()
    joined_parallel = DataParallel(joined, threads)
    loss_layer = SoftmaxCrossEntropy(IGNORE, class_weights=weights)
    joined_loss = loss_layer.forward(joined_parallel.forward(x), labels)
    joined_parallel.zero_grad()
    joined_parallel.backward(loss_layer.backward())
    model = make_model()
    loss = fused_step(DataParallel(model, threads), x, labels, loss_layer)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert loss == pytest.approx(float(joined_loss), rel=1e-6)
    assert_same_gradients(plain, model)
    for (name, expected), (_, actual) in zip(joined.parameters(), model.parameters()):
        np.testing.assert_array_equal(actual.grad, expected.grad, err_msg=name)


def test_scores_in_eval_mode_and_the_mode_comes_back():
    x, _ = batch()
    plain, model = make_model().eval(), make_model()
    parallel = DataParallel(model, 2).eval()
    np.testing.assert_allclose(parallel.forward(x), plain.forward(x), rtol=1e-5, atol=1e-4)
    parallel.clear_cache()
    assert not model.training
    parallel.train()
    assert model.training


def test_weight_updates_reach_the_processes():
    """Two SGD steps, and a load that replaces the weight arrays, give what the plain model gives."""
    x, labels = batch(4)
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    plain_sgd = SGD(plain.parameters(), lr=0.05, weight_decay=0)
    sgd = SGD(model.parameters(), lr=0.05, weight_decay=0)
    for _ in range(2):
        step(plain, x, labels)
        plain_sgd.step()
        step(parallel, x, labels)
        sgd.step()
    new_state = random_state(plain, np.random.default_rng(7))
    plain.load_state_dict(new_state)
    model.load_state_dict(new_state)
    assert step(parallel, x, labels) == pytest.approx(step(plain, x, labels), rel=1e-5)
    assert_same_gradients(plain, model)


def test_freezing_after_the_first_step_reaches_the_processes():
    x, labels = batch(4)
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    step(parallel, x, labels)  # processes forked while everything trains
    plain.freeze("conv2_2")
    model.freeze("conv2_2")
    step(plain, x, labels)
    step(parallel, x, labels)
    assert_same_gradients(plain, model)
    frozen = dict(model.parameters())["conv1_1.weight"]
    assert not frozen.requires_grad and not frozen.grad.any()
    assert not parallel._processes[0].gradients[0].any()  # conv1_1.weight: the process computed none


def test_dropout_is_reproducible_and_each_part_has_its_own_stream():
    """Each part's masks: the first part's from the model's own generator, the second part's from a
    generator seeded from it at the pass (a copy of the model's generator would repeat its masks one
    draw later); the same to the bit on a second run."""
    x, labels = batch(4)
    gradients = []
    for _ in range(2):
        model = make_model(dropout=0.5, seed=3)
        parallel = DataParallel(model, 2)
        step(parallel, x, labels)
        stream = copy.deepcopy(model.dropout_rng)
        step(parallel, x, labels)
        gradients.append({name: p.grad.copy() for name, p in model.parameters()})
    for name in gradients[0]:
        np.testing.assert_array_equal(gradients[0][name], gradients[1][name], err_msg=name)

    # The second step by hand: each half on a model of the same weights, with those generators.
    seed = stream.integers(2**63)
    expected = None
    loss_layer = SoftmaxCrossEntropy(IGNORE)
    normaliser = loss_layer.normaliser(labels)
    for part, rng in ((slice(0, 2), stream), (slice(2, 4), np.random.default_rng(seed))):
        half = make_model(dropout=0.5, seed=3)
        half.load_state_dict(model.state_dict())
        half.use_generator(rng)
        half.zero_grad()
        loss_layer.forward(half.forward(x[part]), labels[part], normaliser)
        half.backward(loss_layer.backward())
        grads = {name: p.grad.copy() for name, p in half.parameters()}
        expected = grads if expected is None else {name: expected[name] + grads[name] for name in grads}
    for name, value in expected.items():
        np.testing.assert_allclose(gradients[1][name], value, rtol=0, atol=1e-5 * np.abs(value).max() + 1e-30,
                                   err_msg=name)


def test_one_image_runs_the_model_itself_with_blas_threads_untouched():
    x, labels = batch(1)
    before = [pool["num_threads"] for pool in threadpool_info()]
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    assert step(parallel, x, labels) == step(plain, x, labels)
    assert not parallel._processes
    assert_same_gradients(plain, model)
    step(parallel, *batch(4))  # a split step limits BLAS to one thread only while it runs
    assert [pool["num_threads"] for pool in threadpool_info()] == before


def test_a_model_on_a_gpu_is_refused():
    model = make_model()
    model.device = "gpu"  # as model.to("gpu") leaves it, without needing a GPU here
    with pytest.raises(ValueError, match="CPU cores"):
        DataParallel(model)


def test_backward_needs_a_forward_pass():
    with pytest.raises(RuntimeError, match="without a forward pass"):
        DataParallel(make_model(), 2).backward(np.zeros((2, 5, 32, 32), np.float32))


class LabelsCheckedInTheParentOnly(SoftmaxCrossEntropy):
    """A loss whose forward pass is interrupted (Ctrl-C) in the calling process only."""

    def __init__(self, parent):
        super().__init__(IGNORE)
        self.parent = parent

    def forward(self, scores, labels, normaliser=None):
        if os.getpid() == self.parent:
            raise KeyboardInterrupt
        return super().forward(scores, labels, normaliser)


def test_an_error_in_a_part_reaches_the_caller_and_the_next_step_is_right():
    """A label out of range in the second part only is the process's ValueError, raised by the
    caller; after it, and after a step interrupted in the caller's own part while the process
    computes, the next step is the plain model's."""
    x, labels = batch(4)
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    bad = labels.copy()
    bad[3, 0, 0] = OPTIONS["num_classes"]
    with pytest.raises(ValueError, match="label"):
        fused_step(parallel, x, bad, SoftmaxCrossEntropy(IGNORE))
    fused_step(parallel, x, labels, SoftmaxCrossEntropy(IGNORE))  # a new process
    process = parallel._processes[0].process
    with pytest.raises(KeyboardInterrupt):
        fused_step(parallel, x, labels, LabelsCheckedInTheParentOnly(os.getpid()))
    assert not parallel._processes  # ended: they may have been computing what no one would read
    assert process.exitcode == -signal.SIGKILL  # at once, not after a wait for the answer
    expected = fused_step(plain, x, labels, SoftmaxCrossEntropy(IGNORE))
    assert fused_step(parallel, x, labels, SoftmaxCrossEntropy(IGNORE)) == pytest.approx(expected, rel=1e-6)
    assert_same_gradients(plain, model)


def test_the_processes_end_with_close_and_with_the_data_parallel():
    x, labels = batch(4)
    parallel = DataParallel(make_model(), 2)
    step(parallel, x, labels)
    process = parallel._processes[0].process
    parallel.close()
    assert not process.is_alive() and not parallel._processes
    step(parallel, x, labels)  # a new one for the next split pass
    process = parallel._processes[0].process
    del parallel
    gc.collect()
    process.join(timeout=10)
    assert not process.is_alive()


def test_three_parts_processes_end_on_close_without_being_killed():
    """Each process holds copies of the pipes of those forked before it; closed there, every process
    sees its pipe close and returns (exit code 0, not -9 from the kill after a wait)."""
    x, labels = batch(6)
    parallel = DataParallel(make_model(), 3)
    step(parallel, x, labels)
    processes = [part.process for part in parallel._processes]
    parallel.close()
    assert [process.exitcode for process in processes] == [0, 0]


def test_sigterm_to_a_part_process_lets_it_finish_the_step():
    """SIGTERM to the whole process group (a scheduler's) reaches the parts' processes too; the
    caller decides (training finishes the step and saves), so they ignore it."""
    x, labels = batch(4)
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    step(parallel, x, labels)
    process = parallel._processes[0].process
    os.kill(process.pid, signal.SIGTERM)
    expected = fused_step(plain, x, labels, SoftmaxCrossEntropy(IGNORE))
    assert fused_step(parallel, x, labels, SoftmaxCrossEntropy(IGNORE)) == pytest.approx(expected, rel=1e-6)
    assert_same_gradients(plain, model)
    assert process.is_alive()
    parallel.close()
    assert process.exitcode == 0


# The first weakref.finalize of the process made before multiprocessing is imported, as any library
# may: finalizers then run at exit after multiprocessing's hook, not before it.
EXIT_WITHOUT_CLOSE = """
import sys, weakref
weakref.finalize(weakref.finalize, lambda: None)
sys.path.insert(0, sys.argv[1])
from tests.test_data_parallel import batch, make_model, step
from minifcn.data_parallel import DataParallel
x, labels = batch(4)
parallel = DataParallel(make_model(), 2)
step(parallel, x, labels)
print(parallel._processes[0].process.pid)
"""


def test_exit_without_close_ends_the_processes():
    """At exit the pipe is closed before multiprocessing joins its children (which ignore the SIGTERM
    it would end them with): the interpreter exits and its process with it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", EXIT_WITHOUT_CLOSE, root], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)
    for _ in range(100):
        if not running(pid):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the part process outlived its parent")


def running(pid):
    """Whether process ``pid`` runs (not gone, not a zombie left for init to reap)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def test_without_fork_the_batch_runs_whole(monkeypatch):
    monkeypatch.setattr("minifcn.data_parallel.can_fork", lambda: False)
    x, labels = batch(4)
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    assert step(parallel, x, labels) == step(plain, x, labels)
    assert not parallel._processes
    assert_same_gradients(plain, model)


@pytest.mark.parametrize("size, threads, expected", [
    (8, 2, [(0, 4), (4, 8)]), (5, 3, [(0, 1), (1, 3), (3, 5)]), (2, 4, [(0, 1), (1, 2)]), (3, 1, [(0, 3)]),
])
def test_split_batch(size, threads, expected):
    assert [(part.start, part.stop) for part in split_batch(size, threads)] == expected
