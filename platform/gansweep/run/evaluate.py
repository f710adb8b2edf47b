"""`gansweep evaluate`: the evaluation protocol on a trained run's generator (no Ray).

Samples come from the run's newest checkpoint, without any measurement, and are compared with the
clean test split on the cached domain classifier's features (metrics.evaluate_samples).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from gansweep.config import ConfigError
from gansweep.data.sources import load_source
from gansweep.data.training_set import cache_root, to_unit
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.evaluation.inception import inception_fid, load_inception
from gansweep.evaluation.metrics import evaluate_samples
from gansweep.evaluation.reference import reference_images
from gansweep.gan.priors import KDEPrior
from gansweep.nets.models import class_cycle
from gansweep.run.run_dir import load_generator, resolve_checkpoint

SAMPLE_BATCH = 500


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
