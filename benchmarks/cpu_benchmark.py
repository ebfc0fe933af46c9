"""Time minifcn (NumPy) against the same FCN-8s written in PyTorch, on the CPU of this machine.

    python benchmarks/cpu_benchmark.py                       # everything, about 5-10 minutes on 2 cores
    python benchmarks/cpu_benchmark.py --size 200 --repeats 2 --cases full,small
    python benchmarks/cpu_benchmark.py --json results.json

Each framework runs in its own child process, one after the other and never at the same time: on a
small machine their thread pools would fight over the cores, and a separate process also gives each
case its own peak-memory reading (``ru_maxrss`` only ever grows). The children print one JSON object
on stdout; the parent collects them and prints one table. See benchmarks/README.md for what each
column means and how the FLOPs are counted.

Cases:

- ``full``: the reference FCN-8s (VGG16 width, fc6/fc7 of 4096, 21 classes, conv1_1 padded by 100,
  crops 5/9/31) on 1x3xSxS: forward, and forward+backward of a normalised softmax cross-entropy;
- ``small``: the network ``python -m minifcn.train`` builds by default (width 0.25, fc 256, compact
  geometry, 6 classes, learned upsampling) on a batch of 8x3x96x96, forward+backward (the default
  job's batches hold 4 images; 8 keeps the figures comparable with the earlier ones);
- ``camvid``: the network of docs/camvid.md (VGG16 width, fc 1024, compact geometry, 11 classes,
  conv1-conv2 frozen) on one 1x3x360x480 image, forward+backward: a CamVid training step;
- ``layers``: every layer of the reference FCN-8s alone, at the shape it sees for a 1x3xSxS input,
  forward and forward+backward;
- ``camvid-batch2`` (not in the default set): the same step on two images, 2x3x360x480, the batch
  that minifcn splits over two threads, one image and one BLAS thread each;
- ``camvid-layers`` (not in the default set): the same for every layer of the ``camvid`` network at
  360x480, named ``camvid:LAYER``; the frozen layers only forward: where a CamVid step spends its time.
- ``small-layers`` (not in the default set): every layer of the ``small`` network on 4x3x96x96, one
  data_parallel thread's share of its batch, named ``small:LAYER``; with ``--threads 1`` each layer
  runs as it does inside that thread.

minifcn runs the models as ``python -m minifcn.train`` does, through ``minifcn.data_parallel``: a
batch of several images is split over the threads, one part and one single-threaded BLAS per core
(a batch of one image runs as it is, with BLAS's own threads), with glibc's allocator set as its
programs set it (``minifcn/allocator.py``: freed memory kept for reuse). PyTorch uses its intra-op
threads and glibc's allocator as PyTorch leaves it; ``--torch-allocator minifcn`` gives it minifcn's
settings, so that only the code differs (PyTorch's steps took 0.7-0.9 of their time with them on a Zen 3).

Both sides time what a training step does: the model is in training mode (dropout active), the
forward pass keeps what backward needs (minifcn's caches, PyTorch's autograd graph), and a step is
zero_grad + forward + loss + backward. The input image needs no gradient (conv1_1 computes none for
its input); the bilinear upsampling weights are fixed, as in the reference.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # time the checkout this script lives in

from minifcn.models import GEOMETRIES  # noqa: E402  (after the path above)
from minifcn.models.vgg import VGG16_BLOCKS, scaled_channels  # noqa: E402
from minifcn.ops import conv_output_size, conv_transpose_output_size, pool_output_size  # noqa: E402

FRAMEWORKS = ("minifcn", "torch")
CASE_GROUPS = ("full", "small", "camvid", "camvid-batch2", "layers", "camvid-layers", "small-layers")

# The crop offsets of FCN-8s in each geometry, as Caffe's reference prototxt and a hand derivation give
# them: the PyTorch network crops at these, and the minifcn worker checks that the model's own
# derivation (minifcn.models.alignment) agrees, so the two networks are compared on the same crops.
CROP_OFFSETS = {
    "reference": dict(fuse_pool4=5, fuse_pool3=9, crop_final=31),
    "compact": dict(fuse_pool4=0, fuse_pool3=0, crop_final=0),
}

REFERENCE = dict(num_classes=21, width=1.0, fc_channels=4096, geometry="reference")
SMALL = dict(num_classes=6, width=0.25, fc_channels=256, geometry="compact", learn_upsampling=True)
SMALL_BATCH, SMALL_SIZE = 8, 96
# The CamVid run of docs/camvid.md: what one of its training steps computes.
CAMVID = dict(num_classes=11, width=1.0, fc_channels=1024, geometry="compact")
CAMVID_SIZE, CAMVID_FROZEN = (360, 480), "conv2_2"


# --------------------------------------------------------------------------------------------------
# The network as data: every layer's kind, shapes and FLOPs (shared by both workers and the parent)
# --------------------------------------------------------------------------------------------------

def fcn8s_plan(num_classes, width, fc_channels, geometry, batch, size, frozen=None, learn_upsampling=False):
    """Ordered list of the FCN-8s layers with parameters or arithmetic: one dict per layer with
    ``name``, ``kind`` (conv, pool, convt, loss), ``in_shape``, ``out_shape``, the layer's arguments,
    ``input_grad`` (does backward compute the input's gradient) and ``weight_grad``. ``size`` is S
    (an SxS input) or (H, W); ``frozen`` names the last trunk layer that is not trained;
    ``learn_upsampling``: the upsampling layers get weight gradients too."""
    g = GEOMETRIES[geometry]
    k = num_classes
    plan = []
    height, width_px = (size, size) if isinstance(size, int) else size
    shape = (batch, 3, height, width_px)
    saved = {}

    def conv(name, x_shape, out_channels, kernel, padding, input_grad=True):
        n, c, h, w = x_shape
        out = (n, out_channels, conv_output_size(h, kernel, 1, padding), conv_output_size(w, kernel, 1, padding))
        plan.append(dict(name=name, kind="conv", in_shape=x_shape, out_shape=out, in_channels=c,
                         out_channels=out_channels, kernel=kernel, stride=1, padding=padding,
                         input_grad=input_grad, weight_grad=True))
        return out

    def convt(name, x_shape, factor):
        n, c, h, w = x_shape
        kernel, padding = 2 * factor, (factor // 2 if g.pad_upsampling else 0)
        out = (n, c, conv_transpose_output_size(h, kernel, factor, padding),
               conv_transpose_output_size(w, kernel, factor, padding))
        plan.append(dict(name=name, kind="convt", in_shape=x_shape, out_shape=out, in_channels=c,
                         out_channels=c, kernel=kernel, stride=factor, padding=padding,
                         input_grad=True, weight_grad=learn_upsampling))
        return out

    for block, (channels, count) in enumerate(VGG16_BLOCKS, 1):
        out_channels = scaled_channels(channels, width)
        for index in range(1, count + 1):
            first = (block, index) == (1, 1)
            shape = conv(f"conv{block}_{index}", shape, out_channels, 3,
                         g.first_padding if first else 1, input_grad=not first)
        n, c, h, w = shape
        # Ceil mode, as Caffe: a window that starts past the edge is dropped (PyTorch's rule too).
        out = (n, c, pool_output_size(h, 2, 2), pool_output_size(w, 2, 2))
        plan.append(dict(name=f"pool{block}", kind="pool", in_shape=shape, out_shape=out,
                         input_grad=True, weight_grad=False))
        shape = saved[f"pool{block}"] = out
    shape = conv("fc6", shape, fc_channels, 7, g.fc6_padding)
    shape = conv("fc7", shape, fc_channels, 1, 0)
    score_fr = conv("score_fr", shape, k, 1, 0)
    upscore2 = convt("upscore2", score_fr, 2)
    score_pool4 = conv("score_pool4", saved["pool4"], k, 1, 0)
    fuse4 = upscore2 if g.crop_skips else score_pool4  # the smaller map of the two
    upscore_pool4 = convt("upscore_pool4", fuse4, 2)
    score_pool3 = conv("score_pool3", saved["pool3"], k, 1, 0)
    fuse3 = upscore_pool4 if g.crop_skips else score_pool3
    convt("upscore8", fuse3, 8)
    scores = (batch, k, height, width_px)
    plan.append(dict(name="loss", kind="loss", in_shape=scores, out_shape=(), input_grad=True, weight_grad=False))
    if frozen is not None:  # nothing up to ``frozen`` gets a gradient, nor the input of the first conv above
        cut = [spec["name"] for spec in plan].index(frozen)
        first_trained = next(i for i, spec in enumerate(plan) if i > cut and spec["kind"] == "conv")
        for index, spec in enumerate(plan[:first_trained + 1]):
            spec["input_grad"] = False
            spec["weight_grad"] = spec["weight_grad"] and index > cut
    return plan


def layer_flops(spec):
    """(forward, backward) FLOPs of one layer, a multiply-add counted as 2; None for layers whose
    cost is memory traffic, not arithmetic (pools, the loss)."""
    if spec["kind"] == "conv":
        n, o, oh, ow = spec["out_shape"]
        fwd = 2 * n * o * oh * ow * spec["in_channels"] * spec["kernel"] ** 2
    elif spec["kind"] == "convt":
        # The adjoint of a convolution from the output to the input: every input pixel meets every
        # kernel tap and every output channel.
        n, c, h, w = spec["in_shape"]
        fwd = 2 * n * c * h * w * spec["out_channels"] * spec["kernel"] ** 2
    else:
        return None, None
    # Backward is one product of forward's size per gradient computed: the input's and the weight's.
    bwd = fwd * (int(spec["input_grad"]) + int(spec["weight_grad"]))
    return fwd, bwd


def network_flops(plan):
    fwd = sum(layer_flops(s)[0] or 0 for s in plan)
    bwd = sum(layer_flops(s)[1] or 0 for s in plan)
    return fwd, bwd


def camvid_plan(batch=1):
    """The network of the camvid cases on ``batch`` images of CamVid's size, its first layers frozen."""
    return fcn8s_plan(batch=batch, size=CAMVID_SIZE, frozen=CAMVID_FROZEN, **CAMVID)


def layer_plan(network, size):
    """The layers timed one by one: the reference FCN-8s at SxS, the network of the camvid case, or the
    small one on the part of its batch that one of two data_parallel threads computes."""
    if network == "camvid":
        return camvid_plan()
    if network == "small":
        return fcn8s_plan(batch=SMALL_BATCH // 2, size=SMALL_SIZE, **SMALL)
    return fcn8s_plan(batch=1, size=size, **REFERENCE)


def split_layer_case(case):
    """"conv3_1/fwd" -> ("reference", "conv3_1", "fwd"); "camvid:conv3_1/fwd" -> ("camvid", ...);
    "small:conv3_1/fwd" -> ("small", ...)."""
    name, mode = case.split("/")
    network, _, name = name.rpartition(":")
    return network or "reference", name, mode


def jobs_for(groups, size, layer_names=None):
    """The child-process jobs of the selected case groups, in run order."""
    jobs = []
    if "full" in groups:
        jobs.append("full")
    if "small" in groups:
        jobs.append("small")
    if "camvid" in groups:
        jobs.append("camvid")
    if "camvid-batch2" in groups:
        jobs.append("camvid-batch2")
    for group, network in (("layers", "reference"), ("camvid-layers", "camvid"), ("small-layers", "small")):
        if group in groups:
            jobs.extend(f"layer:{network}:{spec['name']}" for spec in layer_plan(network, size)
                        if layer_names is None or spec["name"] in layer_names)
    return jobs


def case_flops(case, size):
    """FLOPs of one case (None where not counted)."""
    if case in ("full/fwd", "full/fwd+bwd"):
        fwd, bwd = network_flops(fcn8s_plan(batch=1, size=size, **REFERENCE))
        return fwd if case.endswith("/fwd") else fwd + bwd
    if case == "small/fwd+bwd":
        fwd, bwd = network_flops(fcn8s_plan(batch=SMALL_BATCH, size=SMALL_SIZE, **SMALL))
        return fwd + bwd
    if case in ("camvid/fwd+bwd", "camvid-batch2/fwd+bwd"):
        fwd, bwd = network_flops(camvid_plan(batch=2 if case.startswith("camvid-batch2/") else 1))
        return fwd + bwd
    network, name, mode = split_layer_case(case)
    spec = next(s for s in layer_plan(network, size) if s["name"] == name)
    fwd, bwd = layer_flops(spec)
    if fwd is None:
        return None
    return fwd if mode == "fwd" else fwd + bwd


def case_shape(case, size):
    """A readable description of what a case runs on."""
    if case.startswith("full/"):
        return f"1x3x{size}x{size}"
    if case.startswith("small/"):
        return f"{SMALL_BATCH}x3x{SMALL_SIZE}x{SMALL_SIZE}"
    if case.startswith("camvid/"):
        return f"1x3x{CAMVID_SIZE[0]}x{CAMVID_SIZE[1]}, {CAMVID_FROZEN} frozen"
    if case.startswith("camvid-batch2/"):
        return f"2x3x{CAMVID_SIZE[0]}x{CAMVID_SIZE[1]}, {CAMVID_FROZEN} frozen"
    network, name, _ = split_layer_case(case)
    spec = next(s for s in layer_plan(network, size) if s["name"] == name)
    text = "x".join(map(str, spec["in_shape"])) + " -> " + ("x".join(map(str, spec["out_shape"])) or "scalar")
    if spec["kind"] in ("conv", "convt"):
        text += f" (k{spec['kernel']} s{spec['stride']} p{spec['padding']})"
    return text


def list_layers(size):
    plan = fcn8s_plan(batch=1, size=size, **REFERENCE)
    print(f"reference FCN-8s layers for a 1x3x{size}x{size} input (GFLOP forward / backward):")
    for spec in plan:
        fwd, bwd = layer_flops(spec)
        flops = "-" if fwd is None else f"{fwd / 1e9:.3g} / {bwd / 1e9:.3g}"
        grads = ", ".join(g for g, on in (("input grad", spec["input_grad"]), ("weight grad", spec["weight_grad"])) if on)
        print(f"  {spec['name']:14s} {case_shape(spec['name'] + '/fwd', size):48s} {flops:16s} backward: {grads or '-'}")
    fwd, bwd = network_flops(plan)
    print(f"  {'total':14s} {'':48s} {fwd / 1e9:.4g} / {bwd / 1e9:.4g}")


# --------------------------------------------------------------------------------------------------
# Measuring (used inside the workers)
# --------------------------------------------------------------------------------------------------

def max_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux reports ru_maxrss in KiB), plus the
    memory private to each process it forked that still runs (minifcn's batch parts). The pages they
    share with this one (the libraries, the weights) are in its own peak already. A part's private
    memory is read now, not at its peak: the allocator settings it inherits (minifcn/allocator.py)
    keep what it frees, so after a case's runs it holds what its largest step needed."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    own = rss / 1024.0 if sys.platform != "darwin" else rss / 2**20
    return own + sum(private_mb(pid) for pid in forked_children())


def forked_children():
    """The pids of this process's running children (Linux; none elsewhere)."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as listing:
            return [int(pid) for pid in listing.read().split()]
    except OSError:
        return []


def private_mb(pid):
    """The resident memory of process ``pid`` that no other process maps, in MiB (0 if it has ended)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            fields = dict(line.split()[:2] for line in rollup if line.startswith("Private_"))
    except OSError:
        return 0.0
    return sum(int(kib) for kib in fields.values()) / 1024.0


def time_it(step, repeats, warmup, after=None):
    """Run ``step`` warmup + repeats times; return the times of the timed runs in seconds.
    ``after`` (untimed) releases what a run kept, e.g. a forward pass's caches."""
    times = []
    for index in range(warmup + repeats):
        gc.collect()
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        if after is not None:
            after()
        if index >= warmup:
            times.append(elapsed)
    return times


def result(case, times, baseline_mb):
    return dict(case=case, times=times, median=statistics.median(times), min=min(times),
                peak_mb=max_rss_mb(), baseline_mb=baseline_mb)


def time_cases(cases, forward, step, release, args, baseline_mb):
    """Results for ``cases`` ("X/fwd" times ``forward``, then ``release`` untimed; "X/fwd+bwd" times ``step``)."""
    return [result(case, time_it(forward, args.repeats, args.warmup, release), baseline_mb) if case.endswith("/fwd")
            else result(case, time_it(step, args.repeats, args.warmup), baseline_mb) for case in cases]


def run_job(job, args, model_cases, layer_cases):
    """Dispatch one job to a worker's ``model_cases(options, batch, size, cases, frozen=None)`` (size S
    or (H, W); ``frozen``: the last trunk layer that is not trained) or, for "layer:NETWORK:NAME",
    to its ``layer_cases(cases, spec)`` with the layer's cases and its entry of ``layer_plan``."""
    if job == "full":
        model_cases(REFERENCE, 1, args.size, ["full/fwd", "full/fwd+bwd"])
    elif job == "small":
        model_cases(SMALL, SMALL_BATCH, SMALL_SIZE, ["small/fwd+bwd"])
    elif job == "camvid":
        model_cases(CAMVID, 1, CAMVID_SIZE, ["camvid/fwd+bwd"], frozen=CAMVID_FROZEN)
    elif job == "camvid-batch2":
        model_cases(CAMVID, 2, CAMVID_SIZE, ["camvid-batch2/fwd+bwd"], frozen=CAMVID_FROZEN)
    else:
        _, network, name = job.split(":")
        spec = next(s for s in layer_plan(network, args.size) if s["name"] == name)
        label = name if network == "reference" else f"{network}:{name}"
        trained = spec["input_grad"] or spec["weight_grad"]  # a frozen layer only runs forward
        layer_cases([f"{label}/fwd"] + ([f"{label}/fwd+bwd"] if trained else []), spec)


# --------------------------------------------------------------------------------------------------
# minifcn worker
# --------------------------------------------------------------------------------------------------

def openblas_info():
    """OpenBLAS's configuration, core type and thread count, read through ctypes from the library
    NumPy loaded (threadpoolctl is used instead when it is installed)."""
    info = {}
    try:
        import threadpoolctl  # noqa: F401  (optional)

        for pool in threadpoolctl.threadpool_info():
            if pool.get("user_api") == "blas":
                info = dict(library=pool.get("internal_api"), version=pool.get("version"),
                            threads=pool.get("num_threads"), core=pool.get("architecture"),
                            path=pool.get("filepath"))
                break
    except ImportError:
        pass
    if info:
        return info
    import ctypes

    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            try:
                get_config = getattr(lib, f"{prefix}get_config{suffix}")
                get_core = getattr(lib, f"{prefix}get_corename{suffix}")
                get_threads = getattr(lib, f"{prefix}get_num_threads{suffix}")
            except AttributeError:
                continue
            get_config.restype = get_core.restype = ctypes.c_char_p
            get_threads.restype = ctypes.c_int
            return dict(library="openblas", config=get_config().decode(), core=get_core().decode(),
                        threads=get_threads(), path=path)
    return dict(library="unknown")


def numpy_blas_build():
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return dict(name=blas.get("name"), version=blas.get("version"))
    except Exception:  # older NumPy: no mode="dicts"
        return {}


def minifcn_worker(job, args):
    import numpy as np

    from minifcn.allocator import keep_freed_memory
    from minifcn.data_parallel import DataParallel
    from minifcn.layers import Conv2d, ConvTranspose2d, MaxPool2d, SoftmaxCrossEntropy
    from minifcn.models import build_model

    keep_freed_memory()  # the allocator as minifcn's programs set it (minifcn/allocator.py)
    baseline = max_rss_mb()
    env = dict(numpy=np.__version__, blas_build=numpy_blas_build(), blas_runtime=openblas_info())
    rng = np.random.default_rng(0)
    out = []

    def model_cases(options, batch, size, cases, frozen=None):
        model = build_model("fcn8s", seed=0, **options).train()  # dropout active, as in training
        if frozen:
            model.freeze(frozen)
        height, width = (size, size) if isinstance(size, int) else size
        derived = model.crop_offsets()
        for name, offset in CROP_OFFSETS[options["geometry"]].items():
            if derived[name] != offset:
                raise RuntimeError(f"{name}: minifcn crops at {derived[name]}, the benchmark's PyTorch net at {offset}")
        x = (rng.standard_normal((batch, 3, height, width), dtype=np.float32) * 60).astype(np.float32)
        labels = rng.integers(0, options["num_classes"], (batch, height, width)).astype(np.int32)
        loss_layer = SoftmaxCrossEntropy()
        # As python -m minifcn.train runs it: a batch split over the threads (one image: the model itself).
        runner = DataParallel(model, args.threads)

        def forward():
            runner.forward(x)

        def step():
            runner.zero_grad()
            runner.forward_backward(x, labels, loss_layer)

        out.extend(time_cases(cases, forward, step, runner.clear_cache, args, baseline))

    def layer_cases(cases, spec):
        x = rng.standard_normal(spec["in_shape"], dtype=np.float32)
        if spec["kind"] == "conv":
            layer = Conv2d(spec["in_channels"], spec["out_channels"], spec["kernel"], spec["stride"],
                           spec["padding"], rng=rng)
        elif spec["kind"] == "convt":
            layer = ConvTranspose2d(spec["in_channels"], spec["out_channels"], spec["kernel"], spec["stride"],
                                    spec["padding"])
            layer.weight.requires_grad = spec["weight_grad"]  # learned only where the model learns it
        elif spec["kind"] == "pool":
            layer = MaxPool2d(2, 2, ceil_mode=True)
        else:
            layer = SoftmaxCrossEntropy()
        layer.input_grad = spec["input_grad"]
        if spec["kind"] == "loss":
            labels = rng.integers(0, spec["in_shape"][1], (spec["in_shape"][0],) + spec["in_shape"][2:]).astype(np.int32)

            def forward():
                layer.forward(x, labels)

            def step():
                layer.forward(x, labels)
                layer.backward()
        else:
            dy = rng.standard_normal(spec["out_shape"], dtype=np.float32)

            def forward():
                layer.forward(x)

            def step():
                layer.zero_grad()
                layer.forward(x)
                layer.backward(dy)

        out.extend(time_cases(cases, forward, step, layer.clear_cache, args, baseline))

    run_job(job, args, model_cases, layer_cases)
    return dict(framework="minifcn", job=job, env=env, results=out)


# --------------------------------------------------------------------------------------------------
# PyTorch worker: the same network with torch.nn layers
# --------------------------------------------------------------------------------------------------

def bilinear_weight_torch(torch, channels, kernel_size):
    """The reference's upsample_filt on the channel diagonal (same as minifcn.layers.bilinear_kernel)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float64) - center).abs() / factor
    filt = torch.outer(ramp, ramp).float()
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for c in range(channels):
        weight[c, c] = filt
    return weight


def torch_fcn8s(num_classes=21, width=1.0, fc_channels=4096, geometry="reference", dropout=0.5,
                learn_upsampling=False):
    """FCN-8s in torch.nn with minifcn's parameter names, shapes, crops and ceil-mode pools."""
    import torch
    from torch import nn

    g = GEOMETRIES[geometry]

    class FCN8s(nn.Module):
        def __init__(self):
            super().__init__()
            trunk = []
            in_channels = 3
            for block, (channels, count) in enumerate(VGG16_BLOCKS, 1):
                out_channels = scaled_channels(channels, width)
                for index in range(1, count + 1):
                    padding = g.first_padding if (block, index) == (1, 1) else 1
                    name = f"conv{block}_{index}"
                    setattr(self, name, nn.Conv2d(in_channels, out_channels, 3, padding=padding))
                    trunk.append(name)
                    in_channels = out_channels
                trunk.append(f"pool{block}")
            self.trunk = trunk
            self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.relu = nn.ReLU(inplace=True)  # as torchvision's VGG
            self.fc6 = nn.Conv2d(in_channels, fc_channels, 7, padding=g.fc6_padding)
            self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
            self.drop6 = nn.Dropout(dropout)
            self.drop7 = nn.Dropout(dropout)
            self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
            self.score_pool4 = nn.Conv2d(scaled_channels(512, width), num_classes, 1)
            self.score_pool3 = nn.Conv2d(scaled_channels(256, width), num_classes, 1)
            for name in ("score_fr", "score_pool4", "score_pool3"):  # start at zero, as in the reference
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)
            for name, factor in (("upscore2", 2), ("upscore_pool4", 2), ("upscore8", 8)):
                padding = factor // 2 if g.pad_upsampling else 0
                layer = nn.ConvTranspose2d(num_classes, num_classes, 2 * factor, stride=factor, padding=padding,
                                           bias=False)
                with torch.no_grad():
                    layer.weight.copy_(bilinear_weight_torch(torch, num_classes, 2 * factor))
                layer.weight.requires_grad_(learn_upsampling)  # bilinear, fixed unless learnt
                setattr(self, name, layer)
            self.offsets = CROP_OFFSETS[geometry]
            self.crop_skips = g.crop_skips

        def fuse(self, upsampled, skip, offset):
            if self.crop_skips:  # reference: the skip is larger, crop it to the upsampled map
                h, w = upsampled.shape[2:]
                return upsampled + skip[:, :, offset:offset + h, offset:offset + w]
            h, w = skip.shape[2:]
            return upsampled[:, :, offset:offset + h, offset:offset + w] + skip

        def forward(self, x):
            h = x
            for name in self.trunk:
                if name.startswith("pool"):
                    h = self.pool(h)
                    if name == "pool3":
                        pool3 = h
                    elif name == "pool4":
                        pool4 = h
                else:
                    h = self.relu(getattr(self, name)(h))
            h = self.drop6(self.relu(self.fc6(h)))
            h = self.drop7(self.relu(self.fc7(h)))
            h = self.score_fr(h)
            h = self.fuse(self.upscore2(h), self.score_pool4(pool4), self.offsets["fuse_pool4"])
            h = self.fuse(self.upscore_pool4(h), self.score_pool3(pool3), self.offsets["fuse_pool3"])
            h = self.upscore8(h)
            o = self.offsets["crop_final"]
            return h[:, :, o:o + x.shape[2], o:o + x.shape[3]]

    return FCN8s()


def torch_worker(job, args):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    allocator = "pytorch"
    if args.torch_allocator == "minifcn":
        from minifcn.allocator import keep_freed_memory  # imports only os, sys and ctypes: no NumPy

        allocator = "minifcn" if keep_freed_memory() else "pytorch (glibc refused minifcn's settings)"
    baseline = max_rss_mb()
    env = dict(torch=torch.__version__, threads=torch.get_num_threads(), allocator=allocator,
               interop_threads=torch.get_num_interop_threads(),
               mkldnn=bool(torch.backends.mkldnn.is_available()),
               blas=("mkl" if torch.backends.mkl.is_available() else "other"))
    torch.manual_seed(0)
    out = []

    def model_cases(options, batch, size, cases, frozen=None):
        model = torch_fcn8s(**options).train()
        if frozen:  # no gradients up to and including ``frozen``, so autograd stops above it
            for name in model.trunk[:model.trunk.index(frozen) + 1]:
                if not name.startswith("pool"):
                    getattr(model, name).requires_grad_(False)
        height, width = (size, size) if isinstance(size, int) else size
        x = torch.randn(batch, 3, height, width) * 60  # no requires_grad: the image needs no gradient
        labels = torch.randint(0, options["num_classes"], (batch, height, width))
        kept = []

        def forward():
            kept.append(model(x))  # keeps the autograd graph alive until ``after``, as minifcn's caches

        def step():
            model.zero_grad()
            loss = F.cross_entropy(model(x), labels, ignore_index=255)
            loss.backward()

        out.extend(time_cases(cases, forward, step, kept.clear, args, baseline))

    def layer_cases(cases, spec):
        x = torch.randn(*spec["in_shape"]).requires_grad_(spec["input_grad"])
        if spec["kind"] == "conv":
            layer = nn.Conv2d(spec["in_channels"], spec["out_channels"], spec["kernel"], spec["stride"],
                              spec["padding"])
        elif spec["kind"] == "convt":
            layer = nn.ConvTranspose2d(spec["in_channels"], spec["out_channels"], spec["kernel"], spec["stride"],
                                       spec["padding"], bias=False)
            with torch.no_grad():
                layer.weight.copy_(bilinear_weight_torch(torch, spec["in_channels"], spec["kernel"]))
            layer.weight.requires_grad_(spec["weight_grad"])
        elif spec["kind"] == "pool":
            layer = nn.MaxPool2d(2, 2, ceil_mode=True)
        else:
            labels = torch.randint(0, spec["in_shape"][1], (spec["in_shape"][0],) + tuple(spec["in_shape"][2:]))

            def layer(scores):
                return F.cross_entropy(scores, labels, ignore_index=255)
        dy = None if spec["kind"] == "loss" else torch.randn(*spec["out_shape"])
        kept = []

        def forward():
            kept.append(layer(x))

        def step():
            if isinstance(layer, nn.Module):
                layer.zero_grad()
            x.grad = None
            y = layer(x)
            y.backward(dy)

        out.extend(time_cases(cases, forward, step, kept.clear, args, baseline))

    run_job(job, args, model_cases, layer_cases)
    return dict(framework="torch", job=job, env=env, results=out)


# --------------------------------------------------------------------------------------------------
# --check: the PyTorch network is the same network (same weights in, same scores, loss and gradients out)
# --------------------------------------------------------------------------------------------------

def check_worker(args):
    import numpy as np
    import torch
    import torch.nn.functional as F

    from minifcn.layers import SoftmaxCrossEntropy
    from minifcn.models import build_model

    torch.set_num_threads(args.threads)
    report = []
    for options, batch, size in ((dict(num_classes=5, width=0.125, fc_channels=32, geometry="reference"), 2, 67),
                                 (dict(SMALL), 2, 64)):
        rng = np.random.default_rng(1)
        model = build_model("fcn8s", seed=0, **options).eval()  # eval: dropout masks would differ
        state = model.state_dict()
        for name in state:  # the score layers start at zero; give them weights so the check means something
            if name.startswith("score"):
                state[name] = rng.standard_normal(state[name].shape).astype(np.float32) * 0.1
        model.load_state_dict(state)
        net = torch_fcn8s(**options).eval()
        missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"state dict names differ: missing {missing}, unexpected {unexpected}")
        x = (rng.standard_normal((batch, 3, size, size)) * 60).astype(np.float32)
        labels = rng.integers(0, options["num_classes"], (batch, size, size)).astype(np.int32)
        labels[:, :3] = 255
        loss_layer = SoftmaxCrossEntropy()
        scores = model.forward(x)
        loss = loss_layer.forward(scores, labels)
        model.zero_grad()
        model.backward(loss_layer.backward())
        t_scores = net(torch.from_numpy(x))
        t_loss = F.cross_entropy(t_scores, torch.from_numpy(labels).long(), ignore_index=255)
        t_loss.backward()

        def rel(a, b):
            b = b.detach().numpy()
            return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))

        worst_grad = max((rel(p.grad, dict(net.named_parameters())[name].grad), name)
                         for name, p in model.parameters() if p.requires_grad)
        row = dict(geometry=options["geometry"], shape=list(x.shape), scores_shape=list(scores.shape),
                   scores_rel=rel(scores, t_scores), loss_rel=rel(np.asarray(loss), t_loss),
                   worst_grad_rel=worst_grad[0], worst_grad=worst_grad[1])
        row["ok"] = tuple(scores.shape) == tuple(t_scores.shape) and max(
            row["scores_rel"], row["loss_rel"], row["worst_grad_rel"]) < 1e-3
        report.append(row)
    return dict(check=report, ok=all(row["ok"] for row in report))


