"""Ctrl-C during training: the first press is noted for the next step boundary, the second stops at once."""

import os
import signal

import pytest

from minifcn.training.interrupt import StopAtStepBoundary, StopRequested


def test_first_ctrl_c_waits_for_the_boundary_second_stops_now_handler_restored(capsys):
    before = signal.getsignal(signal.SIGINT)
    with StopAtStepBoundary() as stop:
        stop.check()  # nothing pressed yet
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        assert "stopping after the current step" in capsys.readouterr().err
        with pytest.raises(StopRequested):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_is_handled_as_ctrl_c_and_says_which_signal_asked(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with StopAtStepBoundary() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == signal.SIGTERM
        assert "SIGTERM: stopping after the current step" in capsys.readouterr().err
        with pytest.raises(StopRequested) as info:
            stop.check()
        assert info.value.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
