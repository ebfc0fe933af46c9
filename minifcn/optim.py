"""Optimizers (SGD with momentum as Caffe does it, and Adam) and learning-rate schedules.

SGD, for each parameter w with gradient g, learning rate lr * lr_mult and decay wd * decay_mult:

    v <- momentum * v - lr * lr_mult * (g + wd * decay_mult * w)
    w <- w + v

This is what the reference trained FCN with, starting from ImageNet weights. Adam (Kingma & Ba) is
there for training from scratch: a plain 15-layer network without normalisation layers, whose
gradients differ in scale by orders of magnitude from layer to layer, learns about twice as fast per
step with Adam's per-element step sizes (measured on the synthetic shapes; see the README).

Both take the per-parameter multipliers from the Parameter (the reference trains biases at twice the
rate and without decay) and skip frozen parameters (``requires_grad`` False). Their state lives on the
parameters' device, is created on the first step, and round-trips through ``state_dict`` for exact
resumption.

On a GPU each update is one fused kernel per parameter (``ElementwiseKernel``, the same arithmetic in
the same order as the NumPy lines, each scalar rounded to float32 as NumPy rounds it), where the NumPy
lines would issue 5 (SGD) to 12 (Adam) kernels per parameter: a GPU step is bound by how many kernels
Python issues. The CPU keeps the NumPy lines, which need no compiler, and cuts the elements of all the
parameters into one run per core (``ops/fast/cores.py``): every element's update is independent of
the others, so the values are the same to the bit, and the update, a tenth of the default model's
training step on one core, takes about half as long. Each run goes a cache-sized piece at a time, so
that the NumPy lines' passes read and write memory once between them, not once each (Adam's step on
the CamVid recipe's 41 million parameters: about half the time).
"""

import math

import numpy as np

from .backend import elementwise_kernel, get_array_module, to_device, to_numpy
from .ops.fast.cores import elementwise_on_cores


# velocity <- momentum * velocity - lr * (g + decay * w); w <- w + velocity
_SGD_KERNEL = ("T grad, T lr, T momentum, T decay", "T data, T velocity",
               "velocity = momentum * velocity - lr * (grad + decay * data); data += velocity;",
               "minifcn_sgd_update")
# m <- beta1 * m + (1 - beta1) * g'; v <- beta2 * v + (1 - beta2) * g'^2; w <- w - step * m / (sqrt(v / c2) + eps)
_ADAM_KERNEL = ("T grad, T step_size, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T decay, "
                "T second_correction, T eps",
                "T data, T first, T second",
                "T g = grad + decay * data; "
                "first = beta1 * first + one_minus_beta1 * g; "
                "second = beta2 * second + one_minus_beta2 * (g * g); "
                "data -= step_size * first / (sqrt(second / second_correction) + eps);",
                "minifcn_adam_update")


def decayed_gradient(grad, data, decay):
    """The gradient with L2 weight decay added: g + decay * w (g itself when there is none)."""
    return grad + decay * data if decay else grad


def scratch_arrays(buffers, run, data, count):
    """``count`` float arrays shaped like ``data``: views of flat buffers that ``buffers`` (a dict) keeps
    for each run of an update (``cores.elementwise_on_cores``), grown to the largest piece they have
    held. They are only needed within one piece's update, and a run's pieces are updated one after the
    other."""
    kept = buffers.get(run)
    if kept is None or len(kept) < count or kept[0].size < data.size or kept[0].dtype != data.dtype:
        kept = buffers[run] = tuple(np.empty(data.size, data.dtype) for _ in range(count))
    return tuple(buffer[: data.size].reshape(data.shape) for buffer in kept[:count])