# --------------------------------------------------------------------------------------------------
# The parent: run the workers one after the other, print the table
# --------------------------------------------------------------------------------------------------

def child_env(threads):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_child(argv, threads, timeout):
    command = [sys.executable, os.path.abspath(__file__)] + argv
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=child_env(threads), timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout} s: {' '.join(argv)}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(error=f"{' '.join(argv)} exited {proc.returncode}: " + " | ".join(tail))
    return json.loads(lines[-1])


def lscpu_model():
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return fields.get("Model name", "unknown").strip()


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_gflop(gflop):
    if gflop is None:
        return "-"
    return f"{gflop:.1f}" if gflop >= 10 else f"{gflop:.3g}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def fmt_gflops(flops, seconds):
    if flops is None or seconds is None or seconds == 0:
        return "-"
    return f"{flops / seconds / 1e9:.1f}"


def fmt_mem(entry):
    if entry is None:
        return "-"
    return f"{entry['peak_mb']:.0f} ({entry['peak_mb'] - entry['baseline_mb']:.0f})"


def build_rows(results, size, frameworks):
    by_case = {}
    order = []
    for framework, entries in results.items():
        for entry in entries:
            if entry["case"] not in by_case:
                by_case[entry["case"]] = {}
                order.append(entry["case"])
            by_case[entry["case"]][framework] = entry
    rows = []
    for case in order:
        m = by_case[case].get("minifcn")
        t = by_case[case].get("torch")
        flops = case_flops(case, size)
        mem = lambda e: None if e is None else e["peak_mb"] - e["baseline_mb"]  # noqa: E731
        rows.append(dict(case=case, shape=case_shape(case, size), gflop=None if flops is None else flops / 1e9,
                         minifcn_s=m and m["median"], torch_s=t and t["median"],
                         ratio=(m["median"] / t["median"]) if m and t else None,
                         minifcn_gflops=None if not (m and flops) else flops / m["median"] / 1e9,
                         torch_gflops=None if not (t and flops) else flops / t["median"] / 1e9,
                         minifcn_peak_mb=m and m["peak_mb"], minifcn_delta_mb=mem(m),
                         torch_peak_mb=t and t["peak_mb"], torch_delta_mb=mem(t),
                         mem_ratio=(mem(m) / mem(t)) if m and t and mem(t) > 0 else None,
                         _m=m, _t=t, _flops=flops))
    return rows


