"""The training loop behind ``python -m minifcn.train``: data, model, SGD, evaluation, checkpoints, figures."""

import csv
import dataclasses
import io
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .files.atomic import remove_leftover_temporaries, write_text_atomically
from .backend import is_out_of_memory, to_device, to_numpy
from .files.checkpoint import load_checkpoint, make_metadata, save_checkpoint
from .cli import UsageError
from .data import BatchLoader, open_dataset
from .data.transforms import PREPROCESSING_FROM_SCRATCH
from .data_parallel import DataParallel
from .inference import evaluate_model, predict_labels
from .layers import SoftmaxCrossEntropy
from .models import build_model
from .optim import SGD, Adam, constant_lr, poly_lr, warmup
from .viz import save_learning_curves, save_prediction_grid

LOG_FIELDS = ["epoch", "iteration", "train_loss", "val_loss", "pixel_accuracy", "mean_accuracy", "mean_iou",
              "frequency_weighted_iou", "seconds"]
OPTIMIZER_PREFIX = "optimizer/"  # checkpoint entries holding the optimizer state
RUN_FILES = ("config.json", "log.csv", "best.npz", "last.npz", "learning_curves.png", "predictions.png")
PROGRESS_REFRESH = 10  # iterations between reads of the running loss (each read syncs a GPU)


