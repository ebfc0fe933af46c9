"""TrainingConfig: every option of a run, checked, and saved as the run directory's config.json."""

import dataclasses
import json
import math

from .errors import ConfigError

# The smallest crop or synthetic image: FCN's coarsest map (pool5) has one cell per 32 x 32 pixels.
MIN_CROP_SIZE = 32


def option(name):
    """The command-line spelling of a config field: batch_size -> batch-size."""
    return name.replace("_", "-")


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass
class TrainingConfig:
    """Every option of a run; saved as config.json so that ``--resume`` continues the same run.

    The defaults are the no-argument job: a small compact FCN-8s trained from scratch with Adam on
    synthetic 96x96 images, which reaches its figures in the README within 3 minutes on a 2-core CPU.
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
    learn_upsampling: bool = True
    dropout: float = 0.0
    epochs: int = 7
    batch_size: int = 4
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
        """Raise ConfigError, listing every problem, for values no run can use (config.json edited by
        hand goes through here too, so every field's type is checked as well as its range)."""
        integers = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                    "fc_channels": self.fc_channels, "image_size": self.image_size, "seed": self.seed,
                    "warmup": self.warmup, "crop_size": self.crop_size, "threads": self.threads,
                    "max_val_images": self.max_val_images}
        numbers = {"width": self.width, "dropout": self.dropout, "lr": self.lr, "momentum": self.momentum,
                   "weight_decay": self.weight_decay}
        problems = [f"--{option(name)} must be an integer, got {value!r}" for name, value in integers.items()
                    if value is not None and not _is_integer(value)]
        problems += [f"--{option(name)} must be a finite number, got {value!r}" for name, value in numbers.items()
                     if not _is_number(value)]
        if problems:
            raise ConfigError("; ".join(problems))
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                    "fc_channels": self.fc_channels, "image_size": self.image_size}
        problems = [f"--{option(name)} must be positive, got {value}"
                    for name, value in positive.items() if value is None or value < 1]
        if self.width <= 0:
            problems.append(f"--width must be positive, got {self.width}")
        if self.crop_size is not None and self.crop_size < MIN_CROP_SIZE:
            problems.append(f"--crop-size must be at least {MIN_CROP_SIZE} (one cell of the network's coarsest "
                            f"map), got {self.crop_size}")
        if self.image_size < MIN_CROP_SIZE:
            problems.append(f"--image-size must be at least {MIN_CROP_SIZE}, got {self.image_size}")
        for name in ("threads", "max_val_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"--{option(name)} must be positive, got {getattr(self, name)}")
        if self.warmup < 0:
            problems.append(f"--warmup must be 0 or more, got {self.warmup}")
        if self.scale is not None:
            scale = tuple(self.scale)
            if len(scale) != 2 or not all(_is_number(v) for v in scale) or not 0 < scale[0] <= scale[1] <= 16:
                problems.append(f"--scale LOW HIGH needs 0 < LOW <= HIGH <= 16, got {' '.join(map(str, scale))}")
        if self.synthetic_size is None or len(self.synthetic_size) != 2 or not all(
                _is_integer(v) and v >= 1 for v in self.synthetic_size):
            problems.append(f"--synthetic-size needs two positive integers, got {self.synthetic_size}")
        if not 0 <= self.dropout < 1:
            problems.append(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.optimizer not in ("sgd", "adam"):
            problems.append(f"--optimizer must be sgd or adam, got {self.optimizer!r}")
        if self.lr_policy not in ("poly", "fixed"):
            problems.append(f"--lr-policy must be poly or fixed, got {self.lr_policy!r}")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            problems.append("need --lr > 0, 0 <= --momentum < 1 and --weight-decay >= 0")
        if self.data != "synthetic" and not self.data_root:
            problems.append(f"--data {self.data} needs --data-root")
        if not problems:
            problems += self._size_problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def _size_problems(self):
        """A network too large to build (checked from its shapes, before any memory is taken)."""
        from ..inference import expected_shapes

        try:
            expected_shapes({"arch": self.arch, "num_classes": 256,
                             "options": {"width": self.width, "fc_channels": self.fc_channels}})
        except ValueError as error:
            return [f"--width {self.width} with --fc-channels {self.fc_channels}: {error}"]
        return []

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        """The text of config.json."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text):
        """The config saved as ``text`` (config.json); fields it lacks take their defaults, fields this
        version no longer knows are skipped, so older runs stay resumable."""
        values = json.loads(text)
        known = {field.name for field in dataclasses.fields(cls)}
        values.setdefault("optimizer", "sgd")  # runs from before Adam existed all used SGD
        config = cls(**{key: value for key, value in values.items() if key in known})
        for name in ("scale", "synthetic_size"):  # JSON has lists only
            if getattr(config, name) is not None:
                setattr(config, name, tuple(getattr(config, name)))
        return config
