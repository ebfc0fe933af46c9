"""A trainable array and its gradient, with the per-parameter settings the optimizer reads."""

import copy

from ..backend import get_array_module, to_device


class Parameter:
    """``data`` and ``grad`` of the same shape, dtype and device.

    Backward passes add into ``grad`` (so gradients accumulate over several batches until
    ``zero_grad``). ``lr_mult`` and ``decay_mult`` scale the learning rate and weight decay as in
    Caffe (the reference trains biases at twice the rate and without decay). A parameter with
    ``requires_grad`` False is frozen: layers compute no gradient for it.

    ``grad_buffer`` is the flat array ``grad`` is a view of when the model's gradients share one
    (``gradient_buffer.pack_gradients``), else None.
    """

    def __init__(self, data, lr_mult=1.0, decay_mult=1.0, requires_grad=True):
        self.data = data
        self.grad = get_array_module(data).zeros_like(data)
        self.lr_mult = lr_mult
        self.decay_mult = decay_mult
        self.requires_grad = requires_grad
        self.grad_buffer = None

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
        self.grad_buffer = None  # grad may be a copy now, outside the buffer
        return self

    def astype(self, dtype):
        """Cast data and grad (gradient checks run in float64)."""
        self.data = self.data.astype(dtype)
        self.grad = self.grad.astype(dtype)
        self.grad_buffer = None
        return self

    def __deepcopy__(self, memo):
        # A deep copy of a view is an array of its own, no longer in (the copy of) the buffer: the
        # copy must clear its gradient by itself.
        copied = Parameter.__new__(Parameter)
        memo[id(self)] = copied
        for name, value in vars(self).items():
            setattr(copied, name, copy.deepcopy(value, memo))
        copied.grad_buffer = None
        return copied

    def __repr__(self):
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype})"
