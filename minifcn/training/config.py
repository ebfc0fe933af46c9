"""TrainingConfig: every option of a run, checked, and saved as the run directory's config.json."""

import dataclasses
import json

from .errors import ConfigError


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
        """Raise ConfigError, listing every problem, for values no run can use."""
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
            raise ConfigError("; ".join(problems))

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
