"""Data parallelism on the CPU: a batch split over the cores, one part per core, single-threaded BLAS.

Why: on a 2-core CPU a training step of the default model (8 images of 96x96) ran only 1.35x faster
with two BLAS threads than with one. Much of the step is NumPy work that runs on one core whatever
BLAS does (padding, copying shifted views, pooling, ReLU, the loss), and many of its matrix products
are too small for two BLAS threads to share well. Giving each core a part of the batch instead, with
BLAS limited to one thread, keeps both cores busy through the whole step. The first part runs in the
calling process, each other one in a forked process of its own (``part_process``): as threads of one
process the parts waited for each other's interpreter lock (benchmarks/RESULTS.md).

How it stays the same computation:

- the calling process runs the model itself on the first part of the batch; each other part runs in
  a process holding a copy of the model whose weights are the model's own (shared memory) and whose
  gradients go into arrays of its own, which the caller adds into the model's;
- the loss is the whole batch's: ``forward_backward`` (the training step) computes each part's loss
  and its gradient in the part's process, divided by the batch's normaliser (every non-ignored pixel
  of the batch), and adds the parts' losses; ``forward`` joins the parts' scores;
- after backward the processes' gradients are added into the model's in a fixed order, so the result
  does not depend on which part finishes first; it equals the one-part step's up to the order of
  float sums;
- dropout: each process's masks come from a generator seeded, every training forward pass, from the
  model's own dropout generator, so runs are reproducible and resume exactly (for a given part count).

Only for NumPy arrays on the CPU, and on Linux (elsewhere the batch runs whole, BLAS on every core):
on a GPU the device already runs the whole batch in parallel.
"""

import copy
import os

import numpy as np

from .layers import Module
from .ops.fast.cores import elementwise_on_cores, single_blas_thread
from .part_process import PartProcess, can_fork, model_state, shared_like


