"""The one building block: every layer and every model is a ``Module``."""

from collections import OrderedDict

import numpy as np

from ..backend import to_device, to_numpy
from .gradient_buffer import pack_gradients, zero_gradients
from .parameter import Parameter


class Module:
    """A node of the network's tree: it holds Parameters and child Modules as attributes, and the cache
    of its last forward pass.

    Assigning a Parameter or a Module to an attribute is all it takes to register it: the tree is read
    from the attributes, in the order they were set, so parameters, train/eval, ``to(device)``,
    ``zero_grad``, cache clearing and freezing all recurse through it and no list is kept by hand.
    A parameter is named by its path, ``conv1_1.weight``; a container with ``flat_names`` (Sequential,
    DataParallel) groups layers without being a level of that path, so the names stay the reference
    network's whatever groups the model runs them in.

    Subclasses implement ``forward(...)`` and ``backward(dy)``, which returns the gradient with respect
    to the (first) input, or None when ``input_grad`` is False: the layers below are frozen or the input
    is the image, so that gradient would be computed for nothing.
    """

    training = True
    input_grad = True
    device = "cpu"
    flat_names = False
    _cache = None  # what forward kept for backward; None: nothing

    # --- the tree ---------------------------------------------------------------------------------

    def named_children(self):
        """``(attribute name, Module)`` of the direct children, in the order they were set."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def modules(self):
        """This module and every module below it, depth first, in attribute order."""
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def named_layers(self, prefix=""):
        """``(name, Module)`` of every leaf of the tree (a module without children), in order."""
        children = list(self.named_children())
        if not children:
            yield prefix.rstrip("."), self
        for name, child in children:
            yield from child.named_layers(prefix if child.flat_names else f"{prefix}{name}.")

    def parameters(self, prefix=""):
        """Yield ``(name, Parameter)`` for every parameter of the tree, named by its path."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield f"{prefix}{name}", value
            elif isinstance(value, Module):
                yield from value.parameters(prefix if value.flat_names else f"{prefix}{name}.")

    def has_parameters(self):
        return any(True for _ in self.parameters())

    # --- modes, devices, gradients ----------------------------------------------------------------

    def train(self):
        for module in self.modules():
            module.training = True
        return self

    def eval(self):
        for module in self.modules():
            module.training = False
        return self

    def to(self, device):
        """Move every parameter to ``device`` ("cpu", "gpu" or "gpu:N"); their gradients then share one
        buffer, so ``zero_grad`` clears them with one fill."""
        parameters = [parameter for _, parameter in self.parameters()]
        for parameter in parameters:
            parameter.to(device)
        pack_gradients(parameters)
        for module in self.modules():
            module.device = device
        return self

    def zero_grad(self):
        zero_gradients([parameter for _, parameter in self.parameters()])

    def forward_backward(self, x, labels, loss_layer):
        """A training step's passes: the scores of x, ``loss_layer``'s loss against ``labels``, and
        backward, which adds the gradients into the parameters. Returns the loss. (DataParallel runs
        the three on each part of the batch in its own process.)"""
        loss = loss_layer.forward(self.forward(x), labels)
        self.backward(loss_layer.backward())
        return loss

    def set_trainable(self, trainable):
        """Let every parameter of the tree learn (True) or freeze it (False)."""
        for _, parameter in self.parameters():
            parameter.requires_grad = trainable

    def computes_gradients(self):
        """Will backward compute anything: the input's gradient or a trainable parameter's?"""
        return self.input_grad or any(parameter.requires_grad for _, parameter in self.parameters())

    # --- randomness (dropout) ---------------------------------------------------------------------

    def draws_random_numbers(self):
        """Will a forward pass in the current mode draw random numbers anywhere in the tree?"""
        return any(module._draws_own_random_numbers() for module in self.modules())

    def _draws_own_random_numbers(self):
        return False

    def use_generator(self, rng):
        """Draw every random number of the tree from ``rng`` (a NumPy Generator on the host)."""
        for module in self.modules():
            module._use_own_generator(rng)

    def _use_own_generator(self, rng):
        pass

    # --- the forward cache ------------------------------------------------------------------------

    def _save_for_backward(self, cache):
        """Keep ``cache`` for backward, unless backward will compute nothing (a frozen layer under a
        frozen layer): keeping it would only hold memory, a whole activation map for each frozen
        convolution, through the rest of the step."""
        self._cache = cache if self.computes_gradients() else None

    def _saved(self):
        """The cache of the last forward pass, dropped as it is handed to backward; None when backward
        has nothing to compute."""
        cache, self._cache = self._cache, None
        if cache is None and self.computes_gradients():
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward pass before it")
        return cache

    def clear_cache(self):
        """Drop what forward kept for backward, in the whole tree (after an inference-only pass)."""
        for module in self.modules():
            module._cache = None

    # --- parameters as arrays ---------------------------------------------------------------------

    def state_dict(self):
        """``{name: NumPy array}`` of every parameter, on the host."""
        return OrderedDict((name, to_numpy(parameter.data).copy()) for name, parameter in self.parameters())

    def load_state_dict(self, state, strict=True):
        """Copy ``state`` ({name: array}) into the parameters; every name and shape is checked first and
        all mismatches are listed in one ValueError. With ``strict=False`` missing and unexpected names
        are allowed (shapes must still match)."""
        parameters = OrderedDict(self.parameters())
        problems = []
        missing = [name for name in parameters if name not in state]
        unexpected = [name for name in state if name not in parameters]
        if strict and missing:
            problems.append(f"missing: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected: {', '.join(unexpected)}")
        for name, parameter in parameters.items():
            if name in state and tuple(np.shape(state[name])) != tuple(parameter.shape):
                problems.append(f"{name}: expected shape {tuple(parameter.shape)}, got {tuple(np.shape(state[name]))}")
        if problems:
            raise ValueError(f"state dict does not fit {type(self).__name__}: " + "; ".join(problems))
        for name, parameter in parameters.items():
            if name in state:
                value = np.asarray(to_numpy(state[name]), dtype=np.float32)
                parameter.data = to_device(value.copy(), self.device)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)
