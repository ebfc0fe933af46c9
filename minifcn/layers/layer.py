"""The base of every layer: parameters, train/eval mode, device moves."""

from .parameter import Parameter


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
