"""A sweep directory, its one owner: what a sweep writes and what its report and --resume read back::

    sweep.json      the space, the metric, the Optuna study's name and storage URL (password masked)
    trials.json     one entry per trial: params, seed, group (its point), status, last reported metrics, its value
                    (trial_value) and, stopped early, the step it stopped at; full evaluation, wall time, error
    optuna.db       the Optuna study (SQLite by default; for a sweep on object storage, a copy of the local file
                    the driver works on, published with each snapshot of Tune's state: see default_storage)
    tensorboard/    one TensorBoard run per trial; each, once its trial ended, with the sweep's HParams experiment
                    and its session (values, status)
    trials/NAME/    each trial's run directory (run/run_dir.py)
    tune/           Ray Tune's experiment state, what --resume continues
    report/         written by `gansweep report`

A sweep directory is a local folder or a folder on object storage (gansweep.storage).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gansweep import storage

if TYPE_CHECKING:
    from gansweep.sweep.space import SweepSpace

SWEEP_FILE = "sweep.json"
TRIALS_FILE = "trials.json"
OPTUNA_DB = "optuna.db"
TENSORBOARD_DIR = "tensorboard"
TRIALS_DIR = "trials"
TUNE_DIR = "tune"
REPORT_DIR = "report"
SWEEP_KEYS = ("name", "metric", "mode")  # what every reader of sweep.json relies on

# A trial's status in trials.json: pending until Tune starts it, then running, and at its end finished (it trained all
# its steps), stopped (early, by the scheduler) or failed.
PENDING, RUNNING, FINISHED, STOPPED, FAILED = "pending", "running", "finished", "stopped", "failed"


class SweepDirError(ValueError):
    """The directory is not a readable sweep directory; the message says what is wrong."""


# A ${NAME} in a storage URL: read from the environment when the study is opened, so the secret itself is written
# nowhere (the space file, sweep.json and what Ray saves keep the reference).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def masked_url(url: str | None) -> str | None:
    """A storage URL with its password hidden: nothing secret goes into files, logs or the report. A password that is
    only a ${NAME} reference is kept: it holds no secret, and a reader (the report) resolves it again."""
    if not url or "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password is None or ENV_REFERENCE.fullmatch(str(parsed.password)):
        return url
    return parsed.render_as_string(hide_password=True)


def redacted(text: str, url: str | None) -> str:
    """TEXT (an error's message) with the password of the storage URL it came from replaced by ***."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password if url and "://" in url else None
    return text.replace(password, "***") if password else text


def study_url(url: str) -> str:
    """A storage URL with every ${NAME} replaced by that environment variable, what Optuna connects with; only ever
    held in memory. Raises SweepDirError naming a variable that is not set."""
    missing = [name for name in ENV_REFERENCE.findall(url) if name not in os.environ]
    if missing:
        raise SweepDirError(f"search.storage {masked_url(url)} reads ${{{missing[0]}}} from the environment, and "
                            f"{missing[0]} is not set: export it before running")
    return ENV_REFERENCE.sub(lambda match: os.environ[match.group(1)], url)


def default_storage(sweep_dir: str) -> str:
    """The Optuna storage of a sweep whose space names none: SQLite inside the sweep directory. SQLite cannot live
    in a bucket: a sweep on object storage works on a local file at the same path on every machine
    (storage.staging_dir, as Tune's saved searcher names it), published to SWEEP_DIR/optuna.db (publish_study) and
    fetched back by a resume (ready_local_study) or a report (study_copy)."""
    folder = storage.staging_dir(sweep_dir) if storage.is_uri(sweep_dir) else Path(sweep_dir)
    return f"sqlite:///{folder / OPTUNA_DB}"


def _local_study(sweep_dir: str, url: str) -> Path | None:
    """The local SQLite file of a sweep on object storage that uses the default storage; None otherwise."""
    if not storage.is_uri(sweep_dir) or url != default_storage(sweep_dir):
        return None
    return Path(url.removeprefix("sqlite:///"))


def publish_study(sweep_dir: str, url: str, published: tuple | None = None) -> tuple | None:
    """A consistent copy of the local study (SQLite's backup, never a file half-written) to SWEEP_DIR/optuna.db,
    unless the local file is as it was when PUBLISHED (the stamp the previous call returned); returns its stamp."""
    local = _local_study(sweep_dir, url)
    if local is None or not local.is_file():
        return published
    stamp = (local.stat().st_size, local.stat().st_mtime_ns)
    if stamp == published:  # Tune saves its state every ~10 s, whether or not a trial changed the study
        return published
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / OPTUNA_DB
        with closing(sqlite3.connect(local)) as source, closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        storage.write_bytes(storage.join(sweep_dir, OPTUNA_DB), copy.read_bytes())
    return stamp


def _fetch_published(sweep_dir: str, target: Path) -> bool:
    """SWEEP_DIR/optuna.db copied to the local TARGET; False when none was published."""
    try:
        data = storage.read_bytes(storage.join(sweep_dir, OPTUNA_DB))
    except FileNotFoundError:
        return False
    storage.write_bytes(target, data)
    return True


def ready_local_study(sweep_dir: str, url: str) -> None:
    """The driver's local study as the bucket holds it, before a sweep starts or resumes (on this machine or
    another): SWEEP_DIR/optuna.db when it was published, else none (an older local file is removed)."""
    local = _local_study(sweep_dir, url)
    if local is not None:
        local.unlink(missing_ok=True)
        _fetch_published(sweep_dir, local)


def study_copy(sweep_dir: str, url: str | None, folder: Path) -> str | None:
    """The storage URL a reader (the report) opens: for a sweep on object storage with the default storage, a copy
    of its published study in FOLDER (never the file a running driver works on); else URL itself."""
    if url is None or _local_study(sweep_dir, url) is None:
        return url
    copy = Path(folder) / OPTUNA_DB
    return f"sqlite:///{copy}" if _fetch_published(sweep_dir, copy) else url


def short_key(key: str) -> str:
    """A swept key as a trial's name shows it (KEY=value): its last part, hidden.* keys prefixed hidden_."""
    short = key.split(".")[-1]
    return "hidden_" + short if key.startswith("hidden.") else short


def study_beside(sweep_dir: str, url: str | None) -> str | None:
    """The study of a local sweep directory that was copied or moved: its own SQLite file (SWEEP_DIR/optuna.db) where
    sweep.json's URL names another folder's (the original's, perhaps deleted); None where the URL is this folder's,
    another database, or the directory is on object storage (study_copy)."""
    if url is None or storage.is_uri(sweep_dir) or not url.startswith("sqlite:///"):
        return None
    beside = Path(sweep_dir) / OPTUNA_DB
    if not beside.is_file() or Path(url.removeprefix("sqlite:///")).resolve() == beside.resolve():
        return None
    return f"sqlite:///{beside.resolve()}"


def trial_dir(sweep_dir: str, name: str) -> str:
    return storage.join(sweep_dir, TRIALS_DIR, name)


def trial_log_dir(sweep_dir: str, name: str) -> str:
    return storage.join(sweep_dir, TENSORBOARD_DIR, name)


def _read_json(location: str) -> dict:
    try:
        data = json.loads(storage.read_text(location))
    except (OSError, json.JSONDecodeError, storage.StorageError) as exc:
        raise SweepDirError(f"cannot read {storage.display(location)}: {exc}") from exc
    if not isinstance(data, dict):
        raise SweepDirError(f"{storage.display(location)} does not hold a JSON object")
    return data


def sweep_record(space: SweepSpace, storage_url: str | None) -> dict:
    """sweep.json's contents for SPACE, whose Optuna study lives at STORAGE_URL (as the space gives it: masked here);
    None for a sweep without a study (a PBT population is Tune's own: the report ranks its parameters from
    trials.json)."""
    has_study = storage_url is not None
    return _jsonable({
        "name": space.name, "metric": space.metric, "mode": space.mode, "objectives": space.objectives,
        "space": space.describe(),
        "fixed": space.fixed, "search": space.search.algorithm, "seed": space.search.seed,
        "startup_trials": space.search.startup_trials, "seeds": space.seeds,  # training seeds per point
        "scheduler": dataclasses.asdict(space.scheduler),
        "study_name": space.study_name if has_study else None,
        "storage": masked_url(storage_url) if has_study else None,
        "num_samples": space.num_samples, "space_file": str(space.path),
        "exclude": space.exclude, "table": space.table,  # what `gansweep report` makes its table of
    })


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def claim(sweep_dir: str, record: dict) -> None:
    """A new sweep's sweep.json (a storage URL in it masked), written only if the directory holds none: of two sweeps
    started on one directory at once, one claims it and the other is refused (SweepDirError)."""
    missing = [key for key in SWEEP_KEYS if key not in record]
    if missing:
        raise ValueError(f"a sweep record needs {', '.join(missing)}")
    text = json.dumps({**record, "storage": masked_url(record.get("storage"))}, indent=2, default=float)
    if not storage.create_new(storage.join(sweep_dir, SWEEP_FILE), text.encode()):
        raise SweepDirError(f"{storage.display(sweep_dir)} already holds a sweep: add --resume to continue it, or "
                            "choose another --output")


def release(sweep_dir: str) -> None:
    """A claimed directory given up by a sweep that stopped before Tune began (a plan that cannot fit, an
    interrupted start): the same --output can start it again."""
    if not storage.is_dir(storage.join(sweep_dir, TUNE_DIR)):
        storage.delete(storage.join(sweep_dir, SWEEP_FILE))


def has_sweep_record(sweep_dir: str) -> bool:
    return storage.is_file(storage.join(sweep_dir, SWEEP_FILE))


def read_sweep_record(sweep_dir: str) -> dict:
    """sweep.json, checked for the keys every reader needs."""
    path = storage.join(sweep_dir, SWEEP_FILE)
    if not storage.is_file(path):
        what = "does not exist" if not storage.exists(sweep_dir) else f"has no {SWEEP_FILE}"
        raise SweepDirError(f"{storage.display(sweep_dir)} is not a sweep directory: it {what} (give the output "
                            "directory of `gansweep sweep`)")
    sweep = _read_json(path)
    missing = [key for key in SWEEP_KEYS if key not in sweep]
    if missing:
        raise SweepDirError(f"{storage.display(path)} lacks {', '.join(missing)}")
    if sweep["mode"] not in ("min", "max"):
        raise SweepDirError(f"{storage.display(path)}: mode must be 'min' or 'max', not {sweep['mode']!r}")
    return sweep


def new_trial_entry(name: str, number: int, params: dict[str, Any], seed: int | None = None,
                    group: str | None = None) -> dict:
    """A trial's entry of trials.json before Tune starts it: its name, Optuna trial number, sampled keys, its training
    seed (train.seed) and its group: the point it trains, shared by the point's seeds (default: the trial's name)."""
    return {"name": name, "number": number, "params": params, "seed": seed, "group": group or name,
            "status": PENDING, "metrics": {}, "value": None, "stopped_at_step": None, "full_evaluation": None,
            "wall_s": None, "error": None, "started_unix": None}


def write_trials(sweep_dir: str, trials: list[dict]) -> None:
    """trials.json, its entries in trial-number order."""
    trials = sorted(trials, key=lambda entry: entry["number"])
    storage.write_json(storage.join(sweep_dir, TRIALS_FILE), {"trials": trials})


def read_trials(sweep_dir: str) -> list[dict] | None:
    """trials.json's entries (numbered and named where an entry lacks them, and valued where one was written before
    trials.json recorded values); None before any trial started."""
    path = storage.join(sweep_dir, TRIALS_FILE)
    if not storage.is_file(path):
        return None
    trials = _read_json(path).get("trials")
    if not isinstance(trials, list):
        raise SweepDirError(f"{storage.display(path)} has no list under 'trials'")
    metric = _read_json(storage.join(sweep_dir, SWEEP_FILE)).get("metric") if has_sweep_record(sweep_dir) else None
    for index, trial in enumerate(trials):
        trial.setdefault("number", index)
        trial.setdefault("name", f"trial_{trial['number']}")
        trial.setdefault("group", trial["name"])  # (written before seeds: each trial its own point)
        trial["params"] = trial.get("params") or {}
        if "value" not in trial:
            trial["value"] = trial_value(trial, metric) if metric else None
    return trials


def trial_value(entry: dict, metric: str) -> float | None:
    """A trial's value, the sweep's one objective: METRIC of its last report (the cheap evaluation at its final step,
    what Ray tells Optuna), for a trial that trained all its steps; None for one stopped early, failed, running, or
    whose value is not finite. trials.json records it at the trial's end ("value"), and every reader that ranks
    trials or names the best one reads that record (point_value, best_point, the report), never a best-so-far figure."""
    if entry.get("status") != FINISHED:
        return None
    value = (entry.get("metrics") or {}).get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def status_text(entry: dict) -> str:
    """A trial's status as a reader is told it: a stopped trial's with the step it stopped at."""
    status = entry.get("status", "unknown")
    step = entry.get("stopped_at_step") or (entry.get("metrics") or {}).get("step")
    return f"stopped at step {step}" if status == STOPPED and step is not None else status


def point_of(entry: dict) -> str:
    """The point a trial belongs to: its group (a space with `seeds:` trains a point once per seed), else itself."""
    return entry.get("group") or entry["name"]


def point_value(entries: list[dict]) -> float | None:
    """A point's value: the mean of its trials' values (one trial per seed; trial_value, as trials.json records it),
    what Optuna is told of it; None unless every one has a value (a stopped seed makes the point PRUNED in Optuna, a
    failed one FAIL)."""
    values = [entry.get("value") for entry in entries]
    if not values or None in values:
        return None
    return sum(values) / len(values)


def best_point(trials: list[dict], mode: str) -> tuple[list[dict], float] | None:
    """The best point by its value (point_value) and that value: its trials (one per seed: those of a group), in
    trial-number order; None when no point has a value. Of equal values, the point numbered first."""
    groups: dict[str, list[dict]] = {}
    for entry in sorted(trials, key=lambda t: t["number"]):
        groups.setdefault(point_of(entry), []).append(entry)
    valued = [(entries, point_value(entries)) for entries in groups.values()]
    valued = [(entries, value) for entries, value in valued if value is not None]
    if not valued:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return min(valued, key=lambda item: sign * item[1])


def objectives_of(sweep: dict) -> list[tuple[str, str]]:
    """A sweep record's (metric, mode) per objective (records written before two objectives existed: the one)."""
    return [tuple(pair) for pair in sweep.get("objectives") or [(sweep["metric"], sweep["mode"])]]


def pareto_front(trials: list[dict], objectives: list[tuple[str, str]]) -> list[dict]:
    """The finished trials no other finished trial dominates (at least as good on every objective, better on one),
    on their last reported values: what Optuna's multi-objective study was told (Ray reports a trial's last result,
    not its best). Sorted by the first objective."""
    sign = {"min": 1.0, "max": -1.0}
    scored = []
    for trial in trials:
        values = [trial.get("metrics", {}).get(metric) for metric, _ in objectives]
        if trial.get("status") == FINISHED and all(isinstance(v, (int, float)) for v in values):
            scored.append((trial, [sign[mode] * v for v, (_, mode) in zip(values, objectives)]))

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    front = [(t, v) for t, v in scored if not any(dominates(other, v) for _, other in scored)]
    return [t for t, v in sorted(front, key=lambda item: item[1][0])]
