"""A sweep directory, its one owner: what a sweep writes and what its report and --resume read back::

    sweep.json      the space, the metric, the Optuna study's name and storage URL (password masked)
    trials.json     one entry per trial: params, status, last and best metric, full evaluation, wall time, error
    optuna.db       the Optuna study (SQLite by default)
    tensorboard/    one TensorBoard run per trial, with the sweep's HParams experiment at its root
    trials/NAME/    each trial's run directory (run/run_dir.py)
    tune/           Ray Tune's experiment state, what --resume continues
    report/         written by `gansweep report`
"""

from __future__ import annotations

import json
from pathlib import Path

# The one atomic JSON write, shared with the run directory.
from gansweep.run.run_dir import write_json

SWEEP_FILE = "sweep.json"
TRIALS_FILE = "trials.json"
OPTUNA_DB = "optuna.db"
TENSORBOARD_DIR = "tensorboard"
TRIALS_DIR = "trials"
TUNE_DIR = "tune"
REPORT_DIR = "report"
SWEEP_KEYS = ("name", "metric", "mode")  # what every reader of sweep.json relies on


class SweepDirError(ValueError):
    """The directory is not a readable sweep directory; the message says what is wrong."""


def masked_url(url: str | None) -> str | None:
    """A storage URL with its password hidden: nothing secret goes into files, logs or the report."""
    if not url or "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def default_storage(sweep_dir: Path) -> str:
    """The Optuna storage of a sweep whose space names none: SQLite inside the sweep directory."""
    return f"sqlite:///{Path(sweep_dir) / OPTUNA_DB}"


def trial_dir(sweep_dir: Path, name: str) -> Path:
    return Path(sweep_dir) / TRIALS_DIR / name


def trial_log_dir(sweep_dir: Path, name: str) -> Path:
    return Path(sweep_dir) / TENSORBOARD_DIR / name


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SweepDirError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SweepDirError(f"{path} does not hold a JSON object")
    return data


def write_sweep_record(sweep_dir: Path, record: dict) -> None:
    """sweep.json; a storage URL in it is written masked."""
    missing = [key for key in SWEEP_KEYS if key not in record]
    if missing:
        raise ValueError(f"a sweep record needs {', '.join(missing)}")
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(sweep_dir) / SWEEP_FILE, {**record, "storage": masked_url(record.get("storage"))})


def has_sweep_record(sweep_dir: Path) -> bool:
    return (Path(sweep_dir) / SWEEP_FILE).is_file()


def read_sweep_record(sweep_dir: Path) -> dict:
    """sweep.json, checked for the keys every reader needs."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        what = "does not exist" if not Path(sweep_dir).exists() else f"has no {SWEEP_FILE}"
        raise SweepDirError(f"{sweep_dir} is not a sweep directory: it {what} (give the output directory of "
                            "`gansweep sweep`)")
    sweep = _read_json(path)
    missing = [key for key in SWEEP_KEYS if key not in sweep]
    if missing:
        raise SweepDirError(f"{path} lacks {', '.join(missing)}")
    if sweep["mode"] not in ("min", "max"):
        raise SweepDirError(f"{path}: mode must be 'min' or 'max', not {sweep['mode']!r}")
    return sweep


def write_trials(sweep_dir: Path, trials: list[dict]) -> None:
    """trials.json, its entries in trial-number order."""
    write_json(Path(sweep_dir) / TRIALS_FILE, {"trials": sorted(trials, key=lambda entry: entry["number"])})


def read_trials(sweep_dir: Path) -> list[dict] | None:
    """trials.json's entries (numbered and named where an entry lacks them); None before any trial started."""
    path = Path(sweep_dir) / TRIALS_FILE
    if not path.is_file():
        return None
    trials = _read_json(path).get("trials")
    if not isinstance(trials, list):
        raise SweepDirError(f"{path} has no list under 'trials'")
    for index, trial in enumerate(trials):
        trial.setdefault("number", index)
        trial.setdefault("name", f"trial_{trial['number']}")
        trial["params"] = trial.get("params") or {}
    return trials


def best_trial(trials: list[dict], mode: str) -> dict | None:
    """The trial with the best value of the metric over its reports (None when no trial reported it)."""
    scored = [t for t in trials if t.get("best")]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda t: t["best"]["value"])