class SGD:
    """SGD with momentum over ``parameters``, an iterable of ``(name, Parameter)``."""

    def __init__(self, parameters, lr=1e-3, momentum=0.9, weight_decay=5e-4):
        if lr < 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"need lr >= 0, 0 <= momentum < 1, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        self.parameters = list(parameters)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocity = {}
        self._buffers = {}  # run of the NumPy update -> its scratch space (``scratch_arrays``)

    def step(self, lr=None):
        """Update every trainable parameter once, with ``lr`` (or the optimizer's own rate)."""
        lr = self.lr if lr is None else lr
        on_host = []  # (parameter, velocity) of the parameters in host memory
        for name, parameter in self.parameters:
            if not parameter.requires_grad:
                continue
            xp = get_array_module(parameter.data)
            velocity = self.velocity.get(name)
            if velocity is None:
                velocity = self.velocity[name] = xp.zeros_like(parameter.data)
            if xp is np:
                on_host.append((parameter, velocity))
            else:
                elementwise_kernel(xp, *_SGD_KERNEL)(parameter.grad, lr * parameter.lr_mult, self.momentum,
                                              self.weight_decay * parameter.decay_mult, parameter.data, velocity)

        def update_piece(run, index, arrays):
            # step = lr * (g + decay * w), written into a kept scratch array rather than two fresh
            # parameter-sized temporaries (the same arithmetic in the same order).
            data, grad, velocity = arrays
            parameter = on_host[index][0]
            (step,) = scratch_arrays(self._buffers, run, data, 1)
            decay = self.weight_decay * parameter.decay_mult
            if decay:
                np.add(grad, np.multiply(data, decay, out=step), out=step)
            else:
                step[...] = grad
            step *= lr * parameter.lr_mult
            velocity *= self.momentum
            velocity -= step
            data += velocity

        groups = [(parameter.data, parameter.grad, velocity) for parameter, velocity in on_host]
        elementwise_on_cores(groups, update_piece)

    def state_dict(self):
        """The velocities as host arrays ``{name: array}`` (for checkpoints and exact resumption)."""
        return {name: to_numpy(value).copy() for name, value in self.velocity.items()}

    def load_state_dict(self, state, device="cpu"):
        """Restore velocities saved by ``state_dict``; names must be parameters of this optimizer."""
        shapes = {name: parameter.shape for name, parameter in self.parameters}
        problems = [name for name, value in state.items() if tuple(shapes.get(name, ())) != tuple(np.shape(value))]
        if problems:
            raise ValueError(f"optimizer state does not fit the model: {', '.join(problems)}")
        self.velocity = {name: to_device(np.asarray(value, np.float32), device) for name, value in state.items()}


