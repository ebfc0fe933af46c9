"""A forked process that runs a model on one part of every batch, for ``data_parallel``.

Why a process and not a thread: NumPy and BLAS release the GIL while they compute, but everything
between two NumPy calls (the layers' Python) holds it, about a seventh of the default model's step.
Two threads of one process wait for each other there: each thread's part took about 1.2x as long
as alone, where two processes run side by side at full speed (benchmarks/RESULTS.md).

How the process and its parent share the work without copying the model every step:

- the weights: before the fork, every parameter's values are moved into shared memory
  (``shared_like``) and the model's parameters point at those arrays, so an optimizer's update in
  place, in the parent, is what the process computes with next;
- the gradients: the process's copy of the model adds its gradients into shared arrays
  (``gradients``) that the parent adds into the model's own after each backward pass;
- everything else (which parameters train, which layers are in training mode or compute their
  input's gradient, the dropout generator's seed) is small and travels with each request, so the
  process always runs the model as the parent has it;
- the inputs, labels and scores travel through a pipe.

The process ignores Ctrl-C and SIGTERM (the parent decides what to do about them: training finishes
the step and saves; a step the parent leaves unfinished kills the process, ``data_parallel`` forks a
new one) and ends when the parent closes its end of the pipe: ``close``, garbage collection, the
parent's exit, or its death. Linux only (``can_fork``): elsewhere fork is missing
or unsafe with the system's BLAS.
"""

import atexit
import mmap
import multiprocessing
import signal
import sys
import traceback
import weakref

import numpy as np

from .layers.gradient_buffer import flat_views, zero_gradients
from .ops.fast.cores import single_blas_thread


def can_fork():
    """Whether batch parts may run in forked processes here."""
    return sys.platform.startswith("linux")


def shared_zeros(size, dtype):
    """A flat array of ``size`` zeros in memory that a process forked later shares with this one
    (an anonymous mapping's pages start zeroed)."""
    dtype = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(1, size * dtype.itemsize)), dtype=dtype, count=size)


def shared_like(array):
    """A copy of the host array ``array`` in memory that a process forked later shares with this one."""
    shared = shared_zeros(array.size, array.dtype).reshape(array.shape)
    shared[...] = array
    return shared


# The parent's ends of every part process's pipe. A process forked later inherits them and must close
# them: a pipe reports its parent end closed only once no process holds it open.
_PARENT_ENDS = weakref.WeakSet()


class PartProcess:
    """A forked copy of ``model`` computing, on request, the passes for one part of a batch.

    ``model``'s parameters must already be in shared memory (``shared_like``). ``submit`` sends a
    request and returns at once; ``result`` waits for its answer, raising what the process raised.
    """

    def __init__(self, model):
        parameters = [parameter for _, parameter in model.parameters()]
        # Zeroed, in shared memory, laid out as a model's packed gradients (one fill clears them).
        self.gradients, buffers = flat_views([parameter.data for parameter in parameters],
                                             lambda xp, size, dtype: shared_zeros(size, dtype))
        parent_end, child_end = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(model, self.gradients, buffers, child_end, parent_end), daemon=True,
            name="minifcn-batch-part")
        self.process.start()
        child_end.close()
        _PARENT_ENDS.add(parent_end)
        self._connection = parent_end
        self._close = weakref.finalize(self, _stop, self.process, parent_end)
        # Registered after multiprocessing's own exit hook, so it runs before it: that hook joins every
        # child, and this process ignores the SIGTERM the hook ends daemons with; it ends when the
        # pipe closes.
        atexit.register(self._close)

    def submit(self, request):
        try:
            self._connection.send(request)
        except OSError:
            raise _ended() from None

    def result(self):
        try:
            status, value = self._connection.recv()
        except (EOFError, OSError):
            raise _ended() from None
        if status == "error":
            raise value
        return value

    def close(self):
        self._close()
        atexit.unregister(self._close)

    def kill(self):
        """End the process at once, whatever it computes (an answer no one will read); ``close``
        then has nothing to wait for."""
        if self.process.is_alive():
            self.process.kill()


def _ended():
    return RuntimeError("a batch part's process ended unexpectedly (killed, or out of memory?)")


def _stop(process, connection):
    """End the process: closing the pipe ends its loop; one that does not end soon is killed."""
    connection.close()
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


def _serve(model, gradients, buffers, connection, parent_end):
    """The process's loop: answer each request until the parent closes the pipe."""
    # Ctrl-C and SIGTERM reach the whole process group; the parent decides (training finishes the
    # step, which needs this process's part, then saves).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent_end.close()  # else the pipe would never report the parent's end closed
    for inherited in list(_PARENT_ENDS):  # other part processes' pipes, for the same reason
        inherited.close()
    parameters = [parameter for _, parameter in model.parameters()]
    modules = list(model.modules())
    for parameter, gradient, buffer in zip(parameters, gradients, buffers):
        parameter.grad, parameter.grad_buffer = gradient, buffer
    handlers = dict(step=_step, forward=_forward, backward=_backward, clear_cache=_clear_cache)
    with single_blas_thread():
        while True:
            try:
                kind, state, *arguments = connection.recv()
            except (EOFError, OSError):
                return
            try:
                _apply_state(state, parameters, modules, model)
                answer = ("ok", handlers[kind](model, parameters, *arguments))
            except BaseException as error:  # noqa: B036 (the parent re-raises it)
                answer = ("error", error)
            try:
                _send(connection, answer)
            except OSError:  # the parent closed the pipe: no one waits for this answer
                return


def _send(connection, answer):
    try:
        connection.send(answer)
    except OSError:
        raise
    except Exception:  # the error would not pickle: send its text
        connection.send(("error", RuntimeError("".join(traceback.format_exception(answer[1])))))


def model_state(parameters, modules, seed):
    """What a part's process must know of the model besides its weights: which parameters train,
    which layers are in training mode and compute their input's gradient, and the seed of the
    generator its dropout draws from (None where nothing draws)."""
    return ([parameter.requires_grad for parameter in parameters],
            [(module.training, module.input_grad) for module in modules], seed)


def _apply_state(state, parameters, modules, model):
    trains, flags, seed = state
    for parameter, requires_grad in zip(parameters, trains):
        parameter.requires_grad = requires_grad
    for module, (training, input_grad) in zip(modules, flags):
        module.training, module.input_grad = training, input_grad
    if seed is not None:
        model.use_generator(np.random.default_rng(seed))


def _step(model, parameters, x, labels, loss_layer, normaliser):
    zero_gradients(parameters)  # this part's gradients only: the parent adds them into the model's
    loss = loss_layer.forward(model.forward(x), labels, normaliser)
    model.backward(loss_layer.backward())
    return loss


def _forward(model, parameters, x):
    return model.forward(x)


def _backward(model, parameters, dscores):
    zero_gradients(parameters)
    model.backward(dscores)


def _clear_cache(model, parameters):
    model.clear_cache()
