"""`gansweep evaluate`: the evaluation protocol on a trained run's generator (no Ray).

Samples come from the run's newest checkpoint, without any measurement, and are compared with the
clean test split on the cached domain classifier's features (metrics.evaluate_samples).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gansweep.gan.acl import CodeToImage, load_code_generator
from gansweep.run.run_dir import STATE_FILE, latest_checkpoint
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.config import Config, ConfigError, from_dict
from gansweep.data.training_set import cache_root, to_unit
from gansweep.evaluation.inception import inception_fid, load_inception
from gansweep.evaluation.metrics import evaluate_samples
from gansweep.nets.models import Generator, class_cycle
from gansweep.gan.priors import KDEPrior
from gansweep.data.sources import DataSourceError, load_source

RUN_FILE = "run.json"  # written by the trainer when a run starts: the config and the image shape
SAMPLE_BATCH = 500


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


@torch.no_grad()
def sample(generator: nn.Module, n: int, seed: int, prior: KDEPrior | None = None) -> torch.Tensor:
    """n clean samples in [0, 1] from a seeded z (from PRIOR, else N(0, I)), of every class equally often for a
    conditional generator: no measurement, BatchNorm in eval mode."""
    z_generator = torch.Generator().manual_seed(seed)
    labels = class_cycle(n, generator.num_classes)
    batches = []
    for start in range(0, n, SAMPLE_BATCH):
        size = min(SAMPLE_BATCH, n - start)
        z = prior.sample(size, z_generator) if prior else torch.randn(size, generator.z_dim, generator=z_generator)
        batch_labels = None if labels is None else labels[start:start + size]
        batches.append(to_unit(generator(z, labels=batch_labels)))
    return torch.cat(batches)


def reference_images(cfg: Config) -> tuple[np.ndarray, str]:
    """The clean test split, or for sources without one the clean training split (named as such)."""
    data = cfg.data
    try:
        return load_source(data.name, data.root, split="test", image_size=data.image_size).images, "test"
    except DataSourceError:
        if data.name not in ("image_folder", "parquet"):
            raise
        return load_source(data.name, data.root, split="train", image_size=data.image_size).images, "train"


def evaluate_run(
    path: str | Path, n_samples: int = 10_000, seed: int = 0, inception_weights: str | Path | None = None
) -> dict:
    """Evaluate a run (or one checkpoint) and write RUN_DIR/evaluation.json; returns the figures.

    With `inception_weights` (default: the run's eval.inception_weights) an Inception-V3 FID is added."""
    if n_samples < 2:
        raise ConfigError(f"--n-samples={n_samples} must be >= 2")
    run_dir, checkpoint = resolve_checkpoint(path)
    generator, cfg, step, prior = load_generator(run_dir, checkpoint)
    data = cfg.data
    inception_weights = inception_weights or cfg.eval.inception_weights
    inception = load_inception(inception_weights) if inception_weights else None  # a bad path fails first
    classifier = load_or_train_classifier(data.name, data.root, image_size=data.image_size, cache_dir=cache_root(data))
    reference, split = reference_images(cfg)
    train = load_source(data.name, data.root, split="train", limit=data.limit, image_size=data.image_size)
    samples = sample(generator, n_samples, seed, prior)
    figures = evaluate_samples(samples, reference, train.images, classifier, split)
    if inception is not None:
        figures.update(fid_inception=inception_fid(samples, reference, inception), inception_weights=str(inception_weights))
    figures.update(step=step, checkpoint=str(checkpoint), sample_seed=seed)
    (run_dir / "evaluation.json").write_text(json.dumps(figures, indent=2))
    return figures
