"""GAN losses on discriminator outputs (logits, or critic values for WGAN-GP and hinge).

non_saturating (default): D minimises -log D(x) - log(1 - D(G(z))), G minimises -log D(G(z)) (Goodfellow et al.'s
    practical choice). minimax: G minimises log(1 - D(G(z))) instead, the game as written (it saturates early).
wgan_gp: a critic C; C minimises E[C(G(z))] - E[C(x)] + lambda E[(||grad C(x_hat)||_2 - 1)^2] on random
    interpolates x_hat (Gulrajani et al.), G minimises -E[C(G(z))]; n_critic is train.d_steps.
hinge: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("non_saturating", "minimax", "wgan_gp", "hinge")  # train.loss
PROBABILISTIC = ("non_saturating", "minimax")  # D's outputs are logits of a probability


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's (critic's) loss, without WGAN-GP's penalty."""
    if kind in PROBABILISTIC:
        return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log sigmoid(r) - log(1 - sigmoid(f))
    if kind == "wgan_gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}; one of {', '.join(LOSSES)}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss on D's outputs for its fakes."""
    if kind == "non_saturating":
        return F.softplus(-fake).mean()  # -log sigmoid(f)
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigmoid(f))
    if kind in ("wgan_gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}; one of {', '.join(LOSSES)}")


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     rng: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad_x C(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample. The graph is
    kept, so the penalty trains the critic."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), generator=rng, device=real.device)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()
