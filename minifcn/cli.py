"""What the command lines share: exit codes, one-line errors, the device check.

Exit codes (**contract**): 0 success, 2 bad usage or bad input (one line on stderr, no traceback),
1 an unexpected failure (with its traceback, because that is a bug to report), 130 Ctrl-C, 143 SIGTERM
(128 + the signal's number, as a shell reports a process the signal ended).

The library raises its own exceptions (DataError, CheckpointError, ConfigError, ...); only here, in
the command lines, do they become messages and exit codes.
"""

import argparse
import signal
import sys
import threading
import traceback

from .allocator import keep_freed_memory
from .backend import DeviceUnavailableError, check_device


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after an option's help, except where there is no fixed default (None):
    those options say in their own help what they default to."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class UsageError(ValueError):
    """The user asked for something that cannot be done as asked (exit code 2)."""


def user_errors():
    """The exception types that mean "bad input" rather than "bug"."""
    from .data import DataError
    from .files.checkpoint import CheckpointError
    from .files.conversion import ConvertError
    from .files.pth import UnsafeOrCorruptPthError
    from .training.errors import ConfigError, RunDirectoryError

    return (UsageError, DataError, CheckpointError, ConvertError, UnsafeOrCorruptPthError, DeviceUnavailableError,
            ConfigError, RunDirectoryError, FileNotFoundError, IsADirectoryError, PermissionError, FileExistsError)


class Terminated(BaseException):
    """SIGTERM arrived (``docker stop``, ``kill``, a scheduler's time limit). A BaseException, as
    KeyboardInterrupt is, so that no ``except Exception`` on the way swallows it."""


def _raise_terminated(signum, frame):
    raise Terminated


MEMORY_ADVICE = {  # what each command can change to need less memory (its own options only)
    "python -m minifcn.train": "try a smaller --crop-size or --batch-size",
    "python -m minifcn.predict": "try a smaller --tile-size or --overlay-max-size",
    "python -m minifcn.evaluate": "try a smaller --tile-size or --batch-size",
}


def run(main, argv, prog):
    """Call ``main(argv)`` and turn exceptions into the exit codes above; return the code."""
    keep_freed_memory()  # a program's choice for its own process (see allocator)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Training installs its own handler while it trains (finish the step, save); elsewhere SIGTERM
        # ends the command with one line, as Ctrl-C does, instead of silently.
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = main(argv)
        return 0 if code is None else code
    except user_errors() as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as error:  # a text input (classes.txt, a list file) in another encoding
        print(f"{prog}: error: a text file is not UTF-8 ({error.reason} at byte {error.start}); save it as UTF-8",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"\n{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except MemoryError:
        advice = MEMORY_ADVICE.get(prog, "the weights do not fit in this machine's memory")
        print(f"{prog}: error: out of memory; {advice}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(f"{prog}: unexpected failure (a bug; please report it with the traceback above)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def one_line(error):
    """An exception's message on one line (file-not-found errors name the file)."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


def resolve_device(device):
    """Validate ``--device``; a malformed name or a missing GPU becomes a UsageError (exit 2)."""
    try:
        return check_device(device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except DeviceUnavailableError as error:
        raise UsageError(str(error)) from None
