"""GAN losses on discriminator outputs (logits, or critic values for WGAN-GP and hinge).

non_saturating (default): D minimises -log D(x) - log(1 - D(G(z))), G minimises -log D(G(z)) (Goodfellow et al.'s
    practical choice). minimax: G minimises log(1 - D(G(z))) instead, the game as written (it saturates early).
wgan_gp: a critic C; C minimises E[C(G(z))] - E[C(x)] + lambda E[(||grad C(x_hat)||_2 - 1)^2] on random
    interpolates x_hat (Gulrajani et al.), G minimises -E[C(G(z))]; n_critic is train.d_steps.
hinge: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Loss:
    """A GAN loss, as train.loss names it in REGISTRY."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # D's (critic's) loss on its outputs for reals and fakes
    g: Callable[[torch.Tensor], torch.Tensor]  # G's loss on D's outputs for its fakes
    probabilistic: bool  # D's outputs are logits of a probability (else critic values)
    gradient_penalty: bool = False  # D's loss adds WGAN-GP's penalty (gradient_penalty, weighted by train.gp_weight)


def _d_logistic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log sigmoid(r) - log(1 - sigmoid(f))


def _g_non_saturating(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()  # -log sigmoid(f)


def _g_minimax(fake: torch.Tensor) -> torch.Tensor:
    return -F.softplus(fake).mean()  # log(1 - sigmoid(f))


def _d_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()


def _d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def _g_critic(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


# train.loss's values; config checks names against it.
REGISTRY: dict[str, Loss] = {
    "non_saturating": Loss(_d_logistic, _g_non_saturating, probabilistic=True),
    "minimax": Loss(_d_logistic, _g_minimax, probabilistic=True),
    "wgan_gp": Loss(_d_wasserstein, _g_critic, probabilistic=False, gradient_penalty=True),
    "hinge": Loss(_d_hinge, _g_critic, probabilistic=False),
}


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     rng: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad_x C(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample. The graph is
    kept, so the penalty trains the critic."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), generator=rng, device=real.device)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()
