"""The base of every layer: parameters, train/eval mode, device moves."""

from .parameter import Parameter

# What a layer keeps from forward when its backward will compute nothing (see ``Layer._keep``).
NOTHING_TO_COMPUTE = "nothing to compute"


class Layer:
    """A layer holds its Parameters as attributes and the cache of its last forward pass.

    Subclasses implement ``forward(...)`` and ``backward(dy)``, which returns the gradient with
    respect to the (first) input, or None when ``input_grad`` is False: the layers below are frozen or
    the input is the image, so that gradient would be computed for nothing.
    """

    training = True
    input_grad = True

    def parameters(self):
        """Yield ``(name, Parameter)`` pairs, in attribute order."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self

    def zero_grad(self):
        for _, parameter in self.parameters():
            parameter.zero_grad()

    def to(self, device):
        for _, parameter in self.parameters():
            parameter.to(device)
        return self

    def computes_gradients(self):
        """Will backward compute anything: the input's gradient or a trainable parameter's?"""
        return self.input_grad or any(parameter.requires_grad for _, parameter in self.parameters())

    def _keep(self, cache):
        """Keep ``cache`` for backward, unless backward will compute nothing (a frozen layer under a
        frozen layer): then keeping it would only hold memory, a whole activation map for each frozen
        convolution, through the rest of the step. Backward then gets ``NOTHING_TO_COMPUTE``."""
        self._cache = cache if self.computes_gradients() else NOTHING_TO_COMPUTE

    def clear_cache(self):
        """Drop what forward kept for backward (called by backward, or to free memory after eval)."""
        self._cache = None

    def _take_cache(self):
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without a forward pass before it")
        self._cache = None
        return cache

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)
