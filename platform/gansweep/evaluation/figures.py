"""The cheap evaluation's figures, as every reader names them: FID and the classifier score, which way each is
better, the best-so-far figure kept beside each, the raw G's figure beside each with train.ema, and the keys a run
reports of them (evaluation/monitor.py computes them, run/loop.py reports them, a sweep ranks and stops trials on
them); the full evaluation's figures that have a raw G's twin, and the names of its figures on Inception features
(evaluation/inception.py computes them; TensorBoard and the report show them)."""

from __future__ import annotations

FID = "fid"
CLASSIFIER_SCORE = "classifier_score"
MODES = {FID: "min", CLASSIFIER_SCORE: "max"}  # which way each figure is better; the order a run reports them in
STEP = "fid_step"  # the step of the last cheap evaluation: later reports carry its figures again


def best_key(figure: str) -> str:
    """The key of FIGURE's best value so far in a run: shown beside it (TensorBoard), never what ranks a trial (a
    sweep ranks on its last report: sweep_dir.trial_value)."""
    return f"{figure}_best"


def raw_key(figure: str) -> str:
    """The key of FIGURE of G's own weights, beside FIGURE of its moving average (train.ema: every evaluation is the
    average's, and the figures a sweep ranks on are too)."""
    return f"{figure}_raw"


def best(figure: str, value: float, previous: float | None) -> float:
    """FIGURE's best so far: VALUE, or PREVIOUS where that is better."""
    if previous is None:
        return value
    return min(value, previous) if MODES[figure] == "min" else max(value, previous)


# What a run reports of the cheap evaluation, with every report after the first one.
REPORTED = (*MODES, STEP, *(best_key(figure) for figure in MODES), *(raw_key(figure) for figure in MODES))

# The full evaluation's figures of the samples (evaluation/metrics.py's evaluate_samples), recorded for G's own
# weights too (raw_key) when the samples are its moving average's; the protocol's fields describe both.
FULL = (FID, "kid", "kid_std", "precision", "recall", "density", "coverage", CLASSIFIER_SCORE, "nn_pixel_distance")

# The full evaluation's figures on Inception features (eval.features: [classifier, inception]): those of the classifier's
# features that TensorBoard and the report show, suffixed, as evaluation/inception.py names them.
INCEPTION = tuple(f"{name}_inception" for name in ("fid", "kid", "precision", "recall", "density", "coverage"))
