"""Stochastic gradient descent with momentum and weight decay, as Caffe does it, and learning-rate schedules.

For each parameter w with gradient g, learning rate lr * lr_mult and decay wd * decay_mult:

    v <- momentum * v - lr * lr_mult * (g + wd * decay_mult * w)
    w <- w + v

The per-parameter multipliers come from the Parameter (the reference trains biases at twice the
rate and without decay). Frozen parameters (``requires_grad`` False) are skipped. Velocities live on
the parameters' device and are created on the first step.
"""

import math

import numpy as np

from .backend import get_array_module, to_device, to_numpy


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

    def step(self, lr=None):
        """Update every trainable parameter once, with ``lr`` (or the optimizer's own rate)."""
        lr = self.lr if lr is None else lr
        for name, parameter in self.parameters:
            if not parameter.requires_grad:
                continue
            xp = get_array_module(parameter.data)
            velocity = self.velocity.get(name)
            if velocity is None:
                velocity = self.velocity[name] = xp.zeros_like(parameter.data)
            step = parameter.grad
            decay = self.weight_decay * parameter.decay_mult
            if decay:
                step = step + decay * parameter.data
            velocity *= self.momentum
            velocity -= (lr * parameter.lr_mult) * step
            parameter.data += velocity

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
