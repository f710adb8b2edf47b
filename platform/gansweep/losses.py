"""GAN losses on discriminator logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nonsaturating_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(y_real) - log(1 - D(y_fake)), written with softplus for numerical stability."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def nonsaturating_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(y_fake): the non-saturating generator loss of Goodfellow et al."""
    return F.softplus(-fake_logits).mean()
