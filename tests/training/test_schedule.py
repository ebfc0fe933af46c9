"""The learning-rate schedule against the formulas written out."""

import pytest

from minifcn.training import LearningRateSchedule


def test_poly_with_warmup():
    schedule = LearningRateSchedule(0.1, total_iterations=100, policy="poly", warmup_iterations=10)
    assert schedule(0) == pytest.approx(0.1 * 1 ** 0.9 * 1 / 10)
    assert schedule(4) == pytest.approx(0.1 * 0.96 ** 0.9 * 5 / 10)
    assert schedule(10) == pytest.approx(0.1 * 0.9 ** 0.9)
    assert schedule(100) == 0.0


def test_fixed_without_warmup():
    schedule = LearningRateSchedule(0.01, total_iterations=100, policy="fixed")
    assert [schedule(t) for t in (0, 50, 99)] == [0.01, 0.01, 0.01]


def test_unknown_policy():
    with pytest.raises(ValueError, match="policy"):
        LearningRateSchedule(0.01, 100, policy="step")
