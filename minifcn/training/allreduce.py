"""Summing the gradients of every process of a distributed run: one all-reduce a step, over one buffer.

After backward, each rank packs the gradients of all its trainable parameters into one preallocated
flat buffer and the buffer is summed over the ranks in place (``Allreduce(MPI.IN_PLACE, buffer)``),
then unpacked. One call a step for the whole model, not one per parameter: each call costs a
network round trip's latency whatever its size, and FCN-8s has 39 parameter arrays.

The loss is a mean over the labelled pixels of the whole global batch, but each rank's loss layer only
sees its own images: its loss is S_r / W_r (the sum of its pixels' losses over its labelled-pixel
weight W_r) and its gradient dS_r / W_r. The global batch's gradient is sum_r dS_r / sum_r W_r, so each
rank packs its gradient times W_r (= dS_r, what it contributes to the sum) and the buffer carries two
more numbers, S_r and W_r; after the sum every rank divides by sum_r W_r. Averaging the ranks' means
instead would weigh a pixel of a rank with fewer labelled pixels more than one process does. With a
summed loss (``--no-loss-normalize``) each rank packs its gradient as it is and nothing is divided.

The buffer also carries the rank's stop flags (Ctrl-C, SIGTERM, the time limit), so that every rank
learns in the same call whether any wants to stop; see ``distributed``.

Three ways to move the buffer, chosen by where the parameters live:

- ``HostAllReduce``: parameters on the CPU; MPI sums the NumPy buffer in place.
- ``DeviceViaHostAllReduce``: parameters on a GPU where NCCL is missing; the gradients are packed on
  the device, copied to a host buffer in one transfer, summed by MPI, and copied back.
- ``NcclAllReduce``: parameters on a GPU with NCCL (``cupy.cuda.nccl``); the device buffer is summed
  by NCCL where it is, on the current stream, GPU to GPU. The stop flags, which live on the host, go
  in a second, tiny MPI call, so that reading them never waits for the GPU.
"""

import time

import numpy as np

from ..backend import get_array_module, nccl_or_none

# The flags after the gradients and the two loss numbers: stop requested by Ctrl-C, by SIGTERM, and
# the time limit reached. Counts of the ranks that set them, after the sum.
FLAGS = ("sigint", "sigterm", "time_up")


class Reduced:
    """What a step's all-reduce returns: ``loss`` (the global batch's, 0-d, on the parameters'
    device) and ``flags`` (dict FLAGS -> number of ranks that set it)."""

    def __init__(self, loss, flags):
        self.loss, self.flags = loss, flags


class GradientAllReduce:
    """Sums the gradients of ``parameters`` (a list of trainable Parameters) over ``world``'s ranks.

    ``reduce(loss, weight, flags)`` after backward: ``loss`` is this rank's 0-d loss, ``weight`` its
    W_r (its labelled-pixel weight; 1 with a summed loss), ``flags`` a dict of FLAGS -> bool. Every
    parameter's ``grad`` is replaced by the global batch's gradient. ``seconds`` adds up the time
    spent packing, summing and unpacking (the cost of being distributed, for the benchmarks).
    """

    def __init__(self, world, parameters, normalize=True):
        self.world = world
        self.parameters = [parameter for parameter in parameters if parameter.requires_grad]
        self.normalize = normalize
        self.sizes = [parameter.grad.size for parameter in self.parameters]
        self.count = sum(self.sizes)  # gradient values; the loss numbers follow them
        self.seconds = 0.0
        self.calls = 0

    @property
    def bytes(self):
        """Bytes of gradients each rank contributes per step (float32)."""
        return 4 * self.count

    def reduce(self, loss, weight, flags):
        started = time.perf_counter()
        reduced = self._reduce(loss, float(weight), flags)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return reduced

    def _views(self, buffer):
        """(parameter, its part of ``buffer`` shaped like its gradient) for every parameter."""
        offset = 0
        for parameter, size in zip(self.parameters, self.sizes):
            yield parameter, buffer[offset:offset + size].reshape(parameter.grad.shape)
            offset += size

    def _pack(self, buffer, loss, weight):
        """Gradients times ``weight``, then S_r = loss * weight and W_r, into ``buffer``."""
        xp = get_array_module(buffer)
        scale = buffer.dtype.type(weight)
        for parameter, view in self._views(buffer):
            xp.multiply(parameter.grad, scale, out=view)
        buffer[self.count] = loss * scale
        buffer[self.count + 1] = scale

    def _unpack(self, buffer):
        """Every gradient from the summed ``buffer``, divided by sum W_r; the global loss (0-d)."""
        xp = get_array_module(buffer)
        divisor = buffer[self.count + 1:self.count + 2]
        if self.normalize:
            # No labelled pixel anywhere: the loss and the gradients are 0, as on one process.
            divisor = xp.where(divisor > 0, divisor, buffer.dtype.type(1))
        else:
            divisor = xp.ones_like(divisor)
        for parameter, view in self._views(buffer):
            xp.divide(view, divisor, out=parameter.grad)
        return (buffer[self.count:self.count + 1] / divisor).reshape(())


