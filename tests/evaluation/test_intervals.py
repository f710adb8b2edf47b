"""The mean ± 95% interval every figure over seeds is reported with (evaluation/intervals.py)."""

import math

import pytest
from gansweep.evaluation.intervals import interval
from scipy import stats


def test_the_interval_is_student_t_with_n_minus_one_degrees_of_freedom():
    values = [30.0, 34.0, 35.0]
    result = interval(values)
    std = stats.tstd(values)  # n - 1 in the denominator
    assert result.mean == pytest.approx(33.0) and result.n == 3
    assert result.half_width == pytest.approx(stats.t.ppf(0.975, 2) * std / math.sqrt(3))
    # scipy's own interval for the mean agrees
    low, high = stats.t.interval(0.95, 2, loc=33.0, scale=stats.sem(values))
    assert (result.mean - result.half_width, result.mean + result.half_width) == pytest.approx((low, high))
    assert result.text(".1f") == f"33.0 ± {result.half_width:.1f}"


def test_one_value_has_no_interval_and_missing_values_are_left_out():
    assert interval([None, 12.5, None]).half_width is None and interval([12.5]).text() == "12.5"
    assert interval([None]) is None and interval([]) is None
    assert interval([None, 1.0, 3.0]).n == 2


def test_a_diverged_seed_keeps_the_mean_non_finite():
    result = interval([10.0, math.inf, 12.0])
    assert math.isinf(result.mean) and result.half_width is None and result.n == 3
