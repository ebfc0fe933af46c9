"""Data parallelism on the CPU: a batch split over threads, one core each, with single-threaded BLAS.

Why: on a 2-core CPU a training step of the default model (8 images of 96x96) ran only 1.35x faster
with two BLAS threads than with one. Much of the step is NumPy work that runs on one core whatever
BLAS does (padding, copying shifted views, pooling, ReLU, the loss), and many of its matrix products
are too small for two BLAS threads to share well. Giving each core half of the batch instead, in its
own Python thread (NumPy and BLAS release the GIL while they compute) with BLAS limited to one thread,
keeps both cores busy through the whole step, which took 15-21% less time on the default model
(benchmarks/RESULTS.md).

How it stays the same computation:

- thread 0 runs the model itself on the first part of the batch; each other thread runs a replica, a
  copy of the model whose parameters share their values (``data``) with the model's but have their
  own gradient buffers, so no two threads ever add into the same array;
- the loss is the whole batch's: ``forward_backward`` (the training step) computes each part's loss
  and its gradient in the part's thread, divided by the batch's normaliser (every non-ignored pixel
  of the batch), and adds the parts' losses; ``forward`` joins the parts' scores;
- after backward the replicas' gradients are added into the model's in a fixed order, so the result
  does not depend on which thread finishes first; it equals the one-thread step's up to the order of
  float sums;
- dropout: each replica's masks come from a generator seeded, every training forward pass, from the
  model's own dropout generator, so runs are reproducible and resume exactly (for a given thread count).

Only for NumPy arrays on the CPU: on a GPU the device already runs the whole batch in parallel.
"""

import copy
import os

import numpy as np

from .layers import Module
from .layers.gradient_buffer import pack_gradients
from .ops.fast.cores import elementwise_on_cores, on_cores


