"""python -m minifcn.train: train an FCN on the synthetic shapes (the default), CamVid, VOC or a folder.

With no arguments it trains a small FCN-8s on procedurally generated shapes on the CPU in a few
minutes, no download needed. Everything the run produces goes to a new run directory:

    config.json            the options of the run (``--resume`` reads them back)
    log.csv                one row per evaluation: epoch, iteration, losses, the four scores, seconds
    best.npz, last.npz     checkpoints (best validation mean IoU; latest), minifcn format
    learning_curves.png    loss and validation mean IoU against iterations
    predictions.png        image / ground truth / prediction for a few validation images

``mpiexec -n N python -m minifcn.train ...`` trains one model over N processes, on one machine or
several (``training.distributed``): ``--batch-size`` stays the global batch, the root process (rank
0) alone writes the run directory and prints.
"""

import argparse
import contextlib
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from threadpoolctl import ThreadpoolController

from .backend import is_out_of_memory
from .cli import DefaultsHelpFormatter, Terminated, UsageError, one_line, resolve_device, run, user_errors
from .data_parallel import available_cores
from .training import (NonFiniteLoss, TrainingConfig, TrainingInterrupted, build_trainer,
                       lock_run_directory, read_config)
from .training.distributed import (PeerFailed, SingleProcess, agree_on_failure, default_threads, detect_world,
                                   rank_device, weights_checksum)

PROG = "python -m minifcn.train"
# The reference's recipe, for real data (usually fine-tuning VGG16 weights given with --init); the
# synthetic default trains from scratch with Adam instead (TrainingConfig's defaults).
SGD_LR = 0.01
SGD_WEIGHT_DECAY = 5e-4
REAL_DATA_BATCH_SIZE = 8


