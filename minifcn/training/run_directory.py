"""The files of a training run, written so that a run killed at any moment can be resumed exactly.

    config.json            the options of the run (``--resume`` reads them back)
    log.csv                one row per evaluation: epoch, iteration, losses, the four scores, seconds
    best.npz, last.npz     checkpoints (best validation mean IoU; latest); last.npz also holds the
                           optimizer's state and the TrainingState, which is what resuming reads
    learning_curves.png    loss and validation mean IoU against iterations
    predictions.png        image / ground truth / prediction for a few validation images

Every file is replaced atomically (see ``files.atomic``): a process killed while writing leaves the
previous version whole, and a hidden temporary file that resuming removes. One process at a time holds
a run directory (``lock_run_directory``): two trainings writing one folder would leave one run's
config beside the other's weights.
"""

import csv
import io
import json
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run directory is then not guarded
    fcntl = None

import numpy as np

from ..files.atomic import remove_leftover_temporaries, write_text_atomically
from ..files.checkpoint import load_checkpoint, make_metadata, save_checkpoint
from ..inference import expected_shapes, predict_labels
from ..viz import save_learning_curves, save_prediction_grid
from .config import TrainingConfig
from .errors import RunDirectoryError
from .state import TrainingState

RUN_FILES = ("config.json", "log.csv", "best.npz", "last.npz", "learning_curves.png", "predictions.png")
LOG_FIELDS = ["epoch", "iteration", "train_loss", "val_loss", "pixel_accuracy", "mean_accuracy", "mean_iou",
              "frequency_weighted_iou", "seconds"]
OPTIMIZER_PREFIX = "optimizer/"  # checkpoint entries holding the optimizer state


LOCK_FILE = ".lock"  # held with flock by the process training in the directory