def format_table(rows):
    header = ["case", "GFLOP", "minifcn", "PyTorch", "ratio", "minifcn GFLOP/s", "PyTorch GFLOP/s",
              "minifcn MB peak (+run)", "PyTorch MB peak (+run)", "mem ratio"]
    body = []
    for r in rows:
        body.append([r["case"], fmt_gflop(r["gflop"]),
                     fmt_time(r["minifcn_s"]), fmt_time(r["torch_s"]), fmt_ratio(r["minifcn_s"], r["torch_s"]),
                     fmt_gflops(r["_flops"], r["minifcn_s"]), fmt_gflops(r["_flops"], r["torch_s"]),
                     fmt_mem(r["_m"]), fmt_mem(r["_t"]),
                     "-" if r["mem_ratio"] is None else f"{r['mem_ratio']:.2f}"])
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep] + [line(row) for row in body])


# The header's words for PyTorch's allocator (--torch-allocator).
ALLOCATOR_WORDS = {"pytorch": "glibc's defaults, as PyTorch leaves them",
                   "minifcn": "set as minifcn's programs set it (--torch-allocator minifcn)"}


def format_header(meta):
    blas = meta.get("numpy_blas") or {}
    runtime = blas.get("runtime") or {}
    build = blas.get("build") or {}
    torch_env = meta.get("torch_env") or {}
    lines = [
        f"# minifcn vs PyTorch, CPU benchmark ({meta['date']})",
        f"- CPU: {meta['cpu_model']}, {meta['cores']} cores available; threads used by each framework: {meta['threads']}",
        f"- load average before / after: {meta['load_before']} / {meta.get('load_after', '-')}",
        f"- NumPy {blas.get('numpy', '?')}, BLAS {build.get('name', runtime.get('library', '?'))} "
        f"{build.get('version', runtime.get('version', ''))}, core type in use: {runtime.get('core', '?')}, "
        f"BLAS threads: {runtime.get('threads', '?')}",
        f"- OPENBLAS_CORETYPE={meta['openblas_coretype']}",
        f"- PyTorch {torch_env.get('torch', '?')}, torch.get_num_threads()={torch_env.get('threads', '?')}, "
        f"MKL={torch_env.get('blas') == 'mkl'}, oneDNN={torch_env.get('mkldnn', '?')}, "
        f"allocator: {ALLOCATOR_WORDS.get(torch_env.get('allocator'), torch_env.get('allocator', '?'))}",
        f"- input {meta['size']}x{meta['size']}; median of {meta['repeats']} runs after {meta['warmup']} warm-up "
        f"(layers: median of {meta['layer_repeats']})"
        + (f", pooled over {meta['rounds']} rounds that alternate the frameworks"
           if meta.get("rounds", 1) > 1 else "")
        + "; times are a training step's: train mode, dropout on",
        "- ratio = minifcn / PyTorch (above 1: minifcn is slower). GFLOP/s from the analytic count "
        "(multiply-add = 2 FLOPs; '-' for pools and the loss, which move memory rather than compute).",
        "- memory: peak RSS of the child process in MiB (plus the memory private to its batch parts' "
        "processes), and in brackets the peak minus the baseline "
        "after imports; 'mem ratio' compares the bracketed values (minifcn / PyTorch).",
    ]
    return "\n".join(lines)


