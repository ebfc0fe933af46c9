"""DataParallel against the model run whole on one thread: the same scores, loss and gradients."""

import copy

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
    assert len(parallel._replicas) == min(n, threads) - 1


def fused_step(runner, x, labels, loss_layer):
    """The training loop's step: zero_grad, then forward, loss and backward in one call."""
    runner.zero_grad()
    return float(runner.forward_backward(x, labels, loss_layer))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, threads", [(5, 2), (5, 3), (5, 5), (2, 1)])
def test_forward_backward_is_the_whole_batchs_step(n, threads, weighted):
    """forward_backward, each part's loss computed in its thread with the batch's normaliser, gives
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


def test_weight_updates_reach_the_replicas():
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


def test_freezing_after_the_first_step_reaches_the_replicas():
    x, labels = batch(4)
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    step(parallel, x, labels)  # replicas made while everything trains
    plain.freeze("conv2_2")
    model.freeze("conv2_2")
    step(plain, x, labels)
    step(parallel, x, labels)
    assert_same_gradients(plain, model)
    frozen = dict(model.parameters())["conv1_1.weight"]
    assert not frozen.requires_grad and not frozen.grad.any()
    replica_layers = dict(parallel._replicas[0].main_path())
    assert replica_layers["conv3_1"].input_grad is False  # nothing below it trains
    assert replica_layers["conv3_2"].input_grad is True


def test_dropout_is_reproducible_and_each_part_has_its_own_stream():
    x, labels = batch(4)
    gradients = []
    for _ in range(2):
        model = make_model(dropout=0.5, seed=3)
        parallel = DataParallel(model, 2)
        step(parallel, x, labels)
        stream = copy.deepcopy(model.dropout_rng)
        step(parallel, x, labels)
        gradients.append({name: p.grad.copy() for name, p in model.parameters()})
        # The replica's generator was seeded from the model's stream at this step's forward pass
        # (a copy of the model's generator would repeat the model's masks one draw later).
        replica_mask = parallel._replicas[0].head.drop6.last_mask
        seeded = np.random.default_rng(stream.integers(2**63))
        np.testing.assert_array_equal(replica_mask, dropout_mask(replica_mask.shape, 0.5, seeded, np.float32))
        main_mask = model.head.drop6.last_mask
        np.testing.assert_array_equal(main_mask, dropout_mask(main_mask.shape, 0.5, stream, np.float32))
    for name in gradients[0]:
        np.testing.assert_array_equal(gradients[0][name], gradients[1][name], err_msg=name)


def test_one_image_runs_the_model_itself_with_blas_threads_untouched():
    x, labels = batch(1)
    before = [pool["num_threads"] for pool in threadpool_info()]
    plain, model = make_model(), make_model()
    parallel = DataParallel(model, 2)
    assert step(parallel, x, labels) == step(plain, x, labels)
    assert not parallel._replicas
    assert_same_gradients(plain, model)
    step(parallel, *batch(4))  # a split step limits BLAS to one thread only while it runs
    assert [pool["num_threads"] for pool in threadpool_info()] == before


def test_a_model_on_a_gpu_is_refused():
    model = make_model()
    model.device = "gpu"  # as model.to("gpu") leaves it, without needing a GPU here
    with pytest.raises(ValueError, match="CPU threads"):
        DataParallel(model)


def test_backward_needs_a_forward_pass():
    with pytest.raises(RuntimeError, match="without a forward pass"):
        DataParallel(make_model(), 2).backward(np.zeros((2, 5, 32, 32), np.float32))


@pytest.mark.parametrize("size, threads, expected", [
    (8, 2, [(0, 4), (4, 8)]), (5, 3, [(0, 1), (1, 3), (3, 5)]), (2, 4, [(0, 1), (1, 2)]), (3, 1, [(0, 3)]),
])
def test_split_batch(size, threads, expected):
    assert [(part.start, part.stop) for part in split_batch(size, threads)] == expected
