"""One contiguous gradient buffer for many parameters, so clearing them all is one operation.

On a GPU every array operation is a kernel launch issued from Python, and a model's ~40 gradients
cleared one by one cost ~40 launches a step; as views into one flat buffer per device and dtype they
are cleared by a single fill. (A data-parallel all-reduce can send such a buffer in one call too.)
"""

from ..backend import device_of, get_array_module


def pack_gradients(parameters):
    """Move the gradients of ``parameters`` into one flat buffer per (device, dtype), each gradient a
    view of its slice; the values are kept. Parameters whose gradient is already in a buffer are
    repacked. Returns the buffers."""
    groups = {}
    for parameter in parameters:
        grad = parameter.grad
        groups.setdefault((device_of(grad), grad.dtype), []).append(parameter)
    buffers = []
    for members in groups.values():
        xp = get_array_module(members[0].grad)
        buffer = xp.empty(sum(parameter.grad.size for parameter in members), dtype=members[0].grad.dtype)
        offset = 0
        for parameter in members:
            size = parameter.grad.size
            view = buffer[offset : offset + size].reshape(parameter.grad.shape)
            view[...] = parameter.grad
            parameter.grad, parameter.grad_buffer = view, buffer
            offset += size
        buffers.append(buffer)
    return buffers


def zero_gradients(parameters):
    """Set every gradient of ``parameters`` to zero in place: one fill per buffer that they cover
    entirely, one per gradient otherwise (a buffer shared with parameters outside ``parameters``, a
    submodule's say, must keep their values)."""
    by_buffer = {}
    for parameter in parameters:
        if parameter.grad_buffer is None:
            parameter.zero_grad()
        else:
            by_buffer.setdefault(id(parameter.grad_buffer), []).append(parameter)
    for members in by_buffer.values():
        buffer = members[0].grad_buffer
        if sum(parameter.grad.size for parameter in members) == buffer.size:
            buffer.fill(0)
        else:
            for parameter in members:
                parameter.zero_grad()