def build_parser():
    defaults = TrainingConfig()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train FCN-8s/16s/32s. With no arguments: a small FCN-8s on the built-in synthetic shapes, "
                    "on the CPU, in a few minutes.",
        formatter_class=DefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", choices=["synthetic", "camvid", "voc", "folder"], default=defaults.data,
                      help="dataset kind")
    data.add_argument("--data-root", help="dataset folder (camvid, voc, folder)")
    data.add_argument("--train-split", default=None, help="split to train on (default: train)")
    data.add_argument("--val-split", default=None, help="split to validate on (default: val)")
    data.add_argument("--crop-size", type=int, default=None,
                      help="random square crops of this size (padded with the ignore label); default: whole images")
    data.add_argument("--flip", action=argparse.BooleanOptionalAction, default=defaults.flip,
                      help="random horizontal flips")
    data.add_argument("--scale", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                      help="random rescaling of training images by a factor in [LOW, HIGH]")
    data.add_argument("--synthetic-size", type=int, nargs=2, metavar=("TRAIN", "VAL"), default=defaults.synthetic_size,
                      help="number of synthetic training and validation images")
    data.add_argument("--image-size", type=int, default=defaults.image_size, help="synthetic image size")
    data.add_argument("--max-val-images", type=int, default=None, help="validate on the first N images only")

    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=["fcn8s", "fcn16s", "fcn32s"], default=defaults.arch)
    model.add_argument("--width", type=float, default=None,
                       help="channel width multiplier of the VGG16 trunk (1 = VGG16); "
                            "default 0.25 on synthetic data, 1 otherwise")
    model.add_argument("--fc-channels", type=int, default=None,
                       help="channels of fc6 and fc7 (4096 in the reference); default 256 on synthetic data")
    model.add_argument("--geometry", choices=["reference", "compact"], default=None,
                       help="reference: conv1_1 pad 100 as the original; compact: about half the FLOPs. "
                            "Default compact on synthetic data, reference otherwise")
    model.add_argument("--init", metavar="CHECKPOINT",
                       help="start from a converted VGG16 or FCN checkpoint (python -m minifcn.convert)")
    model.add_argument("--freeze", metavar="LAYER", help="train only the layers above LAYER (e.g. conv2_2, pool2)")
    model.add_argument("--at-once", action="store_true", help="scale pool4 by 0.01 and pool3 by 0.0001 (reference)")
    model.add_argument("--learn-upsampling", action=argparse.BooleanOptionalAction, default=None,
                       help="let the upsampling layers learn, starting from bilinear; default on for synthetic "
                            "data (sharper outlines), off otherwise (the reference keeps them fixed)")
    model.add_argument("--dropout", type=float, default=None,
                       help="dropout after fc6 and fc7; default 0 on synthetic data, 0.5 (the reference) otherwise")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training set")
    optim.add_argument("--batch-size", type=int, default=None,
                       help=f"images per step (under mpiexec, of all processes together); default "
                            f"{defaults.batch_size} on synthetic data, {REAL_DATA_BATCH_SIZE} otherwise")
    optim.add_argument("--optimizer", choices=["sgd", "adam"], default=None,
                       help="sgd: momentum SGD as the reference; adam: learns faster from scratch. "
                            "Default adam on synthetic data, sgd otherwise")
    optim.add_argument("--lr", type=float, default=None,
                       help=f"base learning rate; default {defaults.lr:g} with adam, {SGD_LR:g} with sgd")
    optim.add_argument("--lr-policy", choices=["poly", "fixed"], default=defaults.lr_policy,
                       help="poly: lr * (1 - t/T)^0.9; fixed: constant, as the reference")
    optim.add_argument("--warmup", type=int, default=defaults.warmup, help="iterations of linear warm-up")
    optim.add_argument("--momentum", type=float, default=defaults.momentum, help="momentum of sgd")
    optim.add_argument("--weight-decay", type=float, default=None,
                       help=f"L2 weight decay; default 0 with adam, {SGD_WEIGHT_DECAY:g} with sgd")
    optim.add_argument("--loss-normalize", action=argparse.BooleanOptionalAction, default=defaults.loss_normalize,
                       help="average the loss over labelled pixels (--no-loss-normalize sums, as the reference)")
    optim.add_argument("--class-weights", choices=["none", "median-frequency"], default=defaults.class_weights,
                       help="weight the loss per class (median-frequency balancing helps rare classes)")

    run_group = parser.add_argument_group("run")
    run_group.add_argument("--device", default=defaults.device, help="cpu, gpu or gpu:N")
    run_group.add_argument("--threads", type=int, default=None,
                           help="on the CPU, split each batch into this many parts, one core each; each "
                                "part past the first runs in a process of its own with its own copy of the "
                                "gradients (default: every core this process may use, shared among the "
                                "processes of an mpiexec run on one machine; the count is saved, so --resume "
                                "keeps it)")
    run_group.add_argument("--seed", type=int, default=defaults.seed)
    run_group.add_argument("--out", default=None, help="run directory (default: runs/<date>-<time>-<arch>)")
    run_group.add_argument("--overwrite", action="store_true", help="allow writing into an existing run directory")
    run_group.add_argument("--resume", metavar="DIR",
                           help="continue the run in DIR from its last.npz, with the options in its config.json; "
                                "only --epochs (to extend a run with --lr-policy fixed), --time-limit and "
                                "--no-progress may be given with it")
    run_group.add_argument("--eval-every", type=int, default=defaults.eval_every, help="validate every N epochs")
    run_group.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                           help="stop after this many minutes of training (saving last.npz), resumable. "
                                "SIGTERM (docker stop, a scheduler's limit) and Ctrl-C also stop at the end of the "
                                "step under way, save last.npz and exit with 143 and 130")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def config_from_args(args, world=None):
    """A TrainingConfig from parsed arguments, with the data-dependent defaults filled in (``--threads``
    from the cores this process may use, shared among the processes of ``world`` on its machine)."""
    world = world or SingleProcess()
    synthetic = args.data == "synthetic"
    values = {key: value for key, value in vars(args).items() if key in TrainingConfig.__dataclass_fields__}
    values["width"] = args.width if args.width is not None else (0.25 if synthetic else 1.0)
    values["fc_channels"] = args.fc_channels if args.fc_channels is not None else (256 if synthetic else 4096)
    values["geometry"] = args.geometry or ("compact" if synthetic else "reference")
    values["dropout"] = args.dropout if args.dropout is not None else (0.0 if synthetic else 0.5)
    values["learn_upsampling"] = args.learn_upsampling if args.learn_upsampling is not None else synthetic
    values["batch_size"] = (args.batch_size if args.batch_size is not None
                            else TrainingConfig.batch_size if synthetic else REAL_DATA_BATCH_SIZE)
    values["optimizer"] = args.optimizer or ("adam" if synthetic else "sgd")
    sgd = values["optimizer"] == "sgd"
    values["lr"] = args.lr if args.lr is not None else (SGD_LR if sgd else TrainingConfig.lr)
    values["weight_decay"] = args.weight_decay if args.weight_decay is not None else (SGD_WEIGHT_DECAY if sgd else 0.0)
    values["scale"] = tuple(args.scale) if args.scale else None
    values["threads"] = args.threads if args.threads is not None else default_threads(available_cores(), world)
    values["synthetic_size"] = tuple(args.synthetic_size)
    return TrainingConfig(**values)


