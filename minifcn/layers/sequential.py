"""A chain of named layers, run forward in order and backward in reverse."""

from .module import Module


class Sequential(Module):
    """``Sequential([(name, layer), ...])``: each layer becomes the attribute ``name``.

    A Sequential groups layers to run them in a row; it is not a level of the parameter names
    (``flat_names``): conv1_1 inside a block is still ``conv1_1.weight``, as in the reference network.

    Backward stops at the first layer that returns None (its ``input_grad`` is off because everything
    below is frozen) and drops the caches of the layers it did not reach, so no gradient is computed
    below a frozen point and no memory is held for one.
    """

    flat_names = True

    def __init__(self, layers):
        for name, layer in layers:
            setattr(self, name, layer)

    def forward(self, x):
        for _, layer in self.named_children():
            x = layer.forward(x)
        return x

    def backward(self, dy):
        """Backward through the chain; None in (nothing above needs this chain's gradient) or out."""
        layers = [layer for _, layer in self.named_children()]
        for index in range(len(layers) - 1, -1, -1):
            if dy is None:
                for layer in layers[: index + 1]:
                    layer.clear_cache()
                return None
            dy = layers[index].backward(dy)
        return dy

    def __iter__(self):
        """``(name, layer)`` pairs, in order."""
        return self.named_children()

    def __len__(self):
        return sum(1 for _ in self.named_children())
