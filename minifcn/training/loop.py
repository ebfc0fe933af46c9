"""The training loop: steps of SGD (or Adam) over the training batches, and periodic validation.

Everything it runs comes ready-built (see ``training.build`` for how ``python -m minifcn.train`` makes
the pieces from a TrainingConfig): the model, the loss layer, the optimizer, the loaders, the learning
rate schedule, and the run directory where it saves checkpoints, the log and the figures.
"""

import math
import time

import numpy as np
from tqdm import tqdm

from ..backend import to_device, to_numpy
from ..inference import evaluate_model
from .errors import NonFiniteLoss, TrainingInterrupted
from .interrupt import StopAtStepBoundary, StopRequested
from .state import TrainingState

PROGRESS_REFRESH = 10  # iterations between reads of the running loss (each read syncs a GPU)


class Trainer:
    """Trains ``model`` for ``epochs`` epochs; ``fit()`` runs it.

    ``model`` has ``forward``, ``backward``, ``zero_grad``, ``train``, ``eval`` and ``clear_cache`` (a
    model, or a ``DataParallel`` around one); ``loss_layer`` is a SoftmaxCrossEntropy; ``optimizer``
    updates the model's parameters with ``step(lr)``; ``train_loader`` and ``val_loader`` are
    BatchLoaders; ``schedule(iteration)`` gives the learning rate of each step; ``run`` (a
    RunDirectory) saves checkpoints, the log and figures. Batches go to ``device`` as they enter.

    After every ``eval_every`` epochs and the last, the model is validated and best.npz (when the mean
    IoU improved) and last.npz are saved. ``state`` (a TrainingState) is where the run stands, restored
    from last.npz to resume. ``time_limit`` (seconds of training, counting the time before a resume)
    stops the run, saving last.npz, for it to be resumed later.
    """

    def __init__(self, model, loss_layer, optimizer, train_loader, val_loader, schedule, run, epochs,
                 device="cpu", eval_every=1, state=None, progress=True, time_limit=None):
        self.model = model
        self.loss_layer = loss_layer
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.schedule = schedule
        self.run = run
        self.epochs = epochs
        self.device = device
        self.eval_every = eval_every
        self.state = state or TrainingState()
        self.progress = progress
        self.time_limit = time_limit
        self.stop = StopAtStepBoundary()
        # The training loss summed on the device since the last validation (the log's train_loss).
        self._loss_since_validation, self._steps_since_validation = None, 0

    def fit(self):
        """Train until the last epoch; return True when it is done, False when the time limit stopped
        training (last.npz saved). Ctrl-C or SIGTERM saves last.npz at the end of the step under way and
        raises TrainingInterrupted; a loss gone NaN or infinite raises NonFiniteLoss, saving nothing."""
        state = self.state
        started = time.perf_counter() - state.seconds
        with self.stop:
            try:
                while state.epoch < self.epochs:
                    self.train_epoch(started)
                    state.seconds = time.perf_counter() - started
                    if state.batch_in_epoch:  # the time limit stopped the epoch part way
                        self.run.save_checkpoint("last.npz", state)
                        print(f"time limit reached at iteration {state.iteration}; continue with: "
                              f"{self.run.resume_command()}", flush=True)
                        return False
                    finished = state.epoch >= self.epochs
                    if state.epoch % self.eval_every == 0 or finished:
                        self.validate()
                    else:
                        self.run.save_checkpoint("last.npz", state)
                    if self.time_limit is not None and state.seconds >= self.time_limit and not finished:
                        print(f"time limit reached after epoch {state.epoch}; continue with: "
                              f"{self.run.resume_command()}", flush=True)
                        return False
                    self.stop.check()
            except StopRequested as stop:  # at a step boundary: the state in memory is whole, save it
                state.seconds = time.perf_counter() - started
                self.run.save_checkpoint("last.npz", state)
                raise TrainingInterrupted(state.iteration, state.epoch, self.run.path / "last.npz",
                                          stop.signum) from None
        self.run.save_predictions(self.val_loader.dataset, self.device)
        if state.rows:
            best = max(state.rows, key=lambda row: row["mean_iou"])
            print(f"done in {duration(state.seconds)}: best validation mean IoU {best['mean_iou']:.4f} "
                  f"(epoch {best['epoch']}); checkpoints in {self.run.path}", flush=True)
        return True

    def train_epoch(self, started):
        """The rest of the epoch under way, from batch ``state.batch_in_epoch`` on; ``started`` is the
        ``time.perf_counter()`` at which the run would have started without pauses (for the time limit)."""
        state = self.state
        self.model.train()
        self.train_loader.set_epoch(state.epoch)
        batches = len(self.train_loader)
        bar = tqdm(total=batches, initial=state.batch_in_epoch, desc=f"epoch {state.epoch + 1}/{self.epochs}",
                   unit="batch", disable=not self.progress, dynamic_ncols=True)
        running, running_count = None, 0
        with bar:
            for images, labels in self.train_loader.iterate(start=state.batch_in_epoch):
                lr = self.schedule(state.iteration)
                x, y = to_device(images, self.device), to_device(labels, self.device)
                self.model.zero_grad()
                scores = self.model.forward(x)
                loss = self.loss_layer.forward(scores, y)
                self.model.backward(self.loss_layer.backward())
                # Reading the loss costs nothing on the CPU; on a GPU it is read every PROGRESS_REFRESH steps.
                if self.device == "cpu" and not np.isfinite(loss):
                    raise NonFiniteLoss(state.iteration, float(loss))
                self.optimizer.step(lr)
                running = loss if running is None else running + loss
                running_count += 1
                self._add_to_training_loss(loss)
                state.iteration += 1
                state.batch_in_epoch += 1
                bar.update(1)
                self.stop.check()
                if running_count == PROGRESS_REFRESH or state.batch_in_epoch == batches:
                    mean = float(to_numpy(running)) / running_count
                    if not math.isfinite(mean):
                        raise NonFiniteLoss(state.iteration, mean)
                    bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}")
                    running, running_count = None, 0
                if self.time_limit is not None and time.perf_counter() - started >= self.time_limit:
                    if state.batch_in_epoch < batches:
                        return
        state.epoch += 1
        state.batch_in_epoch = 0

    def _add_to_training_loss(self, loss):
        total = self._loss_since_validation
        self._loss_since_validation = loss if total is None else total + loss
        self._steps_since_validation += 1

    def validate(self):
        """Score the model on the validation set; log the row, save best.npz if the mean IoU improved,
        last.npz, and the learning curves."""
        state = self.state
        loss_layer = self.loss_layer
        scores, val_loss = evaluate_model(self.model, self.val_loader, self.val_loader.num_classes,
                                          loss_layer.ignore_index, self.device, loss_layer.class_weights,
                                          loss_layer.normalize, progress=self.progress, description="validate")
        train_loss = float("nan")
        if self._loss_since_validation is not None:
            train_loss = float(to_numpy(self._loss_since_validation)) / self._steps_since_validation
        self._loss_since_validation, self._steps_since_validation = None, 0
        row = {"epoch": state.epoch, "iteration": state.iteration, "train_loss": train_loss, "val_loss": val_loss,
               "pixel_accuracy": scores["pixel_accuracy"], "mean_accuracy": scores["mean_accuracy"],
               "mean_iou": scores["mean_iou"], "frequency_weighted_iou": scores["frequency_weighted_iou"],
               "seconds": state.seconds}
        state.rows.append(row)
        self.run.write_log(state.rows)
        print(f"epoch {state.epoch} iteration {state.iteration}: train loss {train_loss:.4f}, "
              f"val loss {val_loss:.4f}, pixel acc {row['pixel_accuracy']:.4f}, "
              f"mean acc {row['mean_accuracy']:.4f}, mean IoU {row['mean_iou']:.4f}, "
              f"fw IoU {row['frequency_weighted_iou']:.4f} ({duration(state.seconds)})", flush=True)
        if row["mean_iou"] > state.best_mean_iou:
            state.best_mean_iou = row["mean_iou"]
            self.run.save_checkpoint("best.npz", state)
        self.run.save_checkpoint("last.npz", state)
        self.run.save_learning_curves(state.rows)


def duration(seconds):
    """'42 s' under two minutes, else '4.7 min': short runs should not read '0.0 min'."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
