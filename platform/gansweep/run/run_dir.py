"""The checkpoint format of a run: G, D, optimisers, step, every rank's random streams and the best cheap
evaluation figures so far."""

from __future__ import annotations

import json
from pathlib import Path

import torch

STATE_FILE = "state.pt"
STEP_FILE = "step.json"  # written after STATE_FILE: its presence marks a complete checkpoint
DIVERGED_FILE = "diverged.json"  # in the run directory: the step and losses at which training stopped


def save_checkpoint(gan, step: int, rng_states: list, directory: str, best_eval: dict | None = None) -> None:
    state = {**gan.state_dict(), "step": step, "rng": rng_states, "best_eval": best_eval or {}}
    torch.save(state, Path(directory) / STATE_FILE)
    (Path(directory) / STEP_FILE).write_text(json.dumps({"step": step}))


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step in a run's checkpoints/ folder, if any.

    Ray Train restores from its own snapshot of reported checkpoints; this finds a checkpoint that
    was written but not yet recorded there when the run was killed.
    """
    best, best_step = None, -1
    for directory in Path(checkpoints_dir).glob("checkpoint_*"):
        try:
            step = json.loads((directory / STEP_FILE).read_text())["step"]
        except (OSError, ValueError, KeyError):
            continue
        if (directory / STATE_FILE).is_file() and step > best_step:
            best, best_step = directory, step
    return best
