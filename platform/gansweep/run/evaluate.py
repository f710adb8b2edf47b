"""`gansweep evaluate`: the evaluation protocol on a trained run's generator (no Ray).

Samples come from the run's newest checkpoint, without any measurement, and are compared with the
clean test split (never the validation split the cheap FID selects on) on the cached domain classifier's
features (metrics.evaluate_samples; the test split's features are cached too: evaluation.reference), and
with the training images, streamed in batches, for the nearest-neighbour distance; with Inception among the feature networks, also on its features (evaluation.inception).
On a GPU where there is one (--device), in fp32 on either device (no TF32), with z drawn on the CPU: the same
figures, up to rounding, wherever a run is evaluated.
"""

from __future__ import annotations

from pathlib import Path

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.schema import DataConfig
from gansweep.gan.runtime import resolve_device
from gansweep.data import cache
from gansweep.evaluation.classifier import protocol_classifier
from gansweep.evaluation.figures import FULL, raw_key
from gansweep.evaluation.inception import (
    FEATURE_DIM,
    InceptionNetwork,
    evaluate_inception,
    inception_features,
    load_inception,
)
from gansweep.evaluation.metrics import evaluate_samples
from gansweep.evaluation.reference import ReferenceFeatures, cached_features, reference_features, training_batches
from gansweep.run.run_dir import load_sampler, resolve_checkpoint, write_evaluation


def evaluate_run(
    path: str | Path, n_samples: int = 10_000, seed: int = 0, features: list[str] | None = None, device: str = "auto",
) -> dict:
    """Evaluate a run (or one checkpoint) on DEVICE (auto: the GPU where there is one) and write
    RUN_DIR/evaluation.json; returns the figures. The samples' z are drawn from the run's prior (a KDE-GAN's KDE)
    with SEED, every class equally often for a conditional GAN.

    FEATURES (default: the run's eval.features) names the feature networks: the classifier's figures always, and
    with "inception" those on Inception features (fid_inception, ...: evaluation.inception). A run
    with train.ema is evaluated on G's moving average (the checkpoint_sampler's choice), with G's own figures
    beside (FIGURE_raw) and generator "ema"."""
    if n_samples < 2:
        raise ConfigError(f"--n-samples={n_samples} must be >= 2")
    where = resolve_device(device)
    run_dir, checkpoint = resolve_checkpoint(path)
    sampler, cfg, step = load_sampler(run_dir, checkpoint)
    data = cfg.data
    features = cfg.eval.features if features is None else features
    inception = load_inception() if "inception" in features else None  # a missing extra fails first
    root = cache.root(data.cache_dir)
    classifier = protocol_classifier(data)
    reference = reference_features(data, classifier, root)
    classifier.model.to(where)
    samples = sampler.to(where).draw(n_samples, seed)
    figures = evaluate_samples(samples, reference.feats, training_batches(data, root), classifier, reference.split)
    if inception is not None:
        inception_reference = inception_reference_features(data, inception.to(where), root)
        figures.update(evaluate_inception(samples, inception_reference.feats, inception_reference.split, inception))
    if sampler.averaged:  # train.ema: the figures are G's moving average's; G's own beside them, of the same z
        raw_samples = load_sampler(run_dir, checkpoint, raw=True)[0].to(where).draw(n_samples, seed)
        raw = evaluate_samples(raw_samples, reference.feats, training_batches(data, root), classifier,
                               reference.split)
        figures.update({raw_key(name): raw[name] for name in FULL}, generator="ema")
        if inception is not None:
            raw_inception = evaluate_inception(raw_samples, inception_reference.feats, inception_reference.split,
                                               inception)
            figures[raw_key("fid_inception")] = raw_inception["fid_inception"]
    figures.update(step=step, checkpoint=str(checkpoint), sample_seed=seed, device=where.type, arithmetic="fp32")
    write_evaluation(run_dir, figures)
    return figures


def inception_reference_features(data: DataConfig, network: InceptionNetwork,
                                 cache_dir: storage.LocationLike) -> ReferenceFeatures:
    """NETWORK's features of the run's reference split, cached per (source, split, network) as the classifier's are
    (evaluation.reference): on 2 CPU cores the 10,000 images of a test split take one to three hours, once."""
    return cached_features(data, "inception", network.fingerprint, FEATURE_DIM,
                           lambda images: inception_features(network, images), cache_dir)
