"""The training loop on a per-pixel linear model, checked against SGD steps computed here by hand."""

import signal

import numpy as np
import pytest

from minifcn.layers import SoftmaxCrossEntropy
from minifcn.optim import SGD
from minifcn.training import NonFiniteLoss, Trainer, TrainingInterrupted, TrainingState

from .fakes import FixedBatches, PixelLinear, RecordingRun

K, C, LR, MOMENTUM = 3, 2, 0.1, 0.9


def make_batches(count, seed):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        images = rng.standard_normal((2, C, 3, 4)).astype(np.float32)
        labels = rng.integers(0, K, (2, 3, 4)).astype(np.int32)
        labels[0, 0, 0] = 255  # one ignored pixel
        batches.append((images, labels))
    return batches


def hand_gradients(weight, bias, images, labels):
    """Loss and gradients of the mean cross-entropy over non-ignored pixels, written out pixel by pixel."""
    grad_w, grad_b, loss, count = np.zeros_like(weight, np.float64), np.zeros_like(bias, np.float64), 0.0, 0
    n, _, h, w = images.shape
    for i in range(n):
        for y in range(h):
            for x in range(w):
                label = labels[i, y, x]
                if label == 255:
                    continue
                pixel = images[i, :, y, x].astype(np.float64)
                scores = weight @ pixel + bias
                prob = np.exp(scores - scores.max())
                prob /= prob.sum()
                loss -= np.log(prob[label])
                dscores = prob - np.eye(K)[label]
                grad_w += np.outer(dscores, pixel)
                grad_b += dscores
                count += 1
    return loss / count, grad_w / count, grad_b / count


def make_trainer(batches, val_batches, epochs=1, **options):
    rng = np.random.default_rng(0)
    model = PixelLinear(rng.standard_normal((K, C)).astype(np.float32), rng.standard_normal(K).astype(np.float32))
    optimizer = SGD(model.parameters(), LR, MOMENTUM, weight_decay=0.0)
    trainer = Trainer(model, SoftmaxCrossEntropy(255), optimizer, FixedBatches(batches, K),
                      FixedBatches(val_batches, K), lambda iteration: LR, RecordingRun(model), epochs,
                      progress=False, **options)
    return trainer, model


def test_two_steps_equal_momentum_sgd_by_hand(capsys):
    batches = make_batches(2, seed=1)
    trainer, model = make_trainer(batches, make_batches(1, seed=2))
    weight, bias = model.weight.data.astype(np.float64), model.bias.data.astype(np.float64)
    velocity_w, velocity_b, losses = np.zeros_like(weight), np.zeros_like(bias), []
    for images, labels in batches:
        loss, grad_w, grad_b = hand_gradients(weight, bias, images, labels)
        velocity_w = MOMENTUM * velocity_w - LR * grad_w
        velocity_b = MOMENTUM * velocity_b - LR * grad_b
        weight, bias = weight + velocity_w, bias + velocity_b
        losses.append(loss)

    assert trainer.fit() is True
    np.testing.assert_allclose(model.weight.data, weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bias.data, bias, rtol=1e-5, atol=1e-6)
    assert (trainer.state.epoch, trainer.state.iteration, trainer.state.batch_in_epoch) == (1, 2, 0)
    # One validation after the epoch: its row logged, best then last saved with the final weights.
    assert [name for name, _, _ in trainer.run.saved] == ["best.npz", "last.npz"]
    np.testing.assert_array_equal(trainer.run.saved[-1][2]["weight"], model.weight.data)
    (row,) = trainer.state.rows
    assert (row["epoch"], row["iteration"]) == (1, 2)
    assert row["train_loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert trainer.run.logs == [trainer.state.rows]
    assert "epoch 1 iteration 2: train loss" in capsys.readouterr().out


def test_the_schedule_gives_each_step_its_rate():
    batches = make_batches(3, seed=3)
    trainer, model = make_trainer(batches, make_batches(1, seed=4))
    rates = []
    trainer.optimizer.step = lambda lr: rates.append(lr)
    trainer.schedule = lambda iteration: 0.5 ** iteration
    trainer.fit()
    assert rates == [1.0, 0.5, 0.25]


def test_validation_every_second_epoch_and_after_the_last():
    trainer, _ = make_trainer(make_batches(1, seed=5), make_batches(1, seed=6), epochs=3, eval_every=2)
    trainer.fit()
    assert [row["epoch"] for row in trainer.state.rows] == [2, 3]
    assert [name for name, _, _ in trainer.run.saved][0] == "last.npz"  # epoch 1: saved, not validated
    assert trainer.train_loader.epochs_set == [0, 1, 2]


def test_ctrl_c_finishes_the_step_saves_and_raises():
    trainer, model = make_trainer(make_batches(3, seed=7), make_batches(1, seed=8))

    def press_ctrl_c(call):
        if call == 2:
            trainer.stop.requested = signal.SIGINT  # what the SIGINT handler does

    model.on_forward = press_ctrl_c
    with pytest.raises(TrainingInterrupted, match=r"interrupted at iteration 2 \(epoch 1\); saved run/last.npz"):
        trainer.fit()
    (name, iteration, weights), = trainer.run.saved
    assert (name, iteration) == ("last.npz", 2)  # the second step was applied whole before saving
    np.testing.assert_array_equal(weights["weight"], model.weight.data)
    assert (trainer.state.iteration, trainer.state.batch_in_epoch, trainer.state.epoch) == (2, 2, 0)


def test_a_non_finite_loss_stops_before_the_update_and_saves_nothing():
    images, labels = make_batches(1, seed=9)[0]
    images[0, 0, 1, 1] = np.nan
    trainer, model = make_trainer([(images, labels)], make_batches(1, seed=10))
    before = model.weight.data.copy()
    with pytest.raises(NonFiniteLoss, match="the loss became nan at iteration 0"):
        trainer.fit()
    np.testing.assert_array_equal(model.weight.data, before)
    assert trainer.run.saved == []


def test_a_time_limit_stops_inside_the_epoch_and_resumes_where_it_stopped(capsys):
    batches = make_batches(3, seed=11)
    trainer, model = make_trainer(batches, make_batches(1, seed=12), time_limit=0)
    assert trainer.fit() is False
    assert (trainer.state.iteration, trainer.state.batch_in_epoch) == (1, 1)
    assert [(name, iteration) for name, iteration, _ in trainer.run.saved] == [("last.npz", 1)]
    assert "time limit reached at iteration 1; continue with: resume" in capsys.readouterr().out

    # The same state handed to a new loop finishes the epoch from its second batch.
    whole, whole_model = make_trainer(batches, make_batches(1, seed=12))
    whole.fit()
    rest = Trainer(model, trainer.loss_layer, trainer.optimizer, trainer.train_loader, trainer.val_loader,
                   trainer.schedule, trainer.run, 1, state=trainer.state, progress=False)
    assert rest.fit() is True
    assert rest.state.iteration == 3
    np.testing.assert_array_equal(model.weight.data, whole_model.weight.data)


def test_state_defaults():
    assert TrainingState() == TrainingState(0, 0, 0, 0.0, -1.0, [])
