"""The exceptions training raises; the command line (``minifcn.train``) turns them into messages and exit codes.

Bad input (exit code 2): ``ConfigError`` for options no run can use, ``RunDirectoryError`` for a run
directory whose files cannot be resumed. How a run ended early: ``TrainingInterrupted`` (Ctrl-C, exit
code 130; SIGTERM, exit code 143) and ``NonFiniteLoss`` (exit code 1).
"""

import signal


class ConfigError(ValueError):
    """An option that no run can use, or that does not fit the data or the weights given; the message
    names the option as the command line spells it (``--epochs must be positive, got 0``)."""


class RunDirectoryError(ValueError):
    """A run directory that cannot be resumed: its files are missing or do not fit the model."""


class TrainingInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped training at a step boundary, after the whole state was saved to
    ``checkpoint``.

    ``iteration`` steps were done; ``epoch`` (0-based) is the epoch that was under way; ``signum`` is
    the signal that asked (signal.SIGINT for Ctrl-C, signal.SIGTERM).
    """

    def __init__(self, iteration, epoch, checkpoint, signum=signal.SIGINT):
        by = " by SIGTERM" if signum == signal.SIGTERM else ""
        super().__init__(f"interrupted{by} at iteration {iteration} (epoch {epoch + 1}); saved {checkpoint}")
        self.iteration, self.epoch, self.checkpoint, self.signum = iteration, epoch, checkpoint, signum


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite at ``iteration``; nothing after the last checkpoint is saved."""

    def __init__(self, iteration, value):
        super().__init__(f"the loss became {value} at iteration {iteration}")
        self.iteration, self.value = iteration, value
