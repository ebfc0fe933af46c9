"""Ctrl-C or SIGTERM during training: finish the step under way, then stop where the state in memory is whole.

Saving at the moment of the signal could catch an optimizer step half applied. Instead the handler only
notes the request; the loop calls ``check()`` at each step boundary, where it raises StopRequested,
and saves there. SIGTERM (what ``docker stop``, ``kill`` and a job scheduler's time limit send) is
treated as Ctrl-C is, so the epoch in progress is not lost; a second signal raises KeyboardInterrupt
at once, keeping only what is on disk.
"""

import signal
import sys
import threading

# The signals that ask training to stop, and how the message names them.
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopRequested(Exception):
    """Ctrl-C was pressed (or SIGTERM received) and training has reached a step boundary; ``signum``
    says which signal asked."""

    def __init__(self, signum):
        super().__init__(STOP_SIGNALS.get(signum, str(signum)))
        self.signum = signum


class StopAtStepBoundary:
    """``with StopAtStepBoundary() as stop:`` ... ``stop.check()`` after every step.

    Outside the main thread signals cannot be handled; there Ctrl-C and SIGTERM keep their usual effect.
    ``announce`` False keeps the first signal's message to itself (the processes of a distributed run
    other than the root: ``mpiexec`` hands a Ctrl-C to every one of them, and one message is enough).
    """

    def __init__(self, announce=True):
        self.requested = None  # the signal number that asked to stop, None until one did
        self.announce = announce
        self._previous_handlers = {}

    def __enter__(self):
        self.requested = None
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._request_stop)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
        return False

    def check(self):
        """Raise StopRequested if Ctrl-C was pressed or SIGTERM received; call it where the state is whole."""
        if self.requested is not None:
            raise StopRequested(self.requested)

    def _request_stop(self, signum, frame):
        if self.requested is not None:
            raise KeyboardInterrupt  # asked again: stop now, keeping only what is already on disk
        self.requested = signum
        if self.announce:
            print(f"\n{STOP_SIGNALS[signum]}: stopping after the current step (again to quit without saving it)",
                  file=sys.stderr, flush=True)
