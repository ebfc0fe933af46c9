"""The datasets a run trains and validates on, as its config names them."""

from ..data import open_dataset


def open_splits(config):
    """(train dataset, whole validation dataset) for a TrainingConfig."""
    if config.data == "synthetic":
        train_size, val_size = config.synthetic_size
        common = {"image_size": config.image_size, "seed": config.seed}
        return (open_dataset("synthetic", split="train", size=train_size, **common),
                open_dataset("synthetic", split="val", size=val_size, **common))
    return (open_dataset(config.data, config.data_root, config.train_split or "train"),
            open_dataset(config.data, config.data_root, config.val_split or "val"))


class Subset:
    """The first ``count`` items of a dataset (for quicker validation), with its class names and colours."""

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