@dataclasses.dataclass
class TrainingConfig:
    """Every option of a run; saved as config.json so that ``--resume`` continues the same run.

    The defaults are the no-argument job: a small compact FCN-8s trained from scratch with Adam on
    synthetic 96x96 images, which reaches its figures in the README within 5 minutes on a 2-core CPU.
    ``python -m minifcn.train`` fills in other defaults for real data (the reference's SGD recipe).
    """

    data: str = "synthetic"
    data_root: str = None
    train_split: str = None
    val_split: str = None
    crop_size: int = None
    flip: bool = True
    scale: tuple = None
    synthetic_size: tuple = (1400, 200)
    image_size: int = 96
    max_val_images: int = None
    arch: str = "fcn8s"
    width: float = 0.25
    fc_channels: int = 256
    geometry: str = "compact"
    init: str = None
    freeze: str = None
    at_once: bool = False
    learn_upsampling: bool = False
    dropout: float = 0.0
    epochs: int = 8
    batch_size: int = 8
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_policy: str = "poly"
    warmup: int = 50
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss_normalize: bool = True
    class_weights: str = "none"
    device: str = "cpu"
    threads: int = None  # CPU threads each batch is split over (None: every core this process may use)
    seed: int = 0
    eval_every: int = 1

    def validate(self):
        """Raise UsageError for values no run can use."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                    "fc_channels": self.fc_channels, "image_size": self.image_size}
        problems = [f"--{name.replace('_', '-')} must be positive, got {value}"
                    for name, value in positive.items() if value is None or value < 1]
        if self.width <= 0:
            problems.append(f"--width must be positive, got {self.width}")
        if self.crop_size is not None and self.crop_size < 1:
            problems.append(f"--crop-size must be positive, got {self.crop_size}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"--threads must be positive, got {self.threads}")
        if not 0 <= self.dropout < 1:
            problems.append(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.optimizer not in ("sgd", "adam"):
            problems.append(f"--optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            problems.append("need --lr > 0, 0 <= --momentum < 1 and --weight-decay >= 0")
        if self.data != "synthetic" and not self.data_root:
            problems.append(f"--data {self.data} needs --data-root")
        if problems:
            raise UsageError("; ".join(problems))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        known = {field.name for field in dataclasses.fields(cls)}
        values.setdefault("optimizer", "sgd")  # runs from before Adam existed all used SGD
        config = cls(**{key: value for key, value in values.items() if key in known})
        for name in ("scale", "synthetic_size"):
            if getattr(config, name) is not None:
                setattr(config, name, tuple(getattr(config, name)))
        return config


def open_splits(config):
    """(train dataset, validation dataset) for a config."""
    if config.data == "synthetic":
        train_size, val_size = config.synthetic_size
        common = {"image_size": config.image_size, "seed": config.seed}
        return (open_dataset("synthetic", split="train", size=train_size, **common),
                open_dataset("synthetic", split="val", size=val_size, **common))
    train = open_dataset(config.data, config.data_root, config.train_split or "train")
    val = open_dataset(config.data, config.data_root, config.val_split or "val")
    return train, val


class Subset:
    """The first ``count`` items of a dataset (for quicker validation)."""

    def __init__(self, dataset, count):
        self.dataset, self.count = dataset, min(count, len(dataset))
        for name in ("class_names", "class_colors", "num_classes", "ignore_index"):
            setattr(self, name, getattr(dataset, name))
        self.names = list(dataset.names[: self.count])

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.dataset[index]


class Trainer:
    """One training run in ``run_dir``; ``fit()`` trains, evaluates, checkpoints and draws."""

    def __init__(self, config, run_dir, progress=True, time_limit=None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.time_limit = None if time_limit is None else time_limit * 60.0
        self.device = config.device
        self.train_set, val_set = open_splits(config)
        if config.max_val_images:
            val_set = Subset(val_set, config.max_val_images)
        self.val_set = val_set
        self.num_classes = self.train_set.num_classes
        self.ignore_index = self.train_set.ignore_index

        self.model = build_model(config.arch, num_classes=self.num_classes, width=config.width,
                                 fc_channels=config.fc_channels, geometry=config.geometry, at_once=config.at_once,
                                 learn_upsampling=config.learn_upsampling, dropout=config.dropout, seed=config.seed)
        # A checkpoint given with --init brings the preprocessing its weights were trained with instead.
        self.preprocessing = dict(PREPROCESSING_FROM_SCRATCH)
        self.source = "random initialisation (He-normal), seed %d" % config.seed
        if config.init:
            self._load_initial_weights(config.init)
        if config.freeze:
            try:
                self.model.freeze(config.freeze)
            except ValueError as error:
                raise UsageError(str(error)) from None
        self.model.to(self.device)
        # What the loop runs: on the CPU, each batch split over the cores (one thread per part); on a
        # GPU the model itself, which the device already parallelises.
        self.runner = DataParallel(self.model, config.threads) if self.device == "cpu" else self.model

        if config.optimizer == "adam":
            self.optimizer = Adam(self.model.parameters(), config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = SGD(self.model.parameters(), config.lr, config.momentum, config.weight_decay)
        class_weights = None
        if config.class_weights == "median-frequency":
            class_weights = np.asarray(self.train_set.class_weights(), np.float32)
        self.class_weights = class_weights
        # On the GPU the loader validates labels on the host, so the loss needs no device round trip.
        self.loss_layer = SoftmaxCrossEntropy(self.ignore_index, config.loss_normalize, class_weights,
                                              check_labels=self.device == "cpu")
        self.train_loader = BatchLoader(self.train_set, config.batch_size, self.preprocessing, config.crop_size,
                                        shuffle=True, flip=config.flip, scale=config.scale, seed=config.seed)
        same_size = config.data == "synthetic"
        self.val_loader = BatchLoader(self.val_set, config.batch_size if same_size else 1, self.preprocessing,
                                      shuffle=False, seed=config.seed)
        self.iterations = config.epochs * len(self.train_loader)
        self.epoch = 0
        self.batch_in_epoch = 0
        self.iteration = 0
        self.seconds = 0.0
        self.best_mean_iou = -1.0
        self.rows = []
        self.since_eval_loss = None
        self.since_eval_count = 0

    # --- initial weights --------------------------------------------------------------------------

    def _load_initial_weights(self, path):
        checkpoint = load_checkpoint(path)
        arch = checkpoint.metadata.get("arch")
        state = dict(checkpoint.state)
        expected = {name: tuple(p.shape) for name, p in self.model.parameters()}
        if arch != "vgg16" and checkpoint.metadata.get("num_classes") != self.num_classes:
            # An FCN for other classes: keep its trunk and head, start the class layers afresh.
            state = {name: value for name, value in state.items()
                     if not name.startswith(("score_", "upscore"))}
        wrong = [f"{name}: checkpoint {tuple(value.shape)}, model {expected[name]}"
                 for name, value in state.items() if name in expected and tuple(value.shape) != expected[name]]
        fc_mismatch = [line for line in wrong if line.startswith(("fc6", "fc7"))]
        if fc_mismatch and len(fc_mismatch) == len(wrong):
            # A classifier's fc6/fc7 only fit --fc-channels 4096: start them afresh instead.
            state = {name: value for name, value in state.items() if not name.startswith(("fc6", "fc7"))}
            wrong = []
        if wrong:
            raise UsageError(f"{path} does not fit this model ({'; '.join(wrong[:3])}); "
                             f"check --width and --arch")
        missing_convs = [name for name in expected if name.startswith("conv") and name not in state]
        if missing_convs:
            raise UsageError(f"{path} lacks {', '.join(missing_convs[:4])}: not a VGG16 or FCN checkpoint")
        self.model.load_state_dict({name: value for name, value in state.items() if name in expected}, strict=False)
        self.preprocessing = dict(checkpoint.metadata["preprocessing"])
        self.source = f"initialised from {path}"

    # --- the loop ---------------------------------------------------------------------------------

    def learning_rate(self):
        config = self.config
        schedule = poly_lr if config.lr_policy == "poly" else constant_lr
        return warmup(schedule(config.lr, self.iteration, self.iterations), self.iteration, config.warmup)

    def fit(self):
        """Train for the configured epochs; return the exit code (0, or 130 after Ctrl-C)."""
        config = self.config
        print(f"training {config.arch} (width {config.width}, fc {config.fc_channels}, {config.geometry} geometry) "
              f"on {config.data}: {len(self.train_set)} train / {len(self.val_set)} val images, "
              f"{self.num_classes} classes, {config.device}; {self.source}; run directory {self.run_dir}",
              flush=True)
        started = time.perf_counter() - self.seconds
        previous_handler = self._catch_ctrl_c()
        try:
            while self.epoch < config.epochs:
                self._train_epoch(started)
                self.seconds = time.perf_counter() - started
                if self.batch_in_epoch:  # stopped by the time limit inside the epoch
                    self._save("last.npz")
                    print(f"time limit reached at iteration {self.iteration}; continue with: "
                          f"{resume_command(self.run_dir)}", flush=True)
                    return 0
                finished = self.epoch >= config.epochs
                if self.epoch % config.eval_every == 0 or finished:
                    self._evaluate_and_log()
                else:
                    self._save("last.npz")
                if self.time_limit is not None and self.seconds >= self.time_limit and not finished:
                    print(f"time limit reached after epoch {self.epoch}; continue with: "
                          f"{resume_command(self.run_dir)}", flush=True)
                    return 0
                self._stop_if_asked()
        except StopRequested:  # at a step boundary: the state in memory is whole, save it
            self.seconds = time.perf_counter() - started
            self._save("last.npz")
            print(f"interrupted at iteration {self.iteration} (epoch {self.epoch + 1}); saved "
                  f"{self.run_dir / 'last.npz'}; resume with: {resume_command(self.run_dir)}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside our handler: save nothing half done
            print(f"\ninterrupted; the last checkpoint in {self.run_dir} is kept; resume with: "
                  f"{resume_command(self.run_dir)}", file=sys.stderr)
            return 130
        except NonFiniteLoss as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            # Nothing is saved here: the state in memory may be half updated. last.npz on disk is the
            # last complete checkpoint, written atomically, and resuming continues from it exactly.
            kept = (f"{self.run_dir / 'last.npz'} is intact; after changing settings, start a new run "
                    f"(resuming keeps the old ones)" if (self.run_dir / "last.npz").exists()
                    else "no checkpoint had been written yet")
            print(f"error: out of memory on {self.device} at iteration {self.iteration + 1} "
                  f"(batch {config.batch_size}, crop {config.crop_size or 'whole images'}): try a smaller "
                  f"--batch-size or --crop-size; {kept}", file=sys.stderr)
            return 2
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        self._draw_predictions()
        best = max(self.rows, key=lambda row: row["mean_iou"]) if self.rows else None
        if best:
            print(f"done in {duration(self.seconds)}: best validation mean IoU {best['mean_iou']:.4f} "
                  f"(epoch {best['epoch']}); checkpoints in {self.run_dir}", flush=True)
        return 0

    def _train_epoch(self, started):
        config = self.config
        self.model.train()
        self.train_loader.set_epoch(self.epoch)
        batches = self.train_loader.batch_indices()
        bar = tqdm(total=len(batches), initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{config.epochs}",
                   unit="batch", disable=not self.progress, dynamic_ncols=True)
        running, running_count = None, 0
        with bar:
            for images, labels in self.train_loader.iterate(start=self.batch_in_epoch):
                lr = self.learning_rate()
                x, y = to_device(images, self.device), to_device(labels, self.device)
                scores = self.runner.forward(x)
                loss = self.loss_layer.forward(scores, y)
                self.runner.zero_grad()
                self.runner.backward(self.loss_layer.backward())
                if self.device == "cpu" and not np.isfinite(loss):
                    raise NonFiniteLoss(self.iteration, float(loss), config)
                self.optimizer.step(lr)
                running = loss if running is None else running + loss
                running_count += 1
                self.since_eval_loss = loss if self.since_eval_loss is None else self.since_eval_loss + loss
                self.since_eval_count += 1
                self.iteration += 1
                self.batch_in_epoch += 1
                bar.update(1)
                self._stop_if_asked()
                if running_count == PROGRESS_REFRESH or self.batch_in_epoch == len(batches):
                    mean = float(to_numpy(running)) / running_count
                    if not math.isfinite(mean):
                        raise NonFiniteLoss(self.iteration, mean, config)
                    bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}")
                    running, running_count = None, 0
                if self.time_limit is not None and time.perf_counter() - started >= self.time_limit:
                    if self.batch_in_epoch < len(batches):
                        return
        self.epoch += 1
        self.batch_in_epoch = 0

    # --- Ctrl-C --------------------------------------------------------------------------------------

    def _catch_ctrl_c(self):
        """Make Ctrl-C stop training at the next step boundary; return the previous handler (None if
        signals cannot be handled here, outside the main thread)."""
        self._stop_requested = False
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGINT, self._request_stop)

    def _request_stop(self, signum, frame):
        # Saving at the moment of Ctrl-C could catch an optimizer step half applied; instead the
        # step finishes and the loop stops at its end (see _stop_if_asked), where the state is whole.
        if self._stop_requested:
            raise KeyboardInterrupt  # pressed again: stop now, keeping only what is already on disk
        self._stop_requested = True
        print("\nstopping after the current step (Ctrl-C again to quit without saving it)", file=sys.stderr,
              flush=True)

    def _stop_if_asked(self):
        if self._stop_requested:
            raise StopRequested

    def _evaluate_and_log(self):
        config = self.config
        scores, val_loss = evaluate_model(self.runner, self.val_loader, self.num_classes, self.ignore_index,
                                          self.device, self.class_weights, config.loss_normalize,
                                          progress=self.progress, description="validate")
        train_loss = float(to_numpy(self.since_eval_loss)) / max(self.since_eval_count, 1) \
            if self.since_eval_loss is not None else float("nan")
        self.since_eval_loss, self.since_eval_count = None, 0
        row = {"epoch": self.epoch, "iteration": self.iteration, "train_loss": train_loss, "val_loss": val_loss,
               "pixel_accuracy": scores["pixel_accuracy"], "mean_accuracy": scores["mean_accuracy"],
               "mean_iou": scores["mean_iou"], "frequency_weighted_iou": scores["frequency_weighted_iou"],
               "seconds": self.seconds}
        self.rows.append(row)
        self._write_log()
        print(f"epoch {self.epoch} iteration {self.iteration}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
              f"pixel acc {row['pixel_accuracy']:.4f}, mean acc {row['mean_accuracy']:.4f}, "
              f"mean IoU {row['mean_iou']:.4f}, fw IoU {row['frequency_weighted_iou']:.4f} "
              f"({duration(self.seconds)})", flush=True)
        if row["mean_iou"] > self.best_mean_iou:
            self.best_mean_iou = row["mean_iou"]
            self._save("best.npz")
        self._save("last.npz")
        save_learning_curves(self.rows, self.run_dir / "learning_curves.png")

    def _write_log(self):
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
        write_text_atomically(self.run_dir / "log.csv", text.getvalue())

    # --- checkpoints --------------------------------------------------------------------------------

    def _save(self, name):
        training = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "iteration": self.iteration,
                    "seconds": self.seconds, "best_mean_iou": self.best_mean_iou,
                    "dropout_rng": self.model.dropout_rng.bit_generator.state, "rows": self.rows,
                    "config": self.config.to_dict()}
        metadata = make_metadata(self.config.arch, self.preprocessing, options=self.model.options(),
                                 num_classes=self.num_classes, class_names=self.train_set.class_names,
                                 class_colors=np.asarray(self.train_set.class_colors).tolist(), training=training,
                                 source=self.source)
        # Only last.npz is resumed from; best.npz is for evaluate/predict and stays model-sized
        # (Adam's two moments would triple it).
        state = {} if name != "last.npz" else {
            OPTIMIZER_PREFIX + key: value for key, value in self.optimizer.state_dict().items()}
        save_checkpoint(self.run_dir / name, self.model.state_dict(), metadata, extra_arrays=state)

    def resume(self):
        """Continue from ``run_dir/last.npz``: weights, optimizer, position, dropout stream, log."""
        # A process killed while writing leaves its hidden temporary file (see atomic_files) behind.
        for name in RUN_FILES:
            remove_leftover_temporaries(self.run_dir / name)
        path = self.run_dir / "last.npz"
        if not path.exists():  # stopped before its first checkpoint: nothing to continue from
            print(f"{self.run_dir} has no checkpoint yet: starting its run from the beginning", flush=True)
            return
        checkpoint = load_checkpoint(path)
        training = checkpoint.metadata.get("training") or {}
        try:
            self.model.load_state_dict(checkpoint.state)
        except ValueError as error:
            raise UsageError(f"{path}: {error}") from None
        state = {key[len(OPTIMIZER_PREFIX):]: value for key, value in checkpoint.extra.items()
                 if key.startswith(OPTIMIZER_PREFIX)}
        try:
            self.optimizer.load_state_dict(state, self.device)
        except ValueError as error:
            raise UsageError(f"{path}: {error}") from None
        self.preprocessing = dict(checkpoint.metadata["preprocessing"])
        self.train_loader.preprocessing = self.val_loader.preprocessing = self.preprocessing
        self.epoch = int(training.get("epoch", 0))
        self.batch_in_epoch = int(training.get("batch_in_epoch", 0))
        self.iteration = int(training.get("iteration", 0))
        self.seconds = float(training.get("seconds", 0.0))
        self.best_mean_iou = float(training.get("best_mean_iou", -1.0))
        self.rows = list(training.get("rows", []))
        if "dropout_rng" in training:
            self.model.dropout_rng.bit_generator.state = training["dropout_rng"]
        self.source = checkpoint.metadata.get("source", self.source)
        print(f"resuming {self.run_dir} at epoch {self.epoch + 1}, iteration {self.iteration}", flush=True)

    # --- figures ------------------------------------------------------------------------------------

    def _draw_predictions(self, count=4):
        """predictions.png: image / ground truth / prediction for the first validation images."""
        self.model.eval()
        images, truths, predictions = [], [], []
        for index in range(min(count, len(self.val_set))):
            image, label = self.val_set[index]
            images.append(image)
            truths.append(label)
            predictions.append(predict_labels(self.model, image, self.preprocessing, self.device))
        if images:
            save_prediction_grid(images, truths, predictions, self.train_set.class_names, self.train_set.class_colors,
                                 self.run_dir / "predictions.png", self.ignore_index)


def duration(seconds):
    """'42 s' under two minutes, else '4.7 min': short runs should not read '0.0 min'."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class StopRequested(Exception):
    """Ctrl-C was pressed and training has reached a step boundary."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration and the likely causes."""

    def __init__(self, iteration, value, config):
        hint = "the learning rate is probably too high (try --lr %.2g)" % (config.lr / 10)
        if not config.loss_normalize:
            hint += ", or the summed loss (--no-loss-normalize) needs a far smaller --lr"
        super().__init__(f"the loss became {value} at iteration {iteration}: {hint}; "
                         f"the last good checkpoint is kept")


def resume_command(run_dir):
    return f"python -m minifcn.train --resume {run_dir}"
