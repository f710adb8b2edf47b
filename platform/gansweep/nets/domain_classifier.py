"""The domain classifier's network: the evaluation protocol's feature network (evaluation/classifier.py trains and
caches it). Plain torch: a run's workers rebuild it from the weights its plan ships, without the data it learnt from.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 256


class DomainClassifier(nn.Module):
    """conv32-pool-conv64-pool-conv128-pool(4x4)-fc256-dropout-fc(num_classes).

    Takes (N, C, H, W) images in [0, 1] of any size >= 16 (28x28 and 32x32 in practice): the adaptive
    pool makes the head independent of the input size. Sized for CPUs: the wider convolutions run
    after pooling, and the first one (on the full image) has no BatchNorm, whose passes over the
    largest activation would cost more than the convolution itself; the later layers have one.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.in_channels, self.num_classes, self.feature_dim = in_channels, num_classes, feature_dim

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
            )

        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 28 -> 14, 32 -> 16
            block(32, 64),
            nn.MaxPool2d(2),  # 14 -> 7, 16 -> 8
            block(64, 128),
            nn.AdaptiveAvgPool2d(4),  # -> 4x4
            nn.Flatten(),
            nn.Linear(128 * 16, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, feature_dim): the penultimate features."""
        return self.body((x - 0.5) * 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return feats, self.head(self.dropout(feats))