def available_cores():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class DataParallel(Module):
    """Runs ``model`` on a batch split into ``threads`` parts, one per core; use it where the model
    would be used.

    It is a Module whose one child is the model (``flat_names``: the parameters keep the model's
    names), so ``parameters()``, ``zero_grad()``, ``train()``, ``eval()`` reach the model, and gradients
    end up in the model's parameters. A batch of one image, ``threads=1``, or a system without fork
    runs the model itself on the calling thread, with BLAS's own threads. The parts' processes start
    at the first split pass and end with ``close()``, when the DataParallel is collected, or at exit.
    """

    flat_names = True

    def __init__(self, model, threads=None):
        if model.device != "cpu":
            raise ValueError(f"DataParallel splits batches over CPU cores; a model on {model.device} runs whole")
        self.model = model
        self.threads = max(1, threads or available_cores())
        # Made at the first split pass, so the model is seen as it is then (frozen layers, weights).
        self._processes = []
        self._parameters, self._modules = None, None  # the model's, in tree order (fixed once forked)
        self._shared = []  # for each parameter, the shared array its values live in
        self._parts = None  # the batch slices of the last forward pass

    def forward(self, x):
        """Scores (N, K, H, W) for x (N, 3, H, W), each part of the batch computed by its own process."""
        parts = self._parts = self._split(len(x))
        if len(parts) == 1:
            return self.model.forward(x)
        processes = self._ready_processes(len(parts) - 1)
        states = self._states(len(processes), draw_seeds=True)
        requests = [("forward", state, x[part]) for state, part in zip(states, parts[1:])]
        scores = self._run(processes, requests, lambda: self.model.forward(x[parts[0]]))
        return np.concatenate(scores)

    def forward_backward(self, x, labels, loss_layer):
        """Module.forward_backward with each part of the batch in its own process from its forward pass
        to its backward pass, the loss of each part computed there: no part waits for the others in
        between, and the loss takes no step of its own on one core. Returns the batch's loss."""
        parts = self._split(len(x))
        if len(parts) == 1:
            return self.model.forward_backward(x, labels, loss_layer)
        processes = self._ready_processes(len(parts) - 1)
        normaliser = loss_layer.normaliser(labels)
        part_loss = copy.copy(loss_layer)  # each part keeps its own part's cache
        part_loss.clear_cache()  # not sent to the processes

        def own_part():
            loss = part_loss.forward(self.model.forward(x[parts[0]]), labels[parts[0]], normaliser)
            self.model.backward(part_loss.backward())
            return loss

        states = self._states(len(processes), draw_seeds=True)
        requests = [("step", state, x[part], labels[part], part_loss, normaliser)
                    for state, part in zip(states, parts[1:])]
        losses = self._run(processes, requests, own_part)
        self._add_process_gradients(len(processes))
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
        processes = self._processes[: len(parts) - 1]
        states = self._states(len(processes), draw_seeds=False)
        requests = [("backward", state, dscores[part]) for state, part in zip(states, parts[1:])]
        self._run(processes, requests, lambda: self.model.backward(dscores[parts[0]]))
        self._add_process_gradients(len(processes))
        return None

    def clear_cache(self):
        self._parts = None
        super().clear_cache()
        if self._processes:
            states = self._states(len(self._processes), draw_seeds=False)
            self._run(self._processes, [("clear_cache", state) for state in states])

    def close(self):
        """End the parts' processes (the next split pass starts new ones)."""
        for process in self._processes:
            process.close()
        self._processes = []

    # --- the parts' processes ---------------------------------------------------------------------

    def _split(self, size):
        return split_batch(size, self.threads if can_fork() else 1)

    def _run(self, processes, requests, own_part=None):
        """Send each process its request, compute ``own_part()`` (if given) meanwhile on this core with
        one BLAS thread, and return its result followed by the processes' answers. After an error, or
        Ctrl-C, the processes may still be busy with a request no one will read: they are killed
        (their gradient arrays go with them), and the next split pass starts new ones."""
        try:
            for process, request in zip(processes, requests):
                process.submit(request)
            own = None
            if own_part is not None:
                with single_blas_thread():
                    own = own_part()
            return [own] + [process.result() for process in processes]
        except BaseException:
            for process in self._processes:
                process.kill()
            self.close()
            raise

    def _ready_processes(self, count):
        """``count`` processes, the model's weights in the shared arrays they compute with."""
        if self._parameters is None:
            self._parameters = [parameter for _, parameter in self.model.parameters()]
            self._modules = list(self.model.modules())
        self._share_weights()
        while len(self._processes) < count:
            self._processes.append(PartProcess(self.model))
        return self._processes[:count]

    def _share_weights(self):
        """Point every parameter at its shared array, with the parameter's current values: an optimizer
        updates them there in place, but a load replaces the array, whose values are then copied in. A
        parameter of a new shape or type gets a new shared array, which the processes forked before
        cannot see: they are ended, and new ones forked."""
        for index, parameter in enumerate(self._parameters):
            shared = self._shared[index] if index < len(self._shared) else None
            if parameter.data is shared:
                continue
            if shared is not None and shared.shape == parameter.data.shape and shared.dtype == parameter.data.dtype:
                shared[...] = parameter.data
            else:
                self.close()
                shared = shared_like(parameter.data)
                self._shared[index:index + 1] = [shared]
            parameter.data = shared

    def _states(self, count, draw_seeds):
        """What each of ``count`` processes must know of the model for its next request
        (``part_process.model_state``); the dropout seeds drawn from the model's generator, one a
        process in order, where a training forward pass draws random numbers."""
        draws = draw_seeds and self.model.draws_random_numbers()
        return [model_state(self._parameters, self._modules,
                            int(self.model.dropout_rng.integers(2**63)) if draws else None)
                for _ in range(count)]

    def _add_process_gradients(self, count):
        """Add the first ``count`` processes' gradients into the model's, each element in the
        processes' order, so the sum does not depend on their timing; the elements are cut into one
        run per core."""
        processes = self._processes[:count]
        groups = [(parameter.grad, *(process.gradients[index] for process in processes))
                  for index, parameter in enumerate(self._parameters) if parameter.requires_grad]
        elementwise_on_cores(groups, add_into_first)


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