def load_average():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def pool_rounds(found):
    """One result per case from the results of several rounds: the timed runs of all rounds pooled
    (median and minimum over them) and the highest peak memory, with the baseline of that round."""
    by_case = {}
    for item in found:
        by_case.setdefault(item["case"], []).append(item)
    pooled = []
    for case, items in by_case.items():
        times = [t for item in items for t in item["times"]]
        highest = max(items, key=lambda item: item["peak_mb"])
        pooled.append(dict(highest, times=times, median=statistics.median(times), min=min(times),
                           rounds=len(items)))
    return pooled


def parent(args):
    groups = [g.strip() for g in args.cases.split(",") if g.strip()]
    bad = [g for g in groups if g not in CASE_GROUPS]
    if bad:
        sys.exit(f"unknown case group(s) {bad}: choose from {', '.join(CASE_GROUPS)}")
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    if any(f not in FRAMEWORKS for f in frameworks):
        sys.exit(f"--frameworks must be a subset of {','.join(FRAMEWORKS)}")
    layer_names = None if not args.layers else {n.strip() for n in args.layers.split(",")}
    if layer_names is not None:
        known = {s["name"] for s in fcn8s_plan(batch=1, size=args.size, **REFERENCE)}
        if layer_names - known:
            sys.exit(f"unknown layer(s) {sorted(layer_names - known)}: choose from {', '.join(sorted(known))}")
    meta = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu_model=lscpu_model(),
                cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                threads=args.threads, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                size=args.size, repeats=args.repeats, layer_repeats=args.layer_repeats, warmup=args.warmup,
                rounds=args.rounds,
                load_before=load_average(), python=sys.version.split()[0])
    if args.check:
        print("checking that the PyTorch network matches minifcn ...", file=sys.stderr)
        check = run_child(["--worker", "check", "--threads", str(args.threads)], args.threads, args.timeout)
        print(json.dumps(check, indent=1), file=sys.stderr)
        meta["check"] = check
        if not check.get("ok"):
            sys.exit("the PyTorch network does not match minifcn's (see above)")
    jobs = jobs_for(groups, args.size, layer_names)
    results = {f: [] for f in frameworks}
    errors = []
    started = time.perf_counter()
    for round_index, job in ((r, job) for r in range(args.rounds) for job in jobs):
        repeats = args.layer_repeats if job.startswith("layer:") else args.repeats
        for framework in frameworks:  # one after the other, never at the same time
            label = f"{job} (round {round_index + 1} of {args.rounds})" if args.rounds > 1 else job
            print(f"[{time.perf_counter() - started:6.0f} s] {framework:7s} {label} ...", file=sys.stderr, flush=True)
            reply = run_child(["--worker", framework, "--job", job, "--size", str(args.size),
                               "--repeats", str(repeats), "--warmup", str(args.warmup),
                               "--threads", str(args.threads), "--torch-allocator", args.torch_allocator],
                              args.threads, args.timeout)
            if "error" in reply:
                errors.append(reply["error"])
                print("  error: " + reply["error"], file=sys.stderr)
                continue
            results[framework].extend(reply["results"])
            if framework == "minifcn":
                meta["numpy_blas"] = dict(numpy=reply["env"]["numpy"], build=reply["env"]["blas_build"],
                                          runtime=reply["env"]["blas_runtime"])
            else:
                meta["torch_env"] = reply["env"]
    meta["load_after"] = load_average()
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    results = {framework: pool_rounds(found) for framework, found in results.items()}
    rows = build_rows(results, args.size, frameworks)
    print(format_header(meta))
    print()
    print(format_table(rows))
    if errors:
        print("\nerrors:\n" + "\n".join("- " + e for e in errors))
    if args.json:
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=clean, raw=results, errors=errors), f, indent=1)
        print(f"\nsaved {args.json}", file=sys.stderr)
    return 1 if errors else 0


