"""The cheap evaluation's payload, prepared by the driver before Ray starts: the run's domain classifier and its
features of the reference split, from the cache (made there on first use). Apart from evaluation/monitor.py, so that
the workers, which only evaluate with the payload, import neither the classifier's training nor the data sources."""

from __future__ import annotations

from gansweep.config.schema import Config
from gansweep.data import cache
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.evaluation.monitor import MonitorPayload
from gansweep.evaluation.reference import reference_features


def prepare_monitor(cfg: Config) -> MonitorPayload:
    """The payload of the run's cached domain classifier and the cached features of its reference split; trains and
    caches the classifier, and computes and caches the features, on first use (with progress)."""
    data = cfg.data
    root = cache.root(data.cache_dir)
    record = load_or_train_classifier(data.name, data.root, image_size=data.image_size, cache_dir=root)
    return MonitorPayload.of(record, reference_features(data, record, root))
