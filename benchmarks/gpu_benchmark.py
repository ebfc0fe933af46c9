"""minifcn on a GPU: kernel launches per training step (on the CuPy stand-in), and time per step
against the same FCN-8s in PyTorch with cuDNN (on a real GPU).

    MINIFCN_CUPY=standin python benchmarks/gpu_benchmark.py --launches    # no GPU needed
    python3 benchmarks/gpu_benchmark.py                                    # on a GPU, a few minutes

Cases (a step is zero_grad + forward + loss + backward + optimizer step, as the training loop runs it):

- ``reference``: the reference FCN-8s (VGG16 width, fc 4096, 21 classes, reference geometry, dropout
  0.5) on one 1x3x500x500 image, SGD with momentum;
- ``default``: the network and step of ``python -m minifcn.train`` with no arguments (width 0.25, fc
  256, compact geometry, 6 classes, no dropout) on a batch of 8x3x96x96, Adam.

``--launches`` prints one line per case, ``<case>: <N> kernel launches, <S> host syncs per training
step``, counted by the stand-in's counters over one step after a first step (which creates the
optimizer's state). A GPU step is bounded by how fast Python issues kernels long before the GPU is
busy, so the launch count is the figure to bring down; a host sync stalls that issuing, so a step
should have none.

The timing mode runs ``--warmup`` steps first (CuPy compiles each kernel on its first use and cuDNN
picks its algorithms; neither belongs in a step's time), then times ``--repeats`` steps, synchronising
the device around each. PyTorch runs twice: fp32 with TF32 off (the same arithmetic as minifcn) and
with TF32 on (its default speed on Ampere and later).
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # measure the checkout this script lives in
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from minifcn import backend  # noqa: E402

CASES = {
    "reference": dict(model=dict(num_classes=21, width=1.0, fc_channels=4096, geometry="reference", dropout=0.5),
                      batch=1, size=500, optimizer="sgd"),
    "default": dict(model=dict(num_classes=6, width=0.25, fc_channels=256, geometry="compact", dropout=0.0),
                    batch=8, size=96, optimizer="adam"),
}


def minifcn_step(case, device, size=None):
    """A function that runs one training step of ``case`` on ``device``, its inputs already there."""
    from minifcn.layers import SoftmaxCrossEntropy
    from minifcn.models import build_model
    from minifcn.optim import SGD, Adam

    spec = CASES[case]
    size = size or spec["size"]
    model = build_model("fcn8s", seed=0, **spec["model"]).train()
    model.to(device)
    rng = np.random.default_rng(0)
    num_classes = spec["model"]["num_classes"]
    x = backend.to_device((rng.standard_normal((spec["batch"], 3, size, size)) * 60).astype(np.float32), device)
    labels = backend.to_device(rng.integers(0, num_classes, (spec["batch"], size, size)).astype(np.int32), device)
    # As the training loop on a GPU: labels are checked on the host where they are loaded.
    loss_layer = SoftmaxCrossEntropy(check_labels=False)
    if spec["optimizer"] == "sgd":
        optimizer = SGD(model.parameters(), lr=1e-10, momentum=0.99, weight_decay=5e-4)
    else:
        optimizer = Adam(model.parameters(), lr=1e-4)

    def step():
        model.zero_grad()
        scores = model.forward(x)
        loss = loss_layer.forward(scores, labels)
        model.backward(loss_layer.backward())
        optimizer.step()
        return loss

    return step


def count_launches(cases, size):
    cupy = backend.cupy_or_none()
    if cupy is None or not hasattr(cupy, "COUNTERS"):
        sys.exit("gpu_benchmark.py: --launches counts on the CuPy stand-in: run it with MINIFCN_CUPY=standin")
    for case in cases:
        step = minifcn_step(case, "gpu", size)
        step()  # creates the optimizer's state; not what a step costs afterwards
        cupy.reset_counters()
        step()
        counters = dict(cupy.COUNTERS)
        print(f"{case}: {counters['launches']} kernel launches, {counters['syncs']} host syncs per training step",
              flush=True)


def time_steps(step, synchronize, warmup, repeats):
    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def torch_step(case, tf32):
    import torch
    import torch.nn.functional as F

    from cpu_benchmark import torch_fcn8s

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    spec = CASES[case]
    model = torch_fcn8s(**spec["model"]).cuda().train()
    size, batch = spec["size"], spec["batch"]
    x = torch.randn(batch, 3, size, size, device="cuda") * 60
    labels = torch.randint(0, spec["model"]["num_classes"], (batch, size, size), device="cuda")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if spec["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=1e-10, momentum=0.99, weight_decay=5e-4)
    else:
        optimizer = torch.optim.Adam(trainable, lr=1e-4)

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), labels, ignore_index=255).backward()
        optimizer.step()

    return step, torch.cuda.synchronize


def time_cases(cases, warmup, repeats):
    cupy = backend.cupy_or_none()
    backend.check_device("gpu")
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())["name"]
    print(f"GPU: {name.decode() if isinstance(name, bytes) else name}; CuPy {cupy.__version__}; "
          f"warm-up {warmup} steps, median of {repeats}", flush=True)
    synchronize = cupy.cuda.get_current_stream().synchronize
    for case in cases:
        results = {}
        try:
            results["minifcn"] = time_steps(minifcn_step(case, "gpu"), synchronize, warmup, repeats)
        except Exception as error:  # report and go on: the other figures are still worth having
            print(f"{case}: minifcn failed: {type(error).__name__}: {error}", flush=True)
        for tf32 in (False, True):
            label = f"torch (TF32 {'on' if tf32 else 'off'})"
            try:
                step, torch_synchronize = torch_step(case, tf32)
                results[label] = time_steps(step, torch_synchronize, warmup, repeats)
            except Exception as error:
                print(f"{case}: {label} failed: {type(error).__name__}: {error}", flush=True)
        line = ", ".join(f"{label} {seconds * 1000:.1f} ms" for label, seconds in results.items())
        if "minifcn" in results and "torch (TF32 off)" in results:
            line += f"; minifcn / torch fp32 = {results['minifcn'] / results['torch (TF32 off)']:.2f}"
        print(f"{case}: {line} per step", flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--launches", action="store_true",
                        help="count kernel launches and host syncs per step on the CuPy stand-in instead of timing")
    parser.add_argument("--cases", default="reference,default", help="comma-separated: reference, default")
    parser.add_argument("--size", type=int, default=None,
                        help="image side for --launches (default: each case's own, 500 and 96)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps (the median is printed)")
    args = parser.parse_args(argv)
    args.cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = [case for case in args.cases if case not in CASES]
    if unknown or not args.cases:
        parser.error(f"unknown case(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CASES)}")
    if args.warmup < 1 or args.repeats < 1 or (args.size is not None and args.size < 32):
        parser.error("--warmup and --repeats must be at least 1, --size at least 32")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.launches:
        count_launches(args.cases, args.size)
        return 0
    try:
        backend.check_device("gpu")
    except backend.DeviceUnavailableError as error:
        print(f"gpu_benchmark.py: {error}", file=sys.stderr)
        return 2
    time_cases(args.cases, args.warmup, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
