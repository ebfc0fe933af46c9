"""Batches of normalised images and labels, made on a background thread while the model computes.

Decoding PNGs and JPEGs and resizing them happens in Pillow and NumPy code that releases the GIL, so one
worker thread overlaps loading with the forward and backward passes without the start-up cost and
pickling of worker processes.
"""

import queue
import threading

import numpy as np

from ..ops.validation import out_of_range_labels
from .errors import DataError
from .transforms import check_preprocessing, normalize, random_crop, random_flip, random_scale
from .validation import check_labels

# Seed-sequence tags, so the shuffling stream and each item's augmentation stream never coincide.
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


class BatchLoader:
    """Iterate over ``dataset`` in batches of ``(images (N, 3, H, W) float32, labels (N, H, W) int32)``.

    Each item is augmented in this order: ``scale`` = (low, high) random rescaling, ``flip`` random
    horizontal mirroring, ``crop_size`` (int or (height, width)) random crop padded with
    ``dataset.ignore_index``. Then it is normalised with ``preprocessing`` (see ``transforms``). Without
    ``crop_size``, every batch must hold images of one size (or ``batch_size`` be 1).

    The order (``shuffle``) and every item's augmentation are a function of ``(seed, epoch)`` alone:
    call ``set_epoch(e)`` before iterating over epoch e, and two loaders with one seed give the same
    batches whatever the timing of their threads. Labels are checked on the host (values outside [0, K)
    other than ``ignore_index`` raise DataError naming the file), so the loss on the GPU needs no check.

    ``prefetch`` batches are made ahead by one background thread (0: made in the consumer's thread).
    An exception in the worker is re-raised in the consumer, and leaving the loop early stops the worker.
    """

    def __init__(self, dataset, batch_size, preprocessing, crop_size=None, shuffle=True, flip=False,
                 scale=None, seed=0, drop_last=False, prefetch=2):
        batch_size, prefetch, seed = int(batch_size), int(prefetch), int(seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be non-negative, got {prefetch}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if scale is not None:
            low, high = (float(s) for s in scale)
            if not 0 < low <= high:
                raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
            scale = (low, high)
        check_preprocessing(preprocessing)
        if len(dataset) == 0:
            raise DataError("the dataset is empty: nothing to load")
        self.dataset = dataset
        self.batch_size = batch_size
        self.preprocessing = dict(preprocessing)
        self.crop_size = crop_size
        self.shuffle = shuffle
        self.flip = flip
        self.scale = scale
        self.seed = seed
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.epoch = 0
        self.num_classes = int(dataset.num_classes)
        self.ignore_index = int(dataset.ignore_index)

    def set_epoch(self, epoch):
        """Choose the epoch whose order and augmentations the next iteration yields."""
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = epoch

    def __len__(self):
        """Number of batches per epoch."""
        count = len(self.dataset)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def batch_indices(self):
        """The dataset indices of each batch of the current epoch, a list of (N,) int arrays."""
        count = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, _ORDER_STREAM]).permutation(count)
        else:
            order = np.arange(count)
        return [order[start:start + self.batch_size] for start in range(0, len(self) * self.batch_size,
                                                                             self.batch_size)]

    def __iter__(self):
        return self.iterate()

    def iterate(self, start=0):
        """The current epoch's batches from batch number ``start`` on (an interrupted epoch resumes
        exactly where it stopped: skipped batches are not loaded)."""
        batches = self.batch_indices()[start:]
        epoch = self.epoch
        if self.prefetch == 0:
            for indices in batches:
                yield self.make_batch(indices, epoch)
            return
        yield from _prefetched(lambda indices: self.make_batch(indices, epoch), batches, self.prefetch)

    def make_batch(self, indices, epoch=None):
        """``(images (N, 3, H, W) float32, labels (N, H, W) int32)`` for dataset ``indices`` at ``epoch``
        (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        images, labels = zip(*(self._item(int(i), epoch) for i in indices))
        odd = [k for k, image in enumerate(images) if image.shape != images[0].shape]
        if odd:
            (h0, w0), (h1, w1) = images[0].shape[:2], images[odd[0]].shape[:2]
            raise DataError(
                f"a batch mixes image sizes: {self._stem(int(indices[0]))} is {w0}x{h0} but "
                f"{self._stem(int(indices[odd[0]]))} is {w1}x{h1}; set crop_size, or batch_size 1"
            )
        label_batch = np.stack(labels).astype(np.int32, copy=False)
        self._check_labels(label_batch, indices)
        return normalize(np.stack(images), self.preprocessing), label_batch

    def _item(self, index, epoch):
        image, label = self.dataset[index]
        image, label = np.asarray(image), np.asarray(label)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(
                f"{self._stem(index)}: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}"
            )
        if label.shape != image.shape[:2]:
            raise DataError(
                f"{self._stem(index)}: label shape {label.shape} does not match image shape {image.shape[:2]}"
            )
        if self.scale is None and not self.flip and self.crop_size is None:
            return image, label
        # One stream per (seed, epoch, item): an item's augmentation does not depend on which batch or
        # thread makes it, nor on how many random numbers the items before it drew.
        rng = np.random.default_rng([self.seed, epoch, _AUGMENT_STREAM, index])
        if self.scale is not None:
            image, label = random_scale(image, label, self.scale[0], self.scale[1], rng)
        if self.flip:
            image, label = random_flip(image, label, rng)
        if self.crop_size is not None:
            image, label = random_crop(image, label, self.crop_size, rng, self.ignore_index)
        return image, label

    def _check_labels(self, labels, indices):
        # One vectorised test for the whole batch; only on failure look for the item to blame.
        if out_of_range_labels(labels, self.num_classes, self.ignore_index):
            for label, index in zip(labels, indices):
                check_labels(label, self.num_classes, self.ignore_index, self._name(int(index)))

    def _name(self, index):
        """The label file of item ``index`` where the dataset has files, else its identifier."""
        paths = getattr(self.dataset, "label_paths", None)
        return str(paths[index]) if paths is not None else self._stem(index)

    def _stem(self, index):
        names = getattr(self.dataset, "names", None)
        return f"item {index} ({names[index]})" if names is not None else f"item {index}"

    def __repr__(self):
        return (
            f"BatchLoader({self.dataset!r}, batch_size={self.batch_size}, crop_size={self.crop_size}, "
            f"shuffle={self.shuffle}, flip={self.flip}, scale={self.scale}, seed={self.seed})"
        )


class _Failure:
    """An exception raised in the worker, carried to the consumer to be raised there."""

    def __init__(self, error):
        self.error = error


_END = object()


def _prefetched(make, jobs, depth):
    """Yield ``make(job)`` for each job, computed up to ``depth`` ahead on a background thread.

    The thread is stopped and joined when the generator finishes, raises, or is closed early (a
    ``break`` in the consumer's loop closes it), so no thread outlives its iteration.
    """
    results = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        # Wait for room, but give up as soon as the consumer has gone.
        while not stop.is_set():
            try:
                results.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for job in jobs:
                if stop.is_set() or not put(make(job)):
                    return
        except BaseException as error:  # noqa: BLE001 - every failure must reach the consumer
            put(_Failure(error))
            return
        put(_END)

    worker = threading.Thread(target=work, name="minifcn-batch-loader", daemon=True)
    worker.start()
    try:
        while True:
            item = results.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
