"""Ctrl-C during training: finish the step under way, then stop where the state in memory is whole.

Saving at the moment of Ctrl-C could catch an optimizer step half applied. Instead the handler only
notes the request; the loop calls ``check()`` at each step boundary, where it raises StopRequested,
and saves there. A second Ctrl-C raises KeyboardInterrupt at once, keeping only what is on disk.
"""

import signal
import sys
import threading


class StopRequested(Exception):
    """Ctrl-C was pressed and training has reached a step boundary."""


class StopAtStepBoundary:
    """``with StopAtStepBoundary() as stop:`` ... ``stop.check()`` after every step.

    Outside the main thread signals cannot be handled; there Ctrl-C keeps its usual effect.
    """

    def __init__(self):
        self.requested = False
        self._previous_handler = None

    def __enter__(self):
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._request_stop)
        return self

    def __exit__(self, *exc_info):
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
        return False

    def check(self):
        """Raise StopRequested if Ctrl-C was pressed; call it where the state is whole."""
        if self.requested:
            raise StopRequested

    def _request_stop(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt  # pressed again: stop now, keeping only what is already on disk
        self.requested = True
        print("\nstopping after the current step (Ctrl-C again to quit without saving it)", file=sys.stderr,
              flush=True)