class Adam:
    """Adam over ``parameters``, an iterable of ``(name, Parameter)``; weight decay is added to the
    gradient (L2, as ``torch.optim.Adam``), so one update with gradient g is

        g' = g + wd * decay_mult * w
        m <- beta1 * m + (1 - beta1) * g'            v <- beta2 * v + (1 - beta2) * g'^2
        w <- w - lr * lr_mult * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    """

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        beta1, beta2 = betas
        if lr < 0 or not 0 <= beta1 < 1 or not 0 <= beta2 < 1 or eps <= 0 or weight_decay < 0:
            raise ValueError(f"need lr >= 0, 0 <= betas < 1, eps > 0, weight_decay >= 0; "
                             f"got {lr}, {betas}, {eps}, {weight_decay}")
        self.parameters = list(parameters)
        self.lr = lr
        self.beta1, self.beta2 = beta1, beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps = 0
        self.moments = {}  # name -> (first moment m, second moment v)
        self._buffers = {}  # run of the NumPy update -> its scratch space (``scratch_arrays``)

    def step(self, lr=None):
        """Update every trainable parameter once, with ``lr`` (or the optimizer's own rate)."""
        lr = self.lr if lr is None else lr
        self.steps += 1
        first_correction = 1 - self.beta1**self.steps
        second_correction = 1 - self.beta2**self.steps
        on_host = []  # the parameters in host memory, with their moments
        for name, parameter in self.parameters:
            if not parameter.requires_grad:
                continue
            xp = get_array_module(parameter.data)
            if name not in self.moments:
                self.moments[name] = (xp.zeros_like(parameter.data), xp.zeros_like(parameter.data))
            first, second = self.moments[name]
            if xp is np:
                on_host.append((parameter, first, second))
            else:
                elementwise_kernel(xp, *_ADAM_KERNEL)(
                    parameter.grad, lr * parameter.lr_mult / first_correction, self.beta1, 1 - self.beta1,
                    self.beta2, 1 - self.beta2, self.weight_decay * parameter.decay_mult, second_correction,
                    self.eps, parameter.data, first, second)

        def update_piece(run, index, arrays):
            # Every operation writes into two scratch arrays instead of a fresh temporary (the same
            # arithmetic in the same order): no dozen parameter-sized allocations per update, about
            # a tenth of the update's time on the default model.
            data, grad, first, second = arrays
            parameter = on_host[index][0]
            grad = decayed_gradient(grad, data, self.weight_decay * parameter.decay_mult)
            scratch, update = scratch_arrays(self._buffers, run, data, 2)
            first *= self.beta1
            first += np.multiply(grad, 1 - self.beta1, out=scratch)
            second *= self.beta2
            np.multiply(grad, grad, out=scratch)
            second += np.multiply(scratch, 1 - self.beta2, out=scratch)
            denominator = np.sqrt(np.divide(second, second_correction, out=scratch), out=scratch)
            denominator += self.eps
            np.multiply(first, lr * parameter.lr_mult / first_correction, out=update)
            data -= np.divide(update, denominator, out=update)

        groups = [(parameter.data, parameter.grad, first, second) for parameter, first, second in on_host]
        elementwise_on_cores(groups, update_piece)

    def state_dict(self):
        """The moments and the step count as host arrays (for checkpoints and exact resumption)."""
        state = {"steps": np.array(self.steps, np.int64)}
        for name, (first, second) in self.moments.items():
            state[f"m/{name}"] = to_numpy(first).copy()
            state[f"v/{name}"] = to_numpy(second).copy()
        return state

    def load_state_dict(self, state, device="cpu"):
        """Restore what ``state_dict`` saved; moment names must be parameters of this optimizer."""
        shapes = {name: parameter.shape for name, parameter in self.parameters}
        moments, problems = {}, []
        for key, value in state.items():
            if key == "steps":
                continue
            kind, _, name = key.partition("/")
            if kind not in ("m", "v") or tuple(shapes.get(name, ())) != tuple(np.shape(value)):
                problems.append(key)
            else:
                moments.setdefault(name, {})[kind] = to_device(np.asarray(value, np.float32), device)
        problems += [name for name, pair in moments.items() if len(pair) != 2]
        if problems or (moments and "steps" not in state):
            raise ValueError(f"optimizer state does not fit the model: {', '.join(problems) or 'no step count'}")
        self.moments = {name: (pair["m"], pair["v"]) for name, pair in moments.items()}
        self.steps = int(state.get("steps", 0))


def poly_lr(base_lr, iteration, max_iterations, power=0.9):
    """The "poly" schedule: base_lr * (1 - iteration / max_iterations) ** power, falling to 0 at the end."""
    progress = min(iteration, max_iterations) / max(max_iterations, 1)
    return base_lr * (1 - progress) ** power


def step_lr(base_lr, iteration, step_size, gamma=0.1):
    """Caffe's "step" schedule: base_lr * gamma ** floor(iteration / step_size)."""
    return base_lr * gamma ** math.floor(iteration / step_size)


def constant_lr(base_lr, iteration, max_iterations=None):
    """Caffe's "fixed" schedule, which the reference FCN used."""
    return base_lr


def warmup(lr, iteration, warmup_iterations):
    """Scale ``lr`` up linearly over the first ``warmup_iterations`` iterations."""
    if warmup_iterations <= 0 or iteration >= warmup_iterations:
        return lr
    return lr * (iteration + 1) / warmup_iterations