def default_run_dir(arch):
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}"


# What may be given with --resume: the rest of a run's options are in its config.json.
RESUME_OPTIONS = {"resume", "epochs", "time_limit", "no_progress"}


def given_options(argv):
    """The destinations of the options written on the command line ``argv`` (not those defaulted)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def main(argv=None):
    world = detect_world()
    if world.size == 1:
        with contextlib.ExitStack() as held:  # the run directory's lock, released when training ends
            return train(argv, held)
    return main_distributed(argv, world)


def main_distributed(argv, world):
    """``main`` in one of the processes of an ``mpiexec`` run. The root alone prints (the others'
    standard output goes nowhere; their errors still show). Start-up failures are agreed on by every
    process (``distributed.agree_on_failure``); after it, ``fit`` ends every process the same way."""
    if not world.is_root:
        sys.stdout = open(os.devnull, "w")
    try:
        with contextlib.ExitStack() as held:
            return train(argv, held, world)
    except PeerFailed as failure:
        return failure.code


def exit_code_of(error):
    """The exit code ``run`` gives an exception raised during start-up (see ``cli``)."""
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 2
    if isinstance(error, PeerFailed):
        return error.code
    if isinstance(error, (user_errors(), UnicodeDecodeError, MemoryError)):
        return 2
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, Terminated):
        return 143
    return 1


def train(argv, held, world=None):
    """``main``'s work; the run directory's lock goes onto ``held`` (a contextlib.ExitStack). ``world``:
    the processes of a distributed run (default: this one alone)."""
    world = world or SingleProcess()
    with agree_on_failure(world, exit_code_of):
        # Every process parses the same options; the root alone says what is wrong with them.
        with contextlib.redirect_stderr(sys.stderr if world.is_root else open(os.devnull, "w")):
            args = build_parser().parse_args(argv)
        trainer, config = prepare(args, argv, held, world)
    with agree_on_failure(world, exit_code_of):  # every process has what it needs: the root writes
        if world.is_root and not args.resume:
            held.enter_context(lock_run_directory(trainer.run.path))
            if args.overwrite:
                trainer.run.clear()  # the old run's checkpoints go before the new run writes anything
            trainer.run.create()
        if world.size > 1 and not world.same_everywhere(weights_checksum(trainer.model)):
            raise UsageError(f"the {world.size} processes built different weights (different --init files, "
                             f"checkpoints or minifcn versions on their machines?)")
    print(describe(config, trainer, world), flush=True)
    if world.size == 1:
        return fit(trainer, config)
    # Each process has its share of the machine's cores (--threads); the model itself must not take
    # every core for its matrix products as it may alone (DataParallel limits them only when it splits).
    with ThreadpoolController().limit(limits=config.threads, user_api="blas"):
        return fit(trainer, config, world)


def prepare(args, argv, held, world):
    """``(trainer, config)`` for the parsed options ``args``; nothing written yet but, on --resume, the
    lock (the root's) and a config.json whose --epochs was extended."""
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit >= 0):
        raise UsageError(f"--time-limit must be 0 or more minutes (0: stop after one step), got {args.time_limit}")
    progress, time_limit = not args.no_progress, None if args.time_limit is None else args.time_limit * 60.0
    if args.resume:
        run_dir = Path(args.resume)
        read_config(run_dir)  # a folder that is no run is refused before a lock file is put in it
        given = given_options(argv)
        refused = sorted(given - RESUME_OPTIONS)
        if refused:
            raise UsageError(f"--resume continues the run as its config.json says: --{refused[0].replace('_', '-')} "
                             f"cannot be changed (only --epochs, --time-limit and --no-progress go with --resume)")
        # Held from before anything in the directory is read or cleaned until the process ends (by
        # the root alone in a distributed run: the others only read).
        if world.is_root:
            held.enter_context(lock_run_directory(run_dir))
        config = read_config(run_dir)
        check_world(config, world)
        rank_device(resolve_device(config.device), world)
        saved_epochs = config.epochs
        if "epochs" in given and args.epochs != config.epochs:
            config.epochs = extended_epochs(config, args.epochs)
        trainer = build_trainer(config, run_dir, resume=True, progress=progress, time_limit=time_limit,
                                world=world)
        done = trainer.state.epoch + (1 if trainer.state.batch_in_epoch else 0)
        if config.epochs < done:
            raise UsageError(f"--epochs {config.epochs}: the run in {run_dir} has already reached epoch {done}")
        if config.epochs != saved_epochs:
            trainer.run.write_config()
            print(f"{run_dir}: extended from {saved_epochs} to {config.epochs} epochs", flush=True)
        if trainer.run.has_checkpoint():
            print(f"resuming {run_dir} at epoch {trainer.state.epoch + 1}, iteration {trainer.state.iteration}",
                  flush=True)
        else:  # stopped before its first checkpoint: nothing to continue from
            print(f"{run_dir} has no checkpoint yet: starting its run from the beginning", flush=True)
    else:
        config = config_from_args(args, world)
        config.validate()
        check_world(config, world)
        config.device = rank_device(resolve_device(config.device), world)
        run_dir = Path(args.out) if args.out else default_run_dir(config.arch)
        if world.size > 1 and not args.out:
            # The processes would each name a run directory after their own clock.
            raise UsageError(f"under mpiexec, name the run directory with --out (on a file system every "
                             f"machine sees, for --resume)")
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out {run_dir} is a file, not a folder; choose another --out")
        if world.is_root and run_dir.exists() and any(run_dir.iterdir()) and not args.overwrite:
            raise UsageError(f"{run_dir} exists and is not empty; choose another --out, add --overwrite, "
                             f"or --resume {run_dir}")
        # Open the data and build the model before creating anything, so bad input leaves no debris.
        trainer = build_trainer(config, run_dir, progress=progress, time_limit=time_limit, world=world)
    return trainer, config


