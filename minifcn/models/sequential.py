"""A chain of named layers, run forward in order and backward in reverse."""


class Sequential:
    """``layers`` is a list of ``(name, layer)``.

    Backward stops at the first layer that returns None (its ``input_grad`` is off because
    everything below is frozen) and drops the caches of the layers it did not reach, so no gradient
    is computed below a frozen point and no memory is held for one.
    """

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x):
        for _, layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        """Backward through the chain; None in (nothing above needs this chain's gradient) or out."""
        if dy is None:
            self.clear_cache()
            return None
        for index in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[index][1].backward(dy)
            if dy is None:
                self.clear_cache(below=index)
                return None
        return dy

    def clear_cache(self, below=None):
        """Drop the forward caches of all layers (or of those below index ``below``)."""
        end = len(self.layers) if below is None else below
        for _, layer in self.layers[:end]:
            layer.clear_cache()

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)
