"""Latent priors: the kernel density over reversed codes of Kilcher et al. (section 3.2), optionally mixed with
the background N(0, I) against memorisation. Plain torch: no Ray."""

from __future__ import annotations

import math

import torch


class KDEPrior:
    """p(z) = (1 - w) (1/n) sum_i N(z; z_i, h^2 I) + w N(z; 0, I): an RBF kernel density of bandwidth h over
    the codes z_i, mixed with the background Gaussian with weight w. The bandwidth trades generalisation
    (wide kernels) against memorising the reversed training codes (h -> 0)."""

    def __init__(self, codes: torch.Tensor, bandwidth: float, background_weight: float = 0.0):
        if codes.dim() != 2 or len(codes) < 1:
            raise ValueError(f"KDEPrior needs codes of shape (n, z_dim), got {tuple(codes.shape)}")
        if bandwidth <= 0:
            raise ValueError(f"the KDE bandwidth must be > 0, got {bandwidth}")
        if not 0 <= background_weight <= 1:
            raise ValueError(f"the background weight must be in [0, 1], got {background_weight}")
        self.codes = codes.detach()
        self.bandwidth = float(bandwidth)
        self.background_weight = float(background_weight)

    @property
    def z_dim(self) -> int:
        return self.codes.shape[1]

    def sample(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """N codes: a stored code plus N(0, h^2 I) noise, or (with probability w) a background draw."""
        device = self.codes.device  # RNG, if given, must live there too
        pick = torch.randint(len(self.codes), (n,), generator=rng, device=device)
        z = self.codes[pick] + self.bandwidth * torch.randn(n, self.z_dim, generator=rng, device=device)
        if self.background_weight > 0:
            background = torch.rand(n, generator=rng, device=device) < self.background_weight
            z[background] = torch.randn(int(background.sum()), self.z_dim, generator=rng, device=device)
        return z

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for each row of Z (natural log, densities in R^z_dim)."""
        d, h = self.z_dim, self.bandwidth
        squared = torch.cdist(z, self.codes).square()
        log_kernels = -squared / (2 * h * h) - d * math.log(h) - d / 2 * math.log(2 * math.pi)
        kde = torch.logsumexp(log_kernels, dim=1) - math.log(len(self.codes))
        if self.background_weight == 0:
            return kde
        background = -z.square().sum(dim=1) / 2 - d / 2 * math.log(2 * math.pi)
        if self.background_weight == 1:
            return background
        return torch.logaddexp(kde + math.log1p(-self.background_weight), background + math.log(self.background_weight))

    @classmethod
    def from_checkpoint(cls, codes: torch.Tensor | None, prior_config) -> KDEPrior | None:
        """The prior a checkpoint's `prior_codes` describe under the run's prior.* settings (PRIOR_CONFIG);
        None for N(0, I), which a checkpoint records as no codes."""
        if codes is None or not len(codes):
            return None
        return cls(codes, prior_config.bandwidth, prior_config.background_weight)

    def holdout_log_likelihood(self, codes: torch.Tensor) -> float:
        """Mean log-density of held-out codes (e.g. reversed test images): the paper's Fig. 10."""
        return float(self.log_prob(codes).mean())