def parse_args(argv=None):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="full,small,camvid,layers",
                   help="comma-separated case groups: full, small, camvid, camvid-batch2, layers, camvid-layers, "
                        "small-layers (default: all but camvid-batch2, camvid-layers and small-layers)")
    p.add_argument("--layers", default=None,
                   help="only these layers in the layer groups (layers, camvid-layers, small-layers), e.g. conv1_2,fc6")
    p.add_argument("--frameworks", default="minifcn,torch", help="minifcn, torch or both (default)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case; the median is reported (default 5)")
    p.add_argument("--layer-repeats", type=int, default=None, help="timed runs per layer case (default: --repeats)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every case this many times, alternating the frameworks' processes, and pool "
                        "the timed runs: on a machine whose speed drifts, both then sample the same "
                        "stretches of time (default 1)")
    p.add_argument("--threads", type=int, default=cores, help=f"threads for both frameworks (default: all {cores} cores)")
    p.add_argument("--torch-allocator", choices=("pytorch", "minifcn"), default="pytorch",
                   help="glibc's allocator in PyTorch's child as PyTorch leaves it (pytorch, the default: each "
                        "framework as its users run it), or set as minifcn's programs set it (minifcn: freed "
                        "memory kept for reuse; minifcn/allocator.py), so that only the code differs")
    p.add_argument("--size", type=int, default=500, help="input height and width for 'full' and 'layers' (default 500)")
    p.add_argument("--json", default=None, metavar="PATH", help="also save the results as JSON")
    p.add_argument("--check", action="store_true",
                   help="first check on small inputs that the PyTorch net computes minifcn's scores, loss and grads")
    p.add_argument("--list-layers", action="store_true", help="print the layer cases' shapes and FLOPs and exit")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per child process (default 3600)")
    p.add_argument("--worker", choices=FRAMEWORKS + ("check",), help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.layer_repeats is None:
        args.layer_repeats = args.repeats
    if (min(args.repeats, args.layer_repeats, args.rounds) < 1 or args.warmup < 0 or args.threads < 1
            or args.size < 1):
        p.error("--repeats, --layer-repeats and --rounds must be >= 1, --warmup >= 0, --threads and --size >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.list_layers:
        list_layers(args.size)
        return 0
    if args.worker == "check":
        print(json.dumps(check_worker(args)))
        return 0
    if args.worker:
        reply = (minifcn_worker if args.worker == "minifcn" else torch_worker)(args.job, args)
        print(json.dumps(reply))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
