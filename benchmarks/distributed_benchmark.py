"""Time a training step split over processes (mpiexec) against the same step split over threads.

    python benchmarks/distributed_benchmark.py --case default --threads 2           # one process, 2 threads
    mpiexec -n 2 python benchmarks/distributed_benchmark.py --case default --threads 1  # 2 processes
    python benchmarks/distributed_benchmark.py --case camvid --batch-size 2 --threads 2
    mpiexec -n 2 python benchmarks/distributed_benchmark.py --case camvid --batch-size 2 --threads 1
    python benchmarks/distributed_benchmark.py --sizes               # gradient bytes per step, no timing

A step is what ``python -m minifcn.train`` does for one global batch, without loading it: zero_grad,
forward, loss, backward (each process on its share of the batch, each share split over ``--threads``
threads), the gradients' all-reduce when there are several processes, and the optimizer's update.
Cases:

- ``default``: the default job's step (width 0.25, fc 256, compact geometry, 6 classes, 8 images of
  96x96, Adam).
- ``camvid``: the step of docs/camvid.md (VGG16 width, fc 1024, compact geometry, 11 classes, conv1_1
  ... conv2_2 frozen, 360x480 images, dropout 0.5, Adam); that run's batch of 1 cannot be split, so
  ``--batch-size`` (default 2) images a step.
- ``full``: the reference FCN-8s (fc 4096, 21 classes, 500x500, SGD).

The root prints the median step time, the median time of the step's all-reduce (packing, the sum,
unpacking, and any wait for a slower process), the same all-reduce timed back to back with the
processes in step (the transport alone), and the bytes each process sends. ``--sizes`` prints the
gradient size of each case and of FCN-8s with fc 4096 and fc 1024 (the README's cost table).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

CASES = {
    "default": dict(model=dict(num_classes=6, width=0.25, fc_channels=256, geometry="compact", dropout=0.0),
                    size=(96, 96), batch=8, optimizer="adam", freeze=None),
    "camvid": dict(model=dict(num_classes=11, width=1.0, fc_channels=1024, geometry="compact", dropout=0.5),
                   size=(360, 480), batch=2, optimizer="adam", freeze="conv2_2"),
    "full": dict(model=dict(num_classes=21, width=1.0, fc_channels=4096, geometry="reference", dropout=0.5),
                 size=(500, 500), batch=2, optimizer="sgd", freeze=None),
}


def build_parser():
    parser = argparse.ArgumentParser(description="Time a training step over processes (mpiexec) or threads.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), default="default", help="which network and batch")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="global batch (all processes together); default: the case's")
    parser.add_argument("--threads", type=int, default=1, help="threads each process splits its share over")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (root only)")
    parser.add_argument("--sizes", action="store_true", help="print the gradient bytes per step and stop")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def trainable_count(model):
    return sum(parameter.data.size for _, parameter in model.parameters() if parameter.requires_grad)


def print_sizes():
    """Gradient bytes a process sends per step: what the all-reduce moves (float32, trainable only)."""
    from minifcn.models import build_model

    rows = [("FCN-8s, fc 4096, 21 classes (the reference)", dict(num_classes=21, fc_channels=4096), None),
            ("FCN-8s, fc 1024, 21 classes", dict(num_classes=21, fc_channels=1024), None),
            ("FCN-8s, fc 1024, 11 classes, conv1-2 frozen (CamVid)", dict(num_classes=11, fc_channels=1024),
             "conv2_2"),
            ("FCN-8s, width 0.25, fc 256, 6 classes (the default job)",
             dict(num_classes=6, width=0.25, fc_channels=256), None)]
    for name, options, freeze in rows:
        model = build_model("fcn8s", geometry="compact", seed=0, **options)
        if freeze:
            model.freeze(freeze)
        count = trainable_count(model)
        print(f"{name}: {count:,} trainable parameters, {4 * count / 2**20:.1f} MiB of gradients per step")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.sizes:
        print_sizes()
        return 0
    from tqdm import tqdm

    from minifcn.data_parallel import DataParallel
    from minifcn.layers import SoftmaxCrossEntropy
    from minifcn.models import build_model
    from minifcn.optim import SGD, Adam
    from minifcn.training.allreduce import labelled_weight, make_allreduce
    from minifcn.training.distributed import detect_world
    from minifcn.training.sharding import shard

    world = detect_world()
    case = CASES[args.case]
    batch = args.batch_size or case["batch"]
    if batch < world.size or args.threads < 1 or args.steps < 1 or args.warmup < 0:
        print(f"error: need --batch-size >= processes ({world.size}), --threads >= 1, --steps >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    model = build_model("fcn8s", seed=0, **case["model"]).train()
    if case["freeze"]:
        model.freeze(case["freeze"])
    runner = DataParallel(model, args.threads)
    parameters = [parameter for _, parameter in model.parameters()]
    optimizer = Adam(model.parameters(), 1e-4) if case["optimizer"] == "adam" else SGD(model.parameters(), 1e-10)
    loss_layer = SoftmaxCrossEntropy()
    allreduce = make_allreduce(world, parameters, "cpu") if world.size > 1 else None
    rng = np.random.default_rng(0)
    height, width = case["size"]
    images = (rng.standard_normal((batch, 3, height, width), dtype=np.float32) * 60).astype(np.float32)
    labels = rng.integers(0, case["model"]["num_classes"], (batch, height, width)).astype(np.int32)
    part = shard(batch, world.rank, world.size)
    x, y = images[part], labels[part]

    def step():
        runner.zero_grad()
        loss = runner.forward_backward(x, y, loss_layer)
        if allreduce is not None:
            loss = allreduce.reduce(loss, labelled_weight(y, loss_layer), {}).loss
        optimizer.step(1e-4)
        return loss

    if world.size > 1:  # as python -m minifcn.train: each process's matrix products on its own threads only
        from threadpoolctl import ThreadpoolController

        ThreadpoolController().limit(limits=args.threads, user_api="blas")
    steps, reduces = [], []
    bar = tqdm(total=args.warmup + args.steps, desc=f"{args.case} x{world.size}", unit="step",
               disable=args.no_progress or not world.is_root, file=sys.stderr)
    for index in range(args.warmup + args.steps):
        world.sum(np.zeros(1, np.float32))  # every process starts the step together
        before = allreduce.seconds if allreduce else 0.0
        started = time.perf_counter()
        step()
        if index >= args.warmup:
            steps.append(time.perf_counter() - started)
            reduces.append((allreduce.seconds - before) if allreduce else 0.0)
        bar.update(1)
    bar.close()
    transport = []
    if allreduce is not None:  # the same call with the processes in step: the transport alone
        for _ in range(args.steps):
            world.sum(np.zeros(1, np.float32))
            before = allreduce.seconds
            allreduce.reduce(np.float32(0), 0.0, {})
            transport.append(allreduce.seconds - before)
    # The slowest process sets the pace: the root reports the largest median.
    medians = world.max(np.array([statistics.median(steps), statistics.median(reduces),
                                  statistics.median(transport) if transport else 0.0]))
    result = dict(case=args.case, processes=world.size, threads=args.threads, batch=batch,
                  step_s=float(medians[0]), allreduce_in_step_s=float(medians[1]),
                  allreduce_alone_s=float(medians[2]), gradient_bytes=4 * trainable_count(model),
                  steps=[round(value, 4) for value in steps])
    if world.is_root:
        share = result["allreduce_in_step_s"] / result["step_s"]
        print(f"{args.case}: {world.size} process(es) x {args.threads} thread(s), global batch {batch}: "
              f"step {result['step_s']:.3f} s (median of {args.steps}); all-reduce in the step "
              f"{result['allreduce_in_step_s'] * 1000:.1f} ms ({share:.1%}), alone "
              f"{result['allreduce_alone_s'] * 1000:.1f} ms; {result['gradient_bytes'] / 2**20:.1f} MiB of "
              f"gradients per process")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
