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


def test_a_ratio_of_means_has_an_interval_on_the_log_scale_with_welch_degrees_of_freedom():
    from gansweep.evaluation.intervals import ratio_interval

    ambient, clean = [53.45, 55.67, 48.72], [39.80, 37.61, 36.87]
    result = ratio_interval(ambient, clean)
    assert result.ratio == pytest.approx(sum(ambient) / sum(clean))
    assert (result.n_numerator, result.n_denominator) == (3, 3)
    # symmetric around the ratio in log, and positive
    assert math.log(result.high / result.ratio) == pytest.approx(math.log(result.ratio / result.low))
    assert 1.0 < result.low < result.ratio < result.high < 2.0
    assert result.text() == f"{result.ratio:.2f}x [{result.low:.2f}, {result.high:.2f}]"
    # a side of one seed: the ratio without an interval; no value or a zero mean: none
    assert ratio_interval([50.0], clean).low is None and ratio_interval([50.0], clean).text() == f"{50 / 38.09333:.2f}x"
    assert ratio_interval([None], clean) is None and ratio_interval(ambient, [0.0, 0.0]) is None


def test_the_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    """Five seeds a side with unequal spreads (FIDs of ~50 and ~30, spreads 4 and 1.5): coverage near 95%."""
    import numpy as np
    from gansweep.evaluation.intervals import ratio_interval

    rng = np.random.default_rng(0)
    draws = 2000
    covered = sum(
        r.low <= 50.0 / 30.0 <= r.high
        for r in (ratio_interval(rng.normal(50.0, 4.0, 5), rng.normal(30.0, 1.5, 5)) for _ in range(draws)))
    assert 0.93 <= covered / draws <= 0.975