def read_config(run_dir):
    """The TrainingConfig saved in ``run_dir``/config.json, checked as a new run's options are;
    RunDirectoryError if there is none or it is not one a run could have written."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirectoryError(f"{run_dir}: not a run directory to resume (no config.json)")
    try:
        config = TrainingConfig.from_json(path.read_text(encoding="utf-8"))
        config.validate()
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as error:  # ConfigError is a ValueError
        raise RunDirectoryError(f"{path}: not a valid run configuration ({error})") from None
    return config


class RunDirectoryLock:
    """The lock of one run directory, held until ``release()`` or the process ends (the kernel drops
    an flock when its holder dies, so a killed training never leaves its directory stuck)."""

    def __init__(self, path):
        self.path = Path(path)
        self._fd = None

    def acquire(self):
        """Take the lock (making the directory if needed); RunDirectoryError if another process holds it."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{self.path} is a file, not a run directory")
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise RunDirectoryError(f"{self.path} is in use by another training (process {holder}); wait for "
                                        f"it to end or stop it, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()
        return False


def lock_run_directory(path):
    """Hold ``path`` (made if needed) for this process, until the returned lock is released (it is a
    context manager) or the process ends; RunDirectoryError if another training holds it."""
    return RunDirectoryLock(path).acquire()


def differing_fields(saved, config):
    """The names of the options in which two config dicts (``TrainingConfig.to_dict()``) differ, compared
    as config.json stores them (tuples as lists)."""
    saved, config = json.loads(json.dumps(saved)), json.loads(json.dumps(config))
    return sorted(key for key in set(saved) | set(config) if key in saved and key in config and saved[key] != config[key])


def resume_command(run_dir, processes=1):
    """The command that continues the run in ``run_dir`` (trained by ``processes`` under mpiexec)."""
    launcher = f"mpiexec -n {processes} " if processes > 1 else ""
    return f"{launcher}python -m minifcn.train --resume {run_dir}"


class RunDirectory:
    """The run in ``path`` of ``config``, whose checkpoints hold ``model`` and ``optimizer``.

    ``preprocessing`` (dict, see ``data.transforms``) is the input convention the weights expect and
    ``source`` says where they started from; both are saved in every checkpoint (and read back by
    ``restore``). ``class_names`` (K names) and ``class_colors`` (K, 3) uint8 describe the classes.
    ``processes`` is how many train the run together (under mpiexec), for the resume command.
    """

    processes = 1

    def __init__(self, path, config, model, optimizer, preprocessing, source, class_names, class_colors):
        self.path = Path(path)
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.preprocessing = dict(preprocessing)
        self.source = source
        self.class_names = list(class_names)
        self.class_colors = np.asarray(class_colors)

    def resume_command(self):
        return resume_command(self.path, self.processes)

    def create(self):
        """Make the directory and write config.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config()

    def write_config(self):
        write_text_atomically(self.path / "config.json", self.config.to_json())

    def clear(self):
        """Remove an earlier run's files (for ``--overwrite``), checkpoints first: a run killed before its
        first checkpoint must not leave the old weights for ``--resume`` to take as its own."""
        for name in ("last.npz", "best.npz") + tuple(n for n in RUN_FILES if not n.endswith(".npz")):
            (self.path / name).unlink(missing_ok=True)
        self.remove_leftover_temporaries()

    # --- checkpoints --------------------------------------------------------------------------------

    def has_checkpoint(self):
        return (self.path / "last.npz").exists()

    def save_checkpoint(self, name, state):
        """Write ``name`` (best.npz or last.npz): the weights, and the metadata that says how to use them
        and, with ``state`` (a TrainingState), where the run stands."""
        training = {**state.to_dict(), "dropout_rng": self.model.dropout_rng.bit_generator.state,
                    "config": self.config.to_dict()}
        metadata = make_metadata(self.config.arch, self.preprocessing, options=self.model.options(),
                                 num_classes=self.model.num_classes, class_names=self.class_names,
                                 class_colors=self.class_colors.tolist(), training=training, source=self.source)
        # Only last.npz is resumed from; best.npz is for evaluate/predict and stays model-sized
        # (Adam's two moments would triple it).
        extra = {} if name != "last.npz" else {
            OPTIMIZER_PREFIX + key: value for key, value in self.optimizer.state_dict().items()}
        save_checkpoint(self.path / name, self.model.state_dict(), metadata, extra_arrays=extra)

    def remove_leftover_temporaries(self):
        """Delete the hidden temporary files that a process killed while writing left behind."""
        for name in RUN_FILES:
            remove_leftover_temporaries(self.path / name)

    def restore(self, device):
        """Load last.npz into the model and the optimizer (whose state goes to ``device``) and return its
        TrainingState, with the dropout stream, preprocessing and source as they were; None when the
        run stopped before its first checkpoint. RunDirectoryError if it does not fit the model."""
        path = self.path / "last.npz"
        if not path.exists():
            return None
        checkpoint = load_checkpoint(path, shapes=expected_shapes)
        training = checkpoint.metadata.get("training")
        if not isinstance(training, dict) or not isinstance(training.get("config"), dict):
            raise RunDirectoryError(f"{path}: its training metadata is missing or malformed: not a checkpoint "
                                    f"of a run to resume")
        self.check_belongs(training["config"], path)
        optimizer_state = {key[len(OPTIMIZER_PREFIX):]: value for key, value in checkpoint.extra.items()
                           if key.startswith(OPTIMIZER_PREFIX)}
        try:
            state = TrainingState.from_dict(training)
            if not (state.batch_in_epoch >= 0 and 0 <= state.epoch <= state.iteration
                    and all(isinstance(row, dict) for row in state.rows)):
                raise ValueError(f"epoch {state.epoch}, batch {state.batch_in_epoch}, iteration {state.iteration}")
            self.model.load_state_dict(checkpoint.state)
            self.optimizer.load_state_dict(optimizer_state, device)
            if "dropout_rng" in training:
                self.model.dropout_rng.bit_generator.state = training["dropout_rng"]
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise RunDirectoryError(f"{path}: malformed training state ({' '.join(str(error).split())})") from None
        self.preprocessing = dict(checkpoint.metadata["preprocessing"])
        self.source = checkpoint.metadata.get("source", self.source)
        return state

    def check_belongs(self, saved_config, path):
        """RunDirectoryError unless the checkpoint at ``path``, trained with ``saved_config`` (a dict),
        is this run's: its options equal config.json's, except ``epochs`` where a fixed learning rate
        makes extending the run exact."""
        differing = differing_fields(saved_config, self.config.to_dict())
        if self.config.lr_policy == "fixed" and saved_config.get("lr_policy") == "fixed":
            differing = [name for name in differing if name != "epochs"]
        if differing:
            shown = ", ".join(f"{name} {saved_config.get(name)!r} vs {getattr(self.config, name)!r}"
                              for name in differing[:3])
            raise RunDirectoryError(f"{path} was not trained with {self.path / 'config.json'} (they differ in "
                                    f"{shown}): resuming would mix two runs; start a new run")

    # --- log and figures ----------------------------------------------------------------------------

    def write_log(self, rows):
        """log.csv: one line per evaluation row (dicts with the LOG_FIELDS), floats to 6 digits."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
        write_text_atomically(self.path / "log.csv", text.getvalue())

    def save_learning_curves(self, rows):
        save_learning_curves(rows, self.path / "learning_curves.png")

    def save_predictions(self, dataset, device, count=4):
        """predictions.png: image / ground truth / prediction of the model in eval mode for the first
        ``count`` items of ``dataset``."""
        self.model.eval()
        images, truths, predictions = [], [], []
        for index in range(min(count, len(dataset))):
            image, label = dataset[index]
            images.append(image)
            truths.append(label)
            predictions.append(predict_labels(self.model, image, self.preprocessing, device))
        if images:
            save_prediction_grid(images, truths, predictions, self.class_names, self.class_colors,
                                 self.path / "predictions.png", dataset.ignore_index)


class ReadOnlyRunDirectory(RunDirectory):
    """The run directory as the processes of a distributed run other than the root see it: they read
    last.npz to resume (``restore``) and write nothing, so that one process writes each file."""

    def create(self):
        pass

    def write_config(self):
        pass

    def clear(self):
        pass

    def save_checkpoint(self, name, state):
        pass

    def remove_leftover_temporaries(self):
        pass

    def write_log(self, rows):
        pass

    def save_learning_curves(self, rows):
        pass

    def save_predictions(self, dataset, device, count=4):
        pass
