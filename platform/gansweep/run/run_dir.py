"""A run directory, its one owner: run.json, the checkpoints (G, D, optimisers, step, every rank's random streams and
the best cheap evaluation figures so far), and opening a run's sampler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gansweep.config import Config, ConfigError, from_dict
from gansweep.gan.sampler import Sampler, checkpoint_sampler

RUN_FILE = "run.json"  # written when a run starts: what rebuilding its generator needs
RESULT_FILE = "result.json"  # written once the run has trained all its steps (and evaluated)
EVALUATION_FILE = "evaluation.json"  # the full evaluation protocol's figures
ERROR_FILE = "error.txt"  # a failed run's error in one line (a sweep's trials.json and report show it)
DIVERGED_FILE = "diverged.json"  # the step and losses at which the losses turned non-finite
CHECKPOINTS_DIR = "checkpoints"  # Ray Train's run name: its checkpoint_* folders land here
TENSORBOARD_DIR = "tensorboard"
STATE_FILE = "state.pt"  # in a checkpoint: every part's state, the step, the ranks' random streams
STEP_FILE = "step.json"  # written after STATE_FILE: its presence marks a complete checkpoint


@dataclass
class RunRecord:
    """run.json: the resolved config, the clean image shape and the training set's classes."""

    config: Config
    clean_shape: tuple[int, int, int]
    num_classes: int = 0


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN_FILE, {"config": record.config.to_dict(), "clean_shape": list(record.clean_shape),
                                     "num_classes": record.num_classes})


def read_run_record(run_dir: Path) -> RunRecord:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: {run_dir} is not a gansweep run directory")
    data = json.loads(path.read_text())
    return RunRecord(from_dict(data["config"]), tuple(data["clean_shape"]), int(data.get("num_classes", 0)))


def write_json(path: Path, data: dict) -> None:
    """DATA as PATH, written then renamed: a reader (a sweep's driver, a report, a rerun) never sees half a file.
    Non-finite floats are written as JSON's NaN / Infinity; other numbers (numpy's) as floats."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_result(run_dir: Path, summary: dict) -> None:
    write_json(run_dir / RESULT_FILE, summary)


def read_result(run_dir: Path) -> dict | None:
    """result.json, or None for a run that has not finished (or was stopped early)."""
    return _read_json(run_dir / RESULT_FILE)


def write_evaluation(run_dir: Path, figures: dict) -> None:
    write_json(run_dir / EVALUATION_FILE, figures)


def read_evaluation(run_dir: Path) -> dict | None:
    return _read_json(run_dir / EVALUATION_FILE)


def write_error(run_dir: Path, error: BaseException) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR_FILE).write_text(f"{type(error).__name__}: {error}")


def read_error(run_dir: Path) -> str | None:
    path = run_dir / ERROR_FILE
    return path.read_text() if path.is_file() else None


def mark_diverged(run_dir: Path, step: int, losses: dict[str, float]) -> None:
    write_json(run_dir / DIVERGED_FILE, {"step": step, "losses": losses})


def read_diverged(run_dir: Path) -> dict | None:
    return _read_json(run_dir / DIVERGED_FILE)


def clear_diverged(run_dir: Path) -> None:
    """A rerun tries again, from the last checkpoint."""
    (run_dir / DIVERGED_FILE).unlink(missing_ok=True)


def save_checkpoint(gan, step: int, rng_states: list, directory: str | Path, best_eval: dict | None = None) -> None:
    state = {**gan.state_dict(), "step": step, "rng": rng_states, "best_eval": best_eval or {}}
    torch.save(state, Path(directory) / STATE_FILE)
    (Path(directory) / STEP_FILE).write_text(json.dumps({"step": step}))


def load_checkpoint(directory: str | Path, map_location: torch.device | str = "cpu") -> dict:
    """A checkpoint's state (weights_only: no pickle from a file)."""
    return torch.load(Path(directory) / STATE_FILE, map_location=map_location, weights_only=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step in RUN_DIR/checkpoints/, if any.

    Ray Train restores from its own snapshot of reported checkpoints; this finds a checkpoint that
    was written but not yet recorded there when the run was killed.
    """
    best, best_step = None, -1
    for directory in (Path(run_dir) / CHECKPOINTS_DIR).glob("checkpoint_*"):
        try:
            step = json.loads((directory / STEP_FILE).read_text())["step"]
        except (OSError, ValueError, KeyError):
            continue
        if (directory / STATE_FILE).is_file() and step > best_step:
            best, best_step = directory, step
    return best


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint directory) for a run directory or one of its checkpoints."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"{path} does not exist: give a run directory (gansweep train --output) or a checkpoint")
    if (path / STATE_FILE).is_file():
        return path.parent.parent, path
    checkpoint = latest_checkpoint(path)
    if checkpoint is None:
        raise ConfigError(f"{path} holds no checkpoint (expected {path}/{CHECKPOINTS_DIR}/checkpoint_*/{STATE_FILE})")
    return path, checkpoint


def load_sampler(run_dir: Path, checkpoint: Path) -> tuple[Sampler, Config, int]:
    """The sampler of the run's generator with the checkpoint's weights and prior (gan.sampler.checkpoint_sampler),
    the run's config and the checkpoint's step."""
    record = read_run_record(run_dir)
    state = load_checkpoint(checkpoint)
    sampler = checkpoint_sampler(record.config, record.clean_shape, record.num_classes, state)
    return sampler, record.config, int(state["step"])
