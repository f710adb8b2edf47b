"""A synthetic sweep directory with a real Optuna SQLite study, as the report tests read it."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import optuna
from gansweep.run.run_dir import write_json
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.write import write_report
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPACE = {
    "measurement.p": {"uniform": [0.1, 0.9]},
    "optim.lr_g": {"loguniform": [1e-4, 1e-2]},
    "prior.name": {"choice": ["gaussian", "kde"]},
    "prior.reversal_steps": {"int": [4, 14], "when": {"prior.name": ["kde"]}},
}
DISTRIBUTIONS = {
    "measurement.p": FloatDistribution(0.1, 0.9),
    "optim.lr_g": FloatDistribution(1e-4, 1e-2, log=True),
    "prior.name": CategoricalDistribution(["gaussian", "kde"]),
    "prior.reversal_steps": IntDistribution(4, 14),
    "mode": CategoricalDistribution(["ambient", "ignore"]),
}
# The quickstart's question: ambient against ignore, over p. Ambient is better at every p.
MODE_SPACE = {"mode": {"choice": ["ambient", "ignore"]}, "measurement.p": {"uniform": [0.1, 0.9]}}
MODE_TRIALS = [
    ("finished", {"mode": "ambient", "measurement.p": 0.3}, 20.0, None),
    ("finished", {"mode": "ignore", "measurement.p": 0.4}, 50.0, None),
    ("finished", {"mode": "ambient", "measurement.p": 0.5}, 24.0, None),
    ("failed", {"mode": "ignore", "measurement.p": 0.6}, None, "RuntimeError: out of memory"),
    ("finished", {"mode": "ignore", "measurement.p": 0.7}, 70.0, None),
    ("stopped", {"mode": "ambient", "measurement.p": 0.8}, 30.0, None),
]
# (status, params, best fid or None (its last fid, a finished trial's value, is 1 more), error)
TRIALS = [
    ("finished", {"measurement.p": 0.2, "optim.lr_g": 2e-4, "prior.name": "gaussian"}, 40.0, None),
    ("finished", {"measurement.p": 0.5, "optim.lr_g": 1e-3, "prior.name": "kde", "prior.reversal_steps": 8}, 25.0, None),
    ("stopped", {"measurement.p": 0.8, "optim.lr_g": 5e-3, "prior.name": "gaussian"}, 90.0, None),
    ("failed", {"measurement.p": 0.6, "optim.lr_g": 3e-4, "prior.name": "kde", "prior.reversal_steps": 12}, None,
     "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: measurement.p must be in [0, 1]"),
    ("finished", {"measurement.p": 0.3, "optim.lr_g": 8e-3, "prior.name": "kde", "prior.reversal_steps": 5}, 60.0, None),
    ("finished", {"measurement.p": 0.7, "optim.lr_g": 1e-4, "prior.name": "gaussian"}, 33.0, None),
]


def full_evaluation(number: int, best: float | None, prdc: bool) -> dict | None:
    """A trial's full evaluation: fid and kid, and (with prdc, for every trial but number 4, evaluated before the
    protocol had them) precision, recall, density and coverage."""
    if best is None:
        return None
    figures = {"fid": best + 0.5, "kid": 0.01}
    if prdc and number != 4:
        figures.update(precision=0.7 + number / 100, recall=0.4 + number / 100, density=0.9, coverage=0.05 * number,
                       prdc_k=5, prdc_n=10000)
    return figures


def make_sweep(root, mode="min", trials=TRIALS, storage_in_json=None, prdc=True, space=SPACE):
    """sweep.json, trials.json and a matching Optuna study in root/optuna.db; returns the storage URL."""
    root.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{root}/optuna.db"
    study = optuna.create_study(storage=storage, study_name="demo", direction="minimize" if mode == "min" else "maximize")
    records = []
    for number, (status, params, best, error) in enumerate(trials):
        distributions = {k: DISTRIBUTIONS[k] for k in params}
        last = None if best is None else best + 1.0
        value = last if status == layout.FINISHED else None
        if value is None:  # as StudySearch tells Optuna: a stopped trial PRUNED, a failed one FAIL
            state = optuna.trial.TrialState.PRUNED if status == layout.STOPPED else optuna.trial.TrialState.FAIL
            study.add_trial(optuna.trial.create_trial(state=state, params=params, distributions=distributions))
        else:
            study.add_trial(optuna.trial.create_trial(value=value, params=params, distributions=distributions))
        step = 200 if status == layout.STOPPED else 300
        records.append({
            "name": f"{number:05d}_p={params.get('measurement.p')}", "number": number, "params": params, "status": status,
            "metrics": {"step": step, "fid": last, "loss_d": 0.7} if last is not None else {},
            "value": value, "stopped_at_step": step if status == layout.STOPPED else None,
            "full_evaluation": full_evaluation(number, best, prdc),
            "wall_s": 120.0, "error": error,
        })
    layout.claim(root, {
        "name": "demo_sweep", "metric": "fid", "mode": mode, "space": space, "study_name": "demo",
        "storage": storage_in_json or storage, "search": "optuna_tpe",
    })
    layout.write_trials(root, records)
    return storage


def table_names(summary: str) -> list[str]:
    """The first column of the trial table in summary.md."""
    section = summary.split("## Trials (best first)")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # drop the header
    return [row.split("|")[1].strip() for row in rows]


def write_min_report(root: Path) -> tuple[Path, Path]:
    """TRIALS' sweep in ROOT and its report: (ROOT, its summary.md)."""
    make_sweep(root)
    return root, Path(write_report(root))


def change_sweep_record(root: Path, **changes) -> None:
    """A sweep.json as an older or another kind of sweep wrote it."""
    write_json(str(Path(root) / layout.SWEEP_FILE), {**layout.read_sweep_record(root), **changes})


def importance_section(summary: str) -> str:
    return summary.split("## Parameter importances")[1].split("\n## ")[0]
