"""A trainable array and its gradient, with the per-parameter settings the optimizer reads."""

from ..backend import get_array_module, to_device


class Parameter:
    """``data`` and ``grad`` of the same shape, dtype and device.

    Backward passes add into ``grad`` (so gradients accumulate over several batches until
    ``zero_grad``). ``lr_mult`` and ``decay_mult`` scale the learning rate and weight decay as in
    Caffe (the reference trains biases at twice the rate and without decay). A parameter with
    ``requires_grad`` False is frozen: layers compute no gradient for it.
    """

    def __init__(self, data, lr_mult=1.0, decay_mult=1.0, requires_grad=True):
        self.data = data
        self.grad = get_array_module(data).zeros_like(data)
        self.lr_mult = lr_mult
        self.decay_mult = decay_mult
        self.requires_grad = requires_grad

    @property
    def shape(self):
        return self.data.shape

    def accumulate(self, grad):
        """Add ``grad`` into ``self.grad``."""
        self.grad += grad

    def zero_grad(self):
        self.grad.fill(0)

    def to(self, device):
        """Move data and grad to ``device`` ("cpu", "gpu" or "gpu:N")."""
        self.data = to_device(self.data, device)
        self.grad = to_device(self.grad, device)
        return self

    def astype(self, dtype):
        """Cast data and grad (gradient checks run in float64)."""
        self.data = self.data.astype(dtype)
        self.grad = self.grad.astype(dtype)
        return self

    def __repr__(self):
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype})"