def check_world(config, world):
    """UsageError where the processes cannot share the global batch: each needs an image of it."""
    if config.batch_size < world.size:
        raise UsageError(f"--batch-size {config.batch_size} is the batch of all {world.size} processes together: "
                         f"it must be at least {world.size}, one image for each")


def extended_epochs(config, epochs):
    """``epochs`` for a resumed run if changing it keeps the run exact, else UsageError: under the poly
    policy every step's learning rate depends on the total, so only a fixed-rate run can be extended."""
    if epochs < 1:
        raise UsageError(f"--epochs must be positive, got {epochs}")
    if config.lr_policy != "fixed":
        raise UsageError(f"--epochs {epochs} with --resume: this run's poly learning rate was scheduled to reach 0 "
                         f"at epoch {config.epochs}, so its steps so far differ from a {epochs}-epoch run's; only "
                         f"a --lr-policy fixed run can be extended exactly (start a new run, e.g. with --init "
                         f"from its best.npz)")
    return epochs


def describe(config, trainer, world=None):
    """The line that opens a run: what is trained on what, where, from which weights."""
    train_set, val_set = trainer.train_loader.dataset, trainer.val_loader.dataset
    where = config.device
    if world is not None and world.size > 1:
        transport = type(trainer.allreduce).__name__
        where = (f"{world.size} processes on {config.device} ({config.threads} thread(s) each), global batch "
                 f"{config.batch_size}, gradients summed by {transport}")
    return (f"training {config.arch} (width {config.width}, fc {config.fc_channels}, {config.geometry} geometry) "
            f"on {config.data}: {len(train_set)} train / {len(val_set)} val images, "
            f"{train_set.num_classes} classes, {where}; {trainer.run.source}; run directory {trainer.run.path}")


