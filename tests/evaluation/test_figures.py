"""The cheap evaluation's figures as every reader names them: which way each is better, and what a run reports."""

import math

from gansweep.evaluation import figures


def test_the_best_so_far_is_the_lower_fid_and_the_higher_classifier_score():
    assert figures.best(figures.FID, 30.0, None) == 30.0
    assert figures.best(figures.FID, 30.0, 20.0) == 20.0
    assert figures.best(figures.CLASSIFIER_SCORE, 3.0, 2.0) == 3.0
    assert math.isnan(figures.best(figures.FID, math.nan, 20.0))  # a diverged figure is not hidden by the best


def test_a_run_reports_each_figure_its_best_and_the_step_of_the_evaluation():
    assert figures.REPORTED == ("fid", "classifier_score", "fid_step", "fid_best", "classifier_score_best",
                                "fid_raw", "classifier_score_raw")  # the raw ones with train.ema only
    assert figures.MODES == {"fid": "min", "classifier_score": "max"}
