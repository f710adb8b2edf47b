"""The cheap evaluation's payload, prepared by the driver before Ray starts: the run's domain classifier and its
features of the validation split, from the cache (made there on first use). Apart from evaluation/monitor.py, so that
the workers, which only evaluate with the payload, import neither the classifier's training nor the data sources."""

from __future__ import annotations

import sys

from gansweep.config.schema import Config
from gansweep.data import cache
from gansweep.evaluation.classifier import protocol_classifier
from gansweep.evaluation.monitor import MonitorPayload
from gansweep.evaluation.reference import reference_features, selection_split


def prepare_monitor(cfg: Config) -> MonitorPayload:
    """The payload of the run's cached domain classifier and the cached features of the validation split (the test
    split with data.validation_size 0, said loudly); trains and caches the classifier, and computes and caches the
    features, on first use (with progress)."""
    data = cfg.data
    record = protocol_classifier(data)
    split = selection_split(data)
    if not data.validation_size:
        print(f"[gansweep] WARNING: data.validation_size=0: the cheap FID that ranks, stops and selects trials is "
              f"computed against the {split} split, which the reported figures use too: model selection on the "
              f"{split} split", file=sys.stderr, flush=True)
    return MonitorPayload.of(record, reference_features(data, record, cache.root(data.cache_dir), split))