def fit(trainer, config, world=None):
    """Run ``trainer.fit()``; return the exit code, saying on stderr how a run that stopped early ended
    and how to continue it: 0 done (or stopped by --time-limit), 130 Ctrl-C, 143 SIGTERM, 1 a loss gone
    NaN, 2 out of memory.

    In a distributed run (``world``) the root alone reports the outcomes every process shares (done,
    stopped, a loss gone NaN); anything that ended this process alone ends them all (``abort``), since
    the others would wait for it forever."""
    world = world or SingleProcess()
    if world.size == 1:
        return outcome(trainer, config, world)[0]
    try:
        code, shared = outcome(trainer, config, world)
    except BaseException as error:  # noqa: BLE001 - whatever ended this process must end the others
        if isinstance(error, user_errors()):
            print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        elif isinstance(error, Exception):
            # In one write, not print_exc's line by line: mpiexec's forwarding of this rank's stderr
            # stops when the abort below ends the ranks, and once passed on only the first line.
            sys.stderr.write(traceback.format_exc())
        world.abort(exit_code_of(error))
        raise
    if not shared:
        world.abort(code)
    return code


def outcome(trainer, config, world):
    """``(exit code, shared)`` of ``trainer.fit()``, reported as ``fit`` says; ``shared`` is False
    where the outcome is this process's alone (a second Ctrl-C, memory running out)."""
    run_dir = trainer.run.path
    report = world.is_root
    try:
        trainer.fit()
    except TrainingInterrupted as interruption:
        if report:
            print(f"{interruption}; resume with: {trainer.run.resume_command()}", file=sys.stderr)
        # 128 + the signal's number, as a shell reports a process the signal ended: a scheduler that
        # sent SIGTERM sees 143, an interactive Ctrl-C gives 130.
        return (143 if interruption.signum == signal.SIGTERM else 130), True
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the trainer's handler: nothing half done is saved
        print(f"\ninterrupted; the last checkpoint in {run_dir} is kept; resume with: "
              f"{trainer.run.resume_command()}", file=sys.stderr)
        return 130, False
    except NonFiniteLoss as error:
        hint = "the learning rate is probably too high (try --lr %.2g)" % (config.lr / 10)
        if not config.loss_normalize:
            hint += ", or the summed loss (--no-loss-normalize) needs a far smaller --lr"
        kept = (f"the last good checkpoint, {run_dir / 'last.npz'}, is kept" if trainer.run.has_checkpoint()
                else "no checkpoint had been written yet")
        if report:
            print(f"error: {error}: {hint}; {kept}", file=sys.stderr)
        return 1, True
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        # Nothing is saved here: the state in memory may be half updated. last.npz on disk is the
        # last complete checkpoint, written atomically, and resuming continues from it exactly.
        kept = (f"{run_dir / 'last.npz'} is intact; after changing settings, start a new run "
                f"(resuming keeps the old ones)" if trainer.run.has_checkpoint()
                else "no checkpoint had been written yet")
        print(f"error: out of memory on {config.device} at iteration {trainer.state.iteration + 1} "
              f"(batch {config.batch_size}, crop {config.crop_size or 'whole images'}): try a smaller "
              f"--batch-size or --crop-size; {kept}", file=sys.stderr)
        return 2, False
    return 0, True


if __name__ == "__main__":
    sys.exit(run(main, None, PROG))
