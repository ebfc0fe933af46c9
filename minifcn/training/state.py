"""Where a run stands: what a checkpoint must hold, beside the weights and the optimizer, to resume exactly."""

import dataclasses


@dataclasses.dataclass
class TrainingState:
    """The position and history of a run.

    ``epoch`` counts finished epochs and ``batch_in_epoch`` the steps done in the epoch under way (not 0
    only when a run stopped inside an epoch); ``iteration`` counts every step, ``seconds`` the training
    time so far; ``best_mean_iou`` is the best validation mean IoU (-1 before the first evaluation) and
    ``rows`` one dict per evaluation, the lines of log.csv.
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    iteration: int = 0
    seconds: float = 0.0
    best_mean_iou: float = -1.0
    rows: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The state saved by ``to_dict`` in a checkpoint's metadata (missing entries take the defaults)."""
        return cls(epoch=int(values.get("epoch", 0)), batch_in_epoch=int(values.get("batch_in_epoch", 0)),
                   iteration=int(values.get("iteration", 0)), seconds=float(values.get("seconds", 0.0)),
                   best_mean_iou=float(values.get("best_mean_iou", -1.0)), rows=list(values.get("rows", [])))