def labelled_weight(labels, loss_layer):
    """W_r of a host label batch (N, H, W): what ``loss_layer`` divides this rank's summed loss by (its
    labelled pixels, each counted with its class weight), or 1 where it sums the loss."""
    if not loss_layer.normalize:
        return 1.0
    labelled = labels[labels != loss_layer.ignore_index]
    if loss_layer.class_weights is None:
        return float(labelled.size)
    return float(np.asarray(loss_layer.class_weights, np.float64)[labelled].sum())


def flag_values(flags):
    return [1.0 if flags.get(name) else 0.0 for name in FLAGS]


def flags_from(values):
    return {name: int(round(float(value))) for name, value in zip(FLAGS, values)}


class HostAllReduce(GradientAllReduce):
    """Gradients on the CPU, summed by MPI over one NumPy buffer."""

    def __init__(self, world, parameters, normalize=True):
        super().__init__(world, parameters, normalize)
        self.buffer = np.empty(self.count + 2 + len(FLAGS), np.float32)

    def _reduce(self, loss, weight, flags):
        buffer = self.buffer
        self._pack(buffer, np.float32(loss), weight)
        buffer[self.count + 2:] = flag_values(flags)
        self.world.sum(buffer)
        return Reduced(self._unpack(buffer), flags_from(buffer[self.count + 2:]))


class DeviceViaHostAllReduce(GradientAllReduce):
    """Gradients on a GPU, packed there, summed by MPI in host memory (where NCCL is missing)."""

    def __init__(self, world, parameters, normalize=True):
        super().__init__(world, parameters, normalize)
        xp = get_array_module(self.parameters[0].grad)
        self.device_buffer = xp.empty(self.count + 2, np.float32)
        self.buffer = np.empty(self.count + 2 + len(FLAGS), np.float32)

    def _reduce(self, loss, weight, flags):
        self._pack(self.device_buffer, loss, weight)
        host = self.buffer[:self.count + 2]
        self.device_buffer.get(out=host)  # one transfer; it waits for backward to finish
        self.buffer[self.count + 2:] = flag_values(flags)
        self.world.sum(self.buffer)
        self.device_buffer.set(host)
        return Reduced(self._unpack(self.device_buffer), flags_from(self.buffer[self.count + 2:]))


class NcclAllReduce(GradientAllReduce):
    """Gradients on a GPU, summed GPU to GPU by NCCL; one GPU per rank (NCCL refuses two ranks on one)."""

    def __init__(self, world, parameters, nccl, normalize=True):
        super().__init__(world, parameters, normalize)
        xp = get_array_module(self.parameters[0].grad)
        self.xp, self.nccl = xp, nccl
        self.device_buffer = xp.empty(self.count + 2, np.float32)
        self.flags = np.empty(len(FLAGS), np.float32)
        # The root makes the communicator's id; MPI hands it to the others (NCCL's usual bootstrap).
        unique_id = world.comm.bcast(nccl.get_unique_id() if world.is_root else None, root=0)
        self.communicator = nccl.NcclCommunicator(world.size, unique_id, world.rank)

    def _reduce(self, loss, weight, flags):
        buffer = self.device_buffer
        self._pack(buffer, loss, weight)
        stream = self.xp.cuda.get_current_stream()
        self.communicator.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self.nccl.NCCL_FLOAT32,
                                    self.nccl.NCCL_SUM, stream.ptr)
        self.flags[:] = flag_values(flags)
        self.world.sum(self.flags)
        return Reduced(self._unpack(buffer), flags_from(self.flags))


def make_allreduce(world, parameters, device, normalize=True):
    """The GradientAllReduce for ``parameters`` (Parameters) on ``device``: MPI on host buffers on the
    CPU; on a GPU, NCCL where it is available, else MPI through host buffers."""
    parameters = list(parameters)
    if device == "cpu":
        return HostAllReduce(world, parameters, normalize)
    nccl = nccl_or_none()
    if nccl is not None:
        return NcclAllReduce(world, parameters, nccl, normalize)
    return DeviceViaHostAllReduce(world, parameters, normalize)
