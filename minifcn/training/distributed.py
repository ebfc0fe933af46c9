"""Training over several processes: the MPI world a run was launched into, and how its ranks agree.

``mpiexec -n N python -m minifcn.train ...`` starts N copies of the command. Each holds a replica of
the model, takes its share of every batch, and the gradients are summed over the processes before each
update (``training.allreduce``), so the N replicas take the same steps one process would on the whole
batch. This is the scheme of ChainerMN and Horovod, on MPI as they are: no home-made transport.

Whether a run was launched by ``mpiexec`` is read from the environment the launcher sets (MPICH,
Intel MPI and Slurm's PMI: ``PMI_SIZE``; Open MPI: ``OMPI_COMM_WORLD_SIZE``; MVAPICH:
``MV2_COMM_WORLD_SIZE``), without importing mpi4py: a plain run never loads MPI, and a machine
without it trains as before. ``MINIFCN_MPI=1`` forces MPI on where a launcher sets none of these.

No rank may be left waiting forever in a collective call that another rank will never make. Two
rules keep that true:

- outcomes every rank must share are *agreed*: a stop signal, the time limit and a loss gone NaN
  travel with the gradients (one call a step), so every rank stops at the same step; the start-up
  (reading data, building the model, the run directory) ends with ``agree_on_failure``, so a rank
  that failed there takes the others down with it, all with one exit code;
- anything else that ends one rank (an exception, a second Ctrl-C, running out of memory) calls
  ``abort``, which makes the MPI library end every rank (``MPI_Abort``). Returning normally instead
  would hang: mpi4py finalises MPI at exit, and finalising waits for ranks blocked in a collective.
"""

import contextlib
import os
import sys

import numpy as np

from .errors import ConfigError

# (world size, rank, local rank on the node) as each launcher names them; local rank may be missing.
LAUNCHER_VARIABLES = (
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),  # MPICH's and Intel MPI's Hydra, Slurm's PMI-2
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),  # Open MPI
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_LOCAL_RANK"),  # MVAPICH
)
FORCE_VARIABLE = "MINIFCN_MPI"
INSTALL_HINT = "pip install -e '.[distributed]' in the minifcn checkout (mpi4py and the mpich wheel)"


