"""Time of the evaluation protocol on N generated samples (default 10,000) on this CPU.

Samples come from an untrained 28x28 generator (the cost does not depend on the weights); the
reference is Fashion-MNIST's clean test split, the nearest-neighbour distance runs against the full
60,000-image training split, and the domain classifier is the cached default one (trained first if
absent: that time is printed separately).

    PYTHONPATH=platform python benchmarks/bench_evaluate.py [--n-samples 10000]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from gansweep.data.sources import load_source
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.evaluation.metrics import classifier_outputs, evaluate_samples
from gansweep.gan.priors import NormalPrior
from gansweep.gan.sampler import Sampler
from gansweep.nets.models import Generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    args = parser.parse_args()

    start = time.perf_counter()
    classifier = load_or_train_classifier("fashion_mnist", None)
    classifier_s = time.perf_counter() - start
    reference = classifier_outputs(classifier.model, load_source("fashion_mnist", None, split="test").images)[0]
    train = load_source("fashion_mnist", None, split="train").images

    torch.manual_seed(0)
    generator = Generator((1, 28, 28)).eval()
    start = time.perf_counter()
    samples = Sampler(generator, NormalPrior(generator.z_dim)).draw(args.n_samples, seed=0)
    sampling_s = time.perf_counter() - start
    start = time.perf_counter()
    figures = evaluate_samples(samples, reference, train, classifier)
    metrics_s = time.perf_counter() - start
    print(json.dumps({
        "n_fake": figures["n_fake"], "n_real": figures["n_real"], "n_train_for_nn": len(train),
        "torch_threads": torch.get_num_threads(),
        "classifier_load_or_train_s": round(classifier_s, 1), "classifier_trained_now": classifier.trained_now,
        "sampling_s": round(sampling_s, 1), "metrics_s": round(metrics_s, 1),
        "total_evaluation_s": round(sampling_s + metrics_s, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
