"""How does the val fid (the cheap FID against the validation split, what a sweep selects on) compare with the same
cheap FID against the test split? Same generator, same samples (the cheap evaluation's codes), same classifier.

For each RUN: FID of its eval.cheap_samples samples against the validation split (data.validation_size clean training
images held out of training), against the whole test split, and against a seeded subset of the test split as large as
the validation split (the part of the gap that is only n_real); and, as a floor, FID of as many real test images
against the validation split. Then the rank agreement of the two figures over the runs.

    .venv/bin/python benchmarks/bench_validation_fid.py runs/sweep/trials/*
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from gansweep.data import cache
from gansweep.data.sources import load_source
from gansweep.evaluation.metrics import classifier_outputs, feature_statistics, frechet_distance_from_statistics
from gansweep.evaluation.monitor import FidMonitor
from gansweep.evaluation.classifier import protocol_classifier
from gansweep.evaluation.protocol import prepare_monitor
from gansweep.evaluation.reference import reference_features
from gansweep.run.run_dir import load_sampler, resolve_checkpoint


def _fid(feats: np.ndarray, reference: np.ndarray) -> float:
    return frechet_distance_from_statistics(*feature_statistics(feats), *feature_statistics(reference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        sampler, cfg, step = load_sampler(*resolve_checkpoint(run))
        data = cfg.data
        payload = prepare_monitor(cfg)
        record = protocol_classifier(data, progress=False)
        root = cache.root(data.cache_dir)
        valid = reference_features(data, record, root, "validation").feats
        test = reference_features(data, record, root, "test").feats
        subset = test[np.random.default_rng(0).choice(len(test), len(valid), replace=False)]
        n = cfg.eval.cheap_samples
        monitor = FidMonitor(payload, n, 0, torch.device("cpu"))
        with torch.no_grad():
            feats = classifier_outputs(record.model, sampler.draw(n, monitor.seed).clamp(0, 1))[0]
        val_fid = monitor.score(sampler.draw(n, monitor.seed))["fid"]  # the monitor's own figure: the same
        assert abs(val_fid - _fid(feats, valid)) < 1e-6 * max(1.0, val_fid)
        rows.append((run.rstrip("/").rsplit("/", 1)[-1], step, val_fid, _fid(feats, test), _fid(feats, subset)))
    real = load_source(data.name, data.root, split="test", image_size=data.image_size).images[:n]
    floor = _fid(classifier_outputs(record.model, torch.from_numpy(real).float() / 255)[0], valid)
    print(f"classifier {record.fingerprint}; {n} samples; validation split {len(valid)} images, test split {len(test)}")
    print(f"{'run':40s} {'step':>5s} {'val fid':>9s} {'test fid':>9s} {'test fid':>9s}")
    print(f"{'':40s} {'':5s} {f'n={len(valid)}':>9s} {f'n={len(test)}':>9s} {f'n={len(valid)}':>9s}")
    for name, step, *figures in rows:
        print(f"{name:40s} {step:5d} " + " ".join(f"{f:9.3f}" for f in figures))
    print(f"floor: {n} real test images against the validation split: {floor:.3f}")
    if len(rows) > 2:
        ranks = [np.argsort(np.argsort([row[k] for row in rows])) for k in (2, 3)]
        print(f"Spearman rank correlation, val fid vs test fid (n={len(test)}): "
              f"{np.corrcoef(ranks[0], ranks[1])[0, 1]:.3f} over {len(rows)} runs")


if __name__ == "__main__":
    main()