def available_cores():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class DataParallel(Module):
    """Runs ``model`` on a batch split over ``threads`` threads; use it where the model would be used.

    It is a Module whose one child is the model (``flat_names``: the parameters keep the model's
    names), so ``parameters()``, ``zero_grad()``, ``train()``, ``eval()`` reach the model, and gradients
    end up in the model's parameters. A batch of one image, or ``threads=1``, runs the model itself on
    the calling thread, with BLAS's own threads.
    """

    flat_names = True

    def __init__(self, model, threads=None):
        if model.device != "cpu":
            raise ValueError(f"DataParallel splits batches over CPU threads; a model on {model.device} runs whole")
        self.model = model
        self.threads = max(1, threads or available_cores())
        # Not children: their parameters share the model's values and are no parameters of the tree.
        self._replicas = []  # made at the first split forward pass, so freezing before it is seen
        # The model's parameters and modules, and each replica's, in the same (tree) order: the tree is
        # fixed once replicas copy it, and walking it every step cost about 2 ms of the default model's.
        self._parameters, self._modules = None, None
        self._replica_parameters, self._replica_modules = [], []
        self._parts = None  # the batch slices of the last forward pass

    def forward(self, x):
        """Scores (N, K, H, W) for x (N, 3, H, W), each part of the batch computed on its own thread."""
        self._parts = split_batch(len(x), self.threads)
        if len(self._parts) == 1:
            return self.model.forward(x)
        self._sync_replicas(len(self._parts) - 1)
        models = [self.model] + self._replicas[: len(self._parts) - 1]
        scores = self._run(lambda model, part: model.forward(x[part]), models, self._parts)
        return np.concatenate(scores)

    def forward_backward(self, x, labels, loss_layer):
        """Module.forward_backward with each part of the batch on its own thread from its forward pass
        to its backward pass, the loss of each part computed there: no thread waits for the others in
        between, and the loss takes no step of its own on one core. Returns the batch's loss."""
        parts = split_batch(len(x), self.threads)
        if len(parts) == 1:
            return self.model.forward_backward(x, labels, loss_layer)
        self._sync_replicas(len(parts) - 1)
        models = [self.model] + self._replicas[: len(parts) - 1]
        normaliser = loss_layer.normaliser(labels)
        part_losses = [copy.copy(loss_layer) for _ in parts]  # each keeps its own part's cache

        def part_step(model, part, part_loss):
            if model is not self.model:
                model.zero_grad()  # a replica's buffers hold only this batch's gradient
            loss = part_loss.forward(model.forward(x[part]), labels[part], normaliser)
            model.backward(part_loss.backward())
            return loss

        losses = on_cores(lambda work: part_step(*work), list(zip(models, parts, part_losses)))
        self._add_replica_gradients(len(parts) - 1)
        total = losses[0]
        for loss in losses[1:]:
            total = total + loss
        return total

    def backward(self, dscores):
        """Add the gradients for dscores (N, K, H, W) into the model's parameters (as model.backward)."""
        parts = self._parts
        if parts is None:
            raise RuntimeError("DataParallel.backward called without a forward pass before it")
        self._parts = None
        if len(parts) == 1:
            return self.model.backward(dscores)
        replicas = self._replicas[: len(parts) - 1]

        def backward_part(model, part):
            if model is not self.model:
                model.zero_grad()  # a replica's buffers hold only this batch's gradient
            model.backward(dscores[part])

        self._run(backward_part, [self.model] + replicas, parts)
        self._add_replica_gradients(len(replicas))
        return None

    def clear_cache(self):
        self._parts = None
        super().clear_cache()
        for replica in self._replicas:
            replica.clear_cache()

    # --- threads and replicas ---------------------------------------------------------------------

    def _run(self, work, models, parts):
        """``work(model, part)`` for every part of the batch, part i on thread i, BLAS single-threaded
        (``ops.fast.cores.on_cores``, whose threads also split one image's layers)."""
        return on_cores(lambda pair: work(*pair), list(zip(models, parts)))

    def _add_replica_gradients(self, count):
        """Add the first ``count`` replicas' gradients into the model's, each element in the replicas'
        order, so the sum does not depend on the threads' timing; the elements are cut into one run per
        core."""
        copies = self._replica_parameters[:count]
        groups = [(parameter.grad, *(parameters[index].grad for parameters in copies))
                  for index, parameter in enumerate(self._parameters) if parameter.requires_grad]
        elementwise_on_cores(groups, add_into_first)

    def _sync_replicas(self, count):
        """Make ``count`` replicas agree with the model: its current weights, frozen parameters and
        layers, train or eval mode, and random numbers drawn from a generator seeded from the model's."""
        if self._parameters is None:
            self._parameters = [parameter for _, parameter in self.model.parameters()]
            self._modules = list(self.model.modules())
        while len(self._replicas) < count:
            # The values are shared (the memo maps each weight array to itself); everything else,
            # gradient buffers, layers and their caches included, is the replica's own.
            shared = {id(parameter.data): parameter.data for parameter in self._parameters}
            replica = copy.deepcopy(self.model, shared)
            self._replicas.append(replica)
            self._replica_parameters.append([parameter for _, parameter in replica.parameters()])
            self._replica_modules.append(list(replica.modules()))
            pack_gradients(self._replica_parameters[-1])  # its zero_grad: one fill
        for replica, parameters, modules in zip(self._replicas[:count], self._replica_parameters,
                                                self._replica_modules):
            for parameter, copied in zip(self._parameters, parameters):
                copied.data = parameter.data  # a load or an optimizer may have replaced the array
                copied.requires_grad = parameter.requires_grad
            for module, copied in zip(self._modules, modules):
                copied.training = module.training
                copied.input_grad = module.input_grad
            if replica.draws_random_numbers():
                replica.use_generator(np.random.default_rng(self.model.dropout_rng.integers(2**63)))


def add_into_first(run, index, arrays):
    """arrays[0] += arrays[1], then += arrays[2], ...: one piece of the sum of the gradients."""
    total, *parts = arrays
    for part in parts:
        total += part


def split_batch(size, threads):
    """Slices cutting a batch of ``size`` images into at most ``threads`` parts as equal as possible."""
    parts = min(size, threads)
    bounds = [size * index // parts for index in range(parts + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
