"""Making the pieces of a run from its TrainingConfig: datasets, model, optimizer, loss, loaders,
learning-rate schedule, run directory, and the Trainer that gets them all."""

import numpy as np

from ..data import BatchLoader
from ..data.transforms import PREPROCESSING_FROM_SCRATCH
from ..data_parallel import DataParallel
from ..layers import SoftmaxCrossEntropy
from ..models import build_model
from ..optim import SGD, Adam
from .allreduce import make_allreduce
from .datasets import Subset, open_splits
from .distributed import SingleProcess
from .errors import ConfigError
from .initial_weights import load_initial_weights
from .loop import Trainer
from .run_directory import ReadOnlyRunDirectory, RunDirectory
from .schedule import LearningRateSchedule
from .sharding import TrainingShard, ValidationShard


def build_model_for(config, num_classes):
    """``(model, preprocessing, source)``: the model of ``config`` for ``num_classes`` classes, with its
    ``--init`` weights, frozen as ``--freeze`` says, on ``config.device``; the input convention its
    weights expect; and a line saying where they came from."""
    model = build_model(config.arch, num_classes=num_classes, width=config.width, fc_channels=config.fc_channels,
                        geometry=config.geometry, at_once=config.at_once, learn_upsampling=config.learn_upsampling,
                        dropout=config.dropout, seed=config.seed)
    preprocessing = dict(PREPROCESSING_FROM_SCRATCH)
    source = "random initialisation (He-normal), seed %d" % config.seed
    if config.init:
        # Pretrained weights bring the preprocessing they were trained with.
        preprocessing = load_initial_weights(model, config.init)
        source = f"initialised from {config.init}"
    if config.freeze:
        try:
            model.freeze(config.freeze)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    model.to(config.device)
    return model, preprocessing, source


def build_runner(model, config):
    """What the loop runs: on the CPU, each batch split over ``config.threads`` cores (one process per
    part); on a GPU the model itself, which the device already parallelises."""
    return DataParallel(model, config.threads) if config.device == "cpu" else model


def build_optimizer(config, model):
    if config.optimizer == "adam":
        return Adam(model.parameters(), config.lr, weight_decay=config.weight_decay)
    return SGD(model.parameters(), config.lr, config.momentum, config.weight_decay)


def build_loss(config, train_set):
    """The loss layer, with median-frequency class weights from ``train_set`` if the config asks."""
    class_weights = None
    if config.class_weights == "median-frequency":
        class_weights = np.asarray(train_set.class_weights(), np.float32)
    # On the GPU the loader validates labels on the host, so the loss needs no device round trip.
    return SoftmaxCrossEntropy(train_set.ignore_index, config.loss_normalize, class_weights,
                               check_labels=config.device == "cpu")


def build_loaders(config, train_set, val_set, preprocessing, world=None):
    """(train loader, validation loader); validation images are batched only where they share one size
    (the synthetic ones), otherwise evaluated whole, one at a time. In a distributed run (``world`` of
    more than one rank) they yield this rank's share of the batches (see ``sharding``)."""
    world = world or SingleProcess()
    train_class, val_class, shard = BatchLoader, BatchLoader, {}
    if world.size > 1:
        train_class, val_class, shard = TrainingShard, ValidationShard, {"rank": world.rank, "size": world.size}
    train_loader = train_class(train_set, config.batch_size, preprocessing, config.crop_size, shuffle=True,
                               flip=config.flip, scale=config.scale, seed=config.seed, **shard)
    same_size = config.data == "synthetic"
    val_loader = val_class(val_set, config.batch_size if same_size else 1, preprocessing, shuffle=False,
                           seed=config.seed, **shard)
    return train_loader, val_loader


def build_schedule(config, iterations):
    return LearningRateSchedule(config.lr, iterations, config.lr_policy, config.warmup)


def build_trainer(config, run_dir, resume=False, progress=True, time_limit=None, world=None):
    """The Trainer of ``config`` in ``run_dir`` (nothing is written there yet; ``trainer.run.create()``
    makes the directory). With ``resume``, the run continues from ``run_dir``/last.npz if there is one,
    after the temporary files of writes that were killed are removed. ``time_limit`` is in seconds.

    ``world`` (default: one process) is the run's processes (``distributed.detect_world``): each of
    them builds the same model and reads the same checkpoint; the root alone writes the run directory
    and shows progress bars, and the gradients are summed over all of them every step."""
    world = world or SingleProcess()
    train_set, val_set = open_splits(config)
    if config.max_val_images:
        val_set = Subset(val_set, config.max_val_images)
    model, preprocessing, source = build_model_for(config, train_set.num_classes)
    optimizer = build_optimizer(config, model)
    directory = RunDirectory if world.is_root else ReadOnlyRunDirectory
    run = directory(run_dir, config, model, optimizer, preprocessing, source, train_set.class_names,
                    train_set.class_colors)
    run.processes = world.size
    state = None
    if resume:
        run.remove_leftover_temporaries()
        state = run.restore(config.device)  # the preprocessing and source of the checkpoint come with it
    train_loader, val_loader = build_loaders(config, train_set, val_set, run.preprocessing, world)
    loss = build_loss(config, train_set)
    allreduce = None
    if world.size > 1:
        allreduce = make_allreduce(world, [parameter for _, parameter in model.parameters()], config.device,
                                   loss.normalize)
    return Trainer(build_runner(model, config), loss, optimizer, train_loader, val_loader,
                   build_schedule(config, config.epochs * len(train_loader)), run, config.epochs,
                   device=config.device, eval_every=config.eval_every, state=state,
                   progress=progress and world.is_root, time_limit=time_limit, world=world, allreduce=allreduce)
