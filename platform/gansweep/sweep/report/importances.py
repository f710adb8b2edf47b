"""The report's parameter importances: Optuna's PED-ANOVA ranking of the swept parameters, from the sweep's study or,
where it cannot be opened, from a study rebuilt from trials.json; importances.png and summary.md's section."""

from __future__ import annotations

import warnings
from pathlib import Path

from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.points import points, value_interval
from gansweep.sweep.report.trials_table import md_table
from gansweep.sweep.space import distribution

IMPORTANCES_PNG = "importances.png"
# PED-ANOVA contrasts the best 10% of the trials with all of them: under 20 trials that best 10% is one or two
# trials, so a single trial decides the ranking (Optuna advises 5 in it, 50 trials; 20 is a floor, not a guarantee).
# Under it the report ranks nothing: a ranking over 6 trials read as a finding is worse than none.
MIN_TRIALS_FOR_IMPORTANCE = 20


def write_importances(out: Path, sweep: dict, trials: list[dict], storage: str | None) -> list[str]:
    """Draw OUT/importances.png where Optuna ranks the parameters; return summary.md's section, which says where the
    ranking came from or why there is none."""
    importances, note = _importances(sweep, trials, storage, out / IMPORTANCES_PNG)
    lines = ["## Parameter importances", "", note, ""]
    if importances:
        lines += [md_table(["param", "importance"], [[k, v] for k, v in importances.items()]), ""]
        lines += [f"![parameter importances]({IMPORTANCES_PNG})", ""]
    return lines


def _load_study(sweep: dict, storage: str | None):
    """(Optuna study, None) or (None, why it could not be opened)."""
    import optuna

    url = storage or sweep.get("storage")
    if not url or not sweep.get("study_name"):
        return None, "sweep.json names no Optuna storage and study"
    if "***" in url:
        return None, "the storage URL in sweep.json has its password masked; pass the unmasked storage URL"
    try:
        url = layout.study_url(url)  # a ${NAME} in it read from the environment, as the sweep did
    except layout.SweepDirError as exc:
        return None, str(exc)
    if url.startswith("sqlite:///"):
        # load_study would create an empty database file where there is none.
        db = Path(url[len("sqlite:///"):])
        if not db.is_file():
            return None, f"the Optuna database {db} does not exist (was the sweep directory moved?)"
    try:
        return optuna.load_study(study_name=sweep["study_name"], storage=url), None
    except Exception as exc:  # noqa: BLE001 - a bad URL, an unreachable server, a missing study: say so, go on
        return None, layout.redacted(f"Optuna could not open study {sweep['study_name']!r}: {exc}", url)


def _study_from_trials(sweep: dict, trials: list[dict]):
    """An in-memory study rebuilt from trials.json when the real one cannot be opened: a trial per point, its value
    (points.value_interval: its seeds' mean)."""
    import optuna

    distributions = {}
    for key, spec in (sweep.get("space") or {}).items():
        dist = distribution(spec) if isinstance(spec, dict) else None
        if dist is not None:
            distributions[key] = dist
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line in the CLI's output
    try:
        study = optuna.create_study(direction="minimize" if sweep["mode"] == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for point in points(trials):
        value = value_interval(point)
        if value is None:
            continue
        value = value.mean
        params = {k: v for k, v in point.params.items() if k in distributions}
        try:
            study.add_trial(optuna.trial.create_trial(
                value=value, params=params, distributions={k: distributions[k] for k in params}))
        except ValueError:
            continue  # a value outside its declared range: leave that trial out
    return study


def _importances(sweep: dict, trials: list[dict], storage: str | None, png: Path) -> tuple[dict | None, str]:
    """(param -> importance, note on where they came from) or (None, why there are none); draws png."""
    import optuna
    from optuna.trial import TrialState

    png.unlink(missing_ok=True)  # a stale plot from an earlier report would contradict this one
    study, why_not = _load_study(sweep, storage)
    note = f"the Optuna study `{sweep.get('study_name')}`"
    if study is None:
        if not trials:
            return None, f"No importances: no trials yet, and {why_not}."
        study = _study_from_trials(sweep, trials)
        note = f"trials.json (each point's value: val {sweep['metric']} at its last step), because {why_not}"

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    n = len(complete)
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        return None, (f"No importances: {n} complete trials, fewer than the {MIN_TRIALS_FOR_IMPORTANCE} a ranking "
                      "needs (Optuna's PED-ANOVA compares the best 10% of the trials with all of them: here one or "
                      "two trials would decide it). Read the plots and, where trials share a point, the gain "
                      f"above. Source: {note}.")
    # A parameter with one value in every complete trial explains nothing, yet Optuna would rank it.
    values = {}
    for t in complete:
        for key, value in t.params.items():
            values.setdefault(key, set()).add(value)
    varying = sorted(key for key, seen in values.items() if len(seen) >= 2)
    if not varying:
        return None, f"No importances: no parameter takes two different values across the {len(complete)} complete trials. Source: {note}."

    evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # Optuna's default; needs no scikit-learn
    target = None
    if len(study.directions) > 1:  # Optuna ranks parameters on one number: the first objective's
        target = _first_value
        note += f", ranked on {sweep['metric']} (the first objective)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API and small-sample warnings
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying,
                                                                  target=target)
    except Exception as exc:  # noqa: BLE001 - Optuna raises various errors on odd studies: report, not crash
        return None, f"No importances: Optuna could not compute them: {exc}. Source: {note}."
    if not importances:
        return None, f"No importances: Optuna returned none for these trials. Source: {note}."

    _draw_importances(study, evaluator, list(importances), sweep["metric"], target, png)
    return importances, f"Computed by Optuna's PED-ANOVA over {n} complete trials. Source: {note}."


def _first_value(trial) -> float:
    return trial.values[0]


def _draw_importances(study, evaluator, params: list[str], metric: str, target, png: Path) -> None:
    """Optuna's importance bar chart."""
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_param_importances

    # Optuna switches the global style to ggplot; the context restores it for the next report's plots.
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")
        ax = plot_param_importances(study, evaluator=evaluator, params=params, target=target, target_name=metric)
        ax.figure.set_size_inches(6.4, 0.5 * len(params) + 1.8)
        ax.figure.tight_layout()
        ax.figure.savefig(png, dpi=100)
    plt.close(ax.figure)
