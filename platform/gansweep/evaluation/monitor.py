"""The cheap evaluation a run makes while it trains: FID and classifier score of a few samples.

The driver prepares it once, before Ray starts (the cached domain classifier and the feature
statistics of the clean validation split: training images held out of training, data/validation.py),
and ships it to rank 0 inside the train loop's config, so a worker on another node needs neither the
classifier cache nor the data. The figures use the protocol's classifier but the validation split and
few samples: FID on 1,000 samples is biased upwards against the full evaluation's, so it ranks trials
and drives early stopping, and no choice looks at the test split; the table's numbers come from the
full evaluation against the test split at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gansweep.evaluation import figures
from gansweep.evaluation.metrics import (
    classifier_outputs,
    classifier_score,
    feature_statistics,
    frechet_distance_from_statistics,
)
from gansweep.nets.domain_classifier import DomainClassifier

if TYPE_CHECKING:
    from gansweep.evaluation.classifier import ClassifierRecord
    from gansweep.evaluation.reference import ReferenceFeatures
    from gansweep.gan.sampler import Sampler


@dataclass
class MonitorPayload:
    """What rank 0 needs to evaluate, shipped in the run's plan: the classifier's weights and shape, the reference
    split's feature statistics, and the provenance recorded with every cheap figure."""

    state_dict: dict[str, torch.Tensor]
    in_channels: int
    num_classes: int
    feature_dim: int
    mu: np.ndarray
    sigma: np.ndarray
    n_real: int
    reference_split: str  # "validation", or with data.validation_size 0 the full evaluation's ("test")
    classifier_fingerprint: str

    @classmethod
    def of(cls, classifier: ClassifierRecord, reference: ReferenceFeatures) -> MonitorPayload:
        """The payload of CLASSIFIER scoring against REFERENCE, its features of the reference split."""
        model = classifier.model
        mu, sigma = feature_statistics(reference.feats)
        return cls({k: v.cpu() for k, v in model.state_dict().items()}, model.in_channels, model.num_classes,
                   model.feature_dim, mu, sigma, len(reference.feats), reference.split, classifier.fingerprint)

    def provenance(self, n_samples: int, device: str) -> dict:
        """The protocol fields recorded with the cheap figures of N_SAMPLES samples scored on DEVICE (cpu or cuda;
        in fp32 on either: the samples and the features are computed without TF32); n_real: the reference split's
        size ("validation": data.validation_size)."""
        return {"n_fake": n_samples, "n_real": self.n_real, "reference_split": self.reference_split,
                "classifier_fingerprint": self.classifier_fingerprint, "device": device, "arithmetic": "fp32"}


class FidMonitor:
    """Evaluates a GAN's generator on samples drawn with the same seed each time, so successive figures are
    comparable."""

    def __init__(self, payload: MonitorPayload, n_samples: int, seed: int, device: torch.device):
        self.model = DomainClassifier(payload.in_channels, payload.num_classes, payload.feature_dim)
        self.model.load_state_dict(payload.state_dict)
        self.model.to(device).eval()
        self.mu, self.sigma = payload.mu, payload.sigma
        self.n_samples = n_samples
        # Its own seed: the training z and theta streams (and so the resume) are untouched.
        self.seed = seed + 104729

    @torch.no_grad()
    def __call__(self, sampler: Sampler) -> dict[str, float]:
        """{"fid", "classifier_score"} of the generator's clean samples, their z from its prior (a KDE-GAN's KDE)."""
        return self.score(sampler.draw(self.n_samples, self.seed))

    @torch.no_grad()
    def score(self, samples: torch.Tensor) -> dict[str, float]:
        """{"fid", "classifier_score"} of SAMPLES (intensities in [0, 1]) against the reference statistics."""
        feats, logits = classifier_outputs(self.model, samples.clamp(0, 1))
        mu, sigma = feature_statistics(feats)
        return {
            figures.FID: frechet_distance_from_statistics(mu, sigma, self.mu, self.sigma),
            figures.CLASSIFIER_SCORE: float(classifier_score(logits, probs=False)),
        }

