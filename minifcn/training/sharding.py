"""Which images each process of a distributed run loads: its part of every training batch, and its
share of the validation batches.

The whole loader (one ``BatchLoader`` made from the run's options) decides the order and every
item's augmentation, as a function of the seed and the epoch alone, so every rank agrees on the
global batches without talking; each rank then loads only its own images. Together the ranks see
exactly the batches one process would.

Training splits each batch (``--batch-size`` is the global batch): rank r takes the r-th of
``size`` contiguous parts, as equal as possible, so the gradients summed over the ranks are the
whole batch's. Validation gives whole batches to ranks in turn instead: real data is validated one
whole image at a time, which cannot be split, and the confusion matrix and the sum of per-batch
losses add up over the ranks to what one process computes.
"""

from ..data import BatchLoader


def shard(count, rank, size):
    """The slice of ``count`` items that rank ``rank`` of ``size`` takes: the parts are contiguous,
    in rank order, differ in length by at most one, and some are empty when ``count < size``."""
    return slice(count * rank // size, count * (rank + 1) // size)


class TrainingShard(BatchLoader):
    """A BatchLoader (same arguments) that yields rank ``rank``'s part of each of the whole loader's
    batches; ``len()`` is the number of global batches, so every rank takes the same steps. A part
    with no image (the last batch of an epoch may have fewer images than there are ranks) is
    ``(None, None)``: that rank computes nothing in the step but still joins its sum."""

    def __init__(self, *args, rank, size, **kwargs):
        super().__init__(*args, **kwargs)
        self.rank, self.size = rank, size

    def batch_indices(self):
        return [indices[shard(len(indices), self.rank, self.size)] for indices in super().batch_indices()]

    def make_batch(self, indices, epoch=None):
        if len(indices) == 0:
            return None, None
        return super().make_batch(indices, epoch)


class ValidationShard(BatchLoader):
    """A BatchLoader (same arguments) that yields rank ``rank``'s share of the whole loader's batches:
    batches rank, rank + size, rank + 2 size, ... (``len()`` counts them, for the progress bar)."""

    def __init__(self, *args, rank, size, **kwargs):
        super().__init__(*args, **kwargs)
        self.rank, self.size = rank, size
        self._whole = BatchLoader(*args, **kwargs)  # its length and order are the global ones

    def __len__(self):
        return len(range(self.rank, len(self._whole), self.size))

    def batch_indices(self):
        self._whole.set_epoch(self.epoch)
        return self._whole.batch_indices()[self.rank::self.size]
