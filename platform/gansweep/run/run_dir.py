"""A run directory, its one owner: run.json, the checkpoints (G, D, optimisers, step, every rank's random streams and
the best cheap evaluation figures so far), and opening a run's generator."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from gansweep.config import Config, ConfigError, from_dict
from gansweep.gan.acl import CodeToImage, load_code_generator
from gansweep.gan.priors import KDEPrior
from gansweep.nets.models import Generator

RUN_FILE = "run.json"  # written by the trainer when a run starts: the config and the image shape
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


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint directory) for a run directory or one of its checkpoints."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"{path} does not exist: give a run directory (gansweep train --output) or a checkpoint")
    if (path / STATE_FILE).is_file():
        return path.parent.parent, path
    checkpoint = latest_checkpoint(path / "checkpoints")
    if checkpoint is None:
        raise ConfigError(f"{path} holds no checkpoint (expected {path}/checkpoints/checkpoint_*/{STATE_FILE})")
    return path, checkpoint


def load_generator(run_dir: Path, checkpoint: Path) -> tuple[nn.Module, Config, int, KDEPrior | None]:
    """The run's generator with the checkpoint's weights, its config, the checkpoint's step and its prior
    (a KDE-GAN's KDE over reversed codes; None for N(0, I)). For an ACL run the generator is G(C(z))."""
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(f"{run_file} is missing: {run_dir} is not a gansweep run directory")
    run = json.loads(run_file.read_text())
    cfg = from_dict(run["config"])
    num_classes = run.get("num_classes", 0) if cfg.model.conditional else 0
    generator = Generator(tuple(run["clean_shape"]), z_dim=cfg.model.z_dim, width=cfg.model.g_width,
                          num_classes=num_classes)
    state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
    generator.load_state_dict(state["G"])
    if cfg.acl.variant != "none":
        generator = CodeToImage(load_code_generator(cfg, state), generator)
    return generator.eval(), cfg, int(state["step"]), KDEPrior.from_checkpoint(state.get("prior_codes"), cfg.prior)
