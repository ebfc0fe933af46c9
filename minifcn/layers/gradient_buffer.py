"""One contiguous gradient buffer for many parameters, so clearing them all is one operation.

On a GPU every array operation is a kernel launch issued from Python, and a model's ~40 gradients
cleared one by one cost ~40 launches a step; as views into one flat buffer per device and dtype they
are cleared by a single fill. (A data-parallel all-reduce can send such a buffer in one call too.)
"""

from ..backend import device_of, get_array_module


def flat_views(arrays, allocate):
    """Views shaped like each of ``arrays``, cut in order from one flat buffer per (device, dtype)
    that ``allocate(xp, size, dtype)`` makes. Returns the views and, for each, its buffer."""
    groups = {}
    for position, array in enumerate(arrays):
        groups.setdefault((device_of(array), array.dtype), []).append(position)
    views, buffers = [None] * len(arrays), [None] * len(arrays)
    for positions in groups.values():
        first = arrays[positions[0]]
        buffer = allocate(get_array_module(first), sum(arrays[position].size for position in positions), first.dtype)
        offset = 0
        for position in positions:
            size = arrays[position].size
            views[position] = buffer[offset : offset + size].reshape(arrays[position].shape)
            buffers[position] = buffer
            offset += size
    return views, buffers


def pack_gradients(parameters):
    """Move the gradients of ``parameters`` into one flat buffer per (device, dtype), each gradient a
    view of its slice; the values are kept. Parameters whose gradient is already in a buffer are
    repacked. Returns the buffers."""
    parameters = list(parameters)
    views, buffers = flat_views([parameter.grad for parameter in parameters],
                                lambda xp, size, dtype: xp.empty(size, dtype=dtype))
    for parameter, view, buffer in zip(parameters, views, buffers):
        view[...] = parameter.grad
        parameter.grad, parameter.grad_buffer = view, buffer
    return list({id(buffer): buffer for buffer in buffers}.values())


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

