"""The training loop: steps of SGD (or Adam) over the training batches, and periodic validation.

Everything it runs comes ready-built (see ``training.build`` for how ``python -m minifcn.train`` makes
the pieces from a TrainingConfig): the model, the loss layer, the optimizer, the loaders, the learning
rate schedule, and the run directory where it saves checkpoints, the log and the figures.
"""

import math
import signal
import time

import numpy as np
from tqdm import tqdm

from ..backend import to_device, to_numpy
from ..inference import evaluate_model
from .allreduce import flag_values, flags_from, labelled_weight
from .distributed import SingleProcess, rank_dropout_stream, weights_checksum
from .errors import NonFiniteLoss, TrainingInterrupted
from .interrupt import StopAtStepBoundary, StopRequested
from .state import TrainingState

PROGRESS_REFRESH = 10  # iterations between reads of the running loss (each read syncs a GPU)


class Trainer:
    """Trains ``model`` for ``epochs`` epochs; ``fit()`` runs it.

    ``model`` has ``forward``, ``forward_backward``, ``zero_grad``, ``train``, ``eval`` and
    ``clear_cache`` (a model, or a ``DataParallel`` around one); ``loss_layer`` is a
    SoftmaxCrossEntropy; ``optimizer`` updates the model's parameters with ``step(lr)``;
    ``train_loader`` and ``val_loader`` are BatchLoaders; ``schedule(iteration)`` gives the learning
    rate of each step; ``run`` (a RunDirectory) saves checkpoints, the log and figures. Batches go to
    ``device`` as they enter.

    After every ``eval_every`` epochs and the last, the model is validated and best.npz (when the mean
    IoU improved) and last.npz are saved. ``state`` (a TrainingState) is where the run stands, restored
    from last.npz to resume. ``time_limit`` (seconds of training, counting the time before a resume)
    stops the run, saving last.npz, for it to be resumed later.

    Distributed over the ranks of ``world`` (see ``training.distributed``), each rank's loaders yield
    its share of the batches, ``allreduce`` (a GradientAllReduce) sums the gradients after each
    backward, and the ranks agree on when to stop; only the root's ``run`` writes anything.
    """

    def __init__(self, model, loss_layer, optimizer, train_loader, val_loader, schedule, run, epochs,
                 device="cpu", eval_every=1, state=None, progress=True, time_limit=None, world=None,
                 allreduce=None):
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
        self.world = world or SingleProcess()
        self.allreduce = allreduce
        self.stop = StopAtStepBoundary(announce=self.world.is_root)
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
                    # Each rank reads its own clock: the ranks agree, or one would wait for the others.
                    if self.time_limit is not None and self.world.any(
                            state.seconds >= self.time_limit and not finished):
                        print(f"time limit reached after epoch {state.epoch}; continue with: "
                              f"{self.run.resume_command()}", flush=True)
                        return False
                    self._stop_if_asked()
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
                if self.allreduce is None:
                    loss, agreed = self._step(images, labels), None
                else:
                    loss, agreed = self._distributed_step(images, labels, started)
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
                self._stop_if_asked(agreed)
                if running_count == PROGRESS_REFRESH or state.batch_in_epoch == batches:
                    mean = float(to_numpy(running)) / running_count
                    if not math.isfinite(mean):
                        raise NonFiniteLoss(state.iteration, mean)
                    bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}")
                    running, running_count = None, 0
                if agreed is not None:
                    time_up = agreed["time_up"] > 0
                else:
                    time_up = self.time_limit is not None and time.perf_counter() - started >= self.time_limit
                if time_up and state.batch_in_epoch < batches:
                    return
        state.epoch += 1
        state.batch_in_epoch = 0

    def _step(self, images, labels):
        """Forward and backward on a batch; the loss (0-d, on the device). Gradients in the parameters."""
        x, y = to_device(images, self.device), to_device(labels, self.device)
        self.model.zero_grad()
        return self.model.forward_backward(x, y, self.loss_layer)

    def _distributed_step(self, images, labels, started):
        """``_step`` on this rank's part of the batch (images None: it has none), then the gradients
        and the loss summed over the ranks. Returns the global batch's loss and the agreed stop flags
        (FLAGS -> how many ranks set it)."""
        # The model inside a DataParallel holds the dropout stream.
        network = getattr(self.model, "model", self.model)
        with rank_dropout_stream(network, self.world):  # every rank draws, even with nothing to compute
            if images is None:
                self.model.zero_grad()
                loss, weight = 0.0, labelled_weight(np.zeros((0,), np.int32), self.loss_layer)
            else:
                loss, weight = self._step(images, labels), labelled_weight(labels, self.loss_layer)
        flags = self._local_flags()
        flags["time_up"] = self.time_limit is not None and time.perf_counter() - started >= self.time_limit
        reduced = self.allreduce.reduce(loss, weight, flags)
        return reduced.loss, reduced.flags

    def _local_flags(self):
        requested = self.stop.requested
        return {"sigint": requested == signal.SIGINT, "sigterm": requested == signal.SIGTERM, "time_up": False}

    def _stop_if_asked(self, agreed=None):
        """Raise StopRequested if Ctrl-C or SIGTERM asked to stop: this process's request alone, or in a
        distributed run any rank's, agreed in the step's all-reduce (``agreed``) or, between epochs,
        in a call of its own."""
        if self.world.size == 1:
            self.stop.check()
            return
        if agreed is None:
            agreed = flags_from(self.world.sum(np.array(flag_values(self._local_flags()), np.float32)))
        if agreed["sigterm"]:
            raise StopRequested(signal.SIGTERM)
        if agreed["sigint"]:
            raise StopRequested(signal.SIGINT)

    def _add_to_training_loss(self, loss):
        total = self._loss_since_validation
        self._loss_since_validation = loss if total is None else total + loss
        self._steps_since_validation += 1

    def validate(self):
        """Score the model on the validation set; log the row, save best.npz if the mean IoU improved,
        last.npz, and the learning curves."""
        state = self.state
        loss_layer = self.loss_layer
        combine = None if self.world.size == 1 else self._combine_evaluations
        scores, val_loss = evaluate_model(self.model, self.val_loader, self.val_loader.num_classes,
                                          loss_layer.ignore_index, self.device, loss_layer.class_weights,
                                          loss_layer.normalize, progress=self.progress, description="validate",
                                          combine=combine)
        if self.world.size > 1 and not self.world.same_everywhere(weights_checksum(self.model)):
            # Every rank applies the same summed gradients to the same weights, so this is a bug or
            # machines that round differently; the root's weights are the ones saved.
            print(f"warning: at iteration {state.iteration} the processes' weights differ; the root's are saved",
                  flush=True)
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

    def _combine_evaluations(self, matrix, loss, batches):
        """The confusion matrix (K, K), summed per-batch losses and batch count of every rank's share of
        the validation set, added up in one call (float64 holds pixel counts exactly up to 2**53)."""
        totals = self.world.sum(np.concatenate([matrix.ravel().astype(np.float64), [loss, batches]]))
        return totals[:-2].reshape(matrix.shape).astype(np.int64), float(totals[-2]), int(totals[-1])


def duration(seconds):
    """'42 s' under two minutes, else '4.7 min': short runs should not read '0.0 min'."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