def launched_size(environ=None):
    """The number of processes the MPI launcher started, read from ``environ`` (default: this
    process's environment); 1 when no launcher started this one."""
    environ = os.environ if environ is None else environ
    for size_name, _, _ in LAUNCHER_VARIABLES:
        value = environ.get(size_name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


class SingleProcess:
    """The world of a run that is not distributed: one rank, and every agreement is its own opinion."""

    rank, size, local_rank, local_size = 0, 1, 0, 1
    is_root = True

    def sum(self, values):
        """``values`` (a NumPy array) summed over the ranks: here, itself."""
        return values

    def max(self, values):
        return values

    def any(self, flag):
        return bool(flag)

    def abort(self, code):
        sys.exit(code)

    def same_everywhere(self, value):
        return True

    def __repr__(self):
        return "SingleProcess()"


class MpiWorld:
    """``size`` processes started by an MPI launcher; this one is ``rank`` (0 is the root, the one that
    writes and prints), ``local_rank`` of the ``local_size`` on its machine (which picks its GPU)."""

    def __init__(self, comm, mpi):
        self.comm, self.mpi = comm, mpi
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # The processes that share this machine's memory: MPI knows them whatever the launcher.
        node = comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.is_root = self.rank == 0

    def sum(self, values):
        """Sum the NumPy array ``values`` over the ranks, in place (every rank gets the sum); returned."""
        self.comm.Allreduce(self.mpi.IN_PLACE, values, op=self.mpi.SUM)
        return values

    def max(self, values):
        """The element-wise maximum over the ranks of the NumPy array ``values``, in place; returned."""
        self.comm.Allreduce(self.mpi.IN_PLACE, values, op=self.mpi.MAX)
        return values

    def any(self, flag):
        """True on every rank when ``flag`` is true on any."""
        return bool(self.max(np.array([1 if flag else 0], np.int32))[0])

    def same_everywhere(self, value):
        """True on every rank when the integer ``value`` (a checksum of the weights, under 2**62) is the
        same on all."""
        extremes = self.max(np.array([value, -value], np.int64))
        return extremes[0] == -extremes[1]

    def abort(self, code):
        """End every rank now with exit code ``code`` (what was printed is flushed first)."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def __repr__(self):
        return f"MpiWorld(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"


def detect_world(environ=None):
    """The world this process belongs to: SingleProcess unless an MPI launcher started several (or
    ``MINIFCN_MPI=1``); ConfigError, saying what to install, where mpi4py is missing."""
    environ = os.environ if environ is None else environ
    forced = environ.get(FORCE_VARIABLE, "").strip() == "1"
    if launched_size(environ) == 1 and not forced:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ConfigError(f"this command was started by an MPI launcher, but mpi4py does not import ({error}); "
                          f"{INSTALL_HINT}") from None
    world = MpiWorld(MPI.COMM_WORLD, MPI)
    return world if world.size > 1 else SingleProcess()


def default_threads(cores, world):
    """CPU threads for each rank when ``--threads`` is not given: the machine's cores shared among the
    ranks on it (two ranks each splitting over every core would fight for them)."""
    return max(1, cores // world.local_size)


def rank_device(device, world):
    """The device this rank computes on: ``gpu`` means one GPU per rank, the ``local_rank``-th of this
    machine's (modulo their number, so a launcher that shows each rank only its own GPU works too);
    ``cpu`` and an explicit ``gpu:N`` are kept. Makes the chosen GPU the current one."""
    if world.size == 1 or device != "gpu":
        return device
    from ..backend import cupy_or_none

    cupy = cupy_or_none()
    index = world.local_rank % cupy.cuda.runtime.getDeviceCount()
    # "gpu" is the current device everywhere (backend): making this rank's current keeps the
    # config's "gpu" valid on every rank, so config.json and checkpoints do not name a rank's GPU.
    cupy.cuda.Device(index).use()
    return device


class PeerFailed(Exception):
    """Another rank failed during the start-up; it printed why, this one stops without a word."""

    def __init__(self, code):
        super().__init__(f"another process failed (exit code {code})")
        self.code = code


@contextlib.contextmanager
def agree_on_failure(world, code_of):
    """``with agree_on_failure(world, code_of):`` a phase every rank runs; if it raised on any rank it
    raises on all: its own exception where it failed, PeerFailed where it did not.

    ``code_of(exception)`` is the exit code a failure means (2 for bad input, ...); the ranks agree on
    the largest. Only the root's error is shown where the root failed too (every rank reading the
    same bad option would otherwise print the same line N times); a failure of another rank alone is
    shown by that rank, named.
    """
    failure = None
    try:
        yield
    except BaseException as error:  # noqa: BLE001 - every failure, Ctrl-C included, must be agreed on
        failure = error
    if world.size == 1:
        if failure is not None:
            raise failure
        return
    failed = failure is not None
    # (any rank failed, the largest exit code, the root failed); exit code 0 is a failure too (--help).
    agreed = world.max(np.array([failed, code_of(failure) if failed else 0, failed and world.is_root], np.int64))
    if not agreed[0]:
        return
    if not failed:
        raise PeerFailed(int(agreed[1]))
    if not world.is_root and agreed[2]:
        raise PeerFailed(int(agreed[1]))  # the root says the same, once
    raise failure


@contextlib.contextmanager
def rank_dropout_stream(model, world):
    """Inside: the model's dropout masks (if it draws any) come from a stream of this rank's own,
    seeded from one draw of the model's shared stream.

    Every rank keeps the same shared stream (it is what checkpoints save, from the root), which
    advances one draw a step; without this each rank would drop the same elements of its different
    images, correlated masks that one process on the whole batch never draws.
    """
    if world.size == 1 or not model.draws_random_numbers():
        yield
        return
    shared = model.dropout_rng
    step = np.random.default_rng([int(shared.integers(2**63)), world.rank])
    # DataParallel seeds its parts' processes from model.dropout_rng: they draw from this rank's stream too.
    model.dropout_rng = step
    model.use_generator(step)
    try:
        yield
    finally:
        model.dropout_rng = shared


def weights_checksum(model):
    """The sum of every float32 parameter's bits as integers: equal on all ranks while their replicas
    are equal. Integers, because a float sum's rounding may differ between two machines' NumPy builds
    (SIMD widths), and such a checksum would see replicas differ where they do not; modulo 2**61, so
    that it fits the int64 the ranks compare."""
    from ..backend import to_numpy

    total = sum(int(to_numpy(parameter.data.view(np.uint32).sum(dtype=np.uint64)))
                for _, parameter in model.parameters())
    return total % 2**61
