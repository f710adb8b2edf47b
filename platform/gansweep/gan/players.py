"""The two players of the image GAN: G and D, their optimisers, D's steps and G's adversarial loss. No Ray here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

from gansweep.gan.runtime import Keyed, autocast
from gansweep.nets.losses import REGISTRY as LOSSES
from gansweep.nets.losses import gradient_penalty
from gansweep.nets.models import Discriminator, Generator

if TYPE_CHECKING:
    from gansweep.config.schema import Config, TrainConfig


G_KEY = "G"  # G's weights in a checkpoint: what a run's sampler loads (gan/sampler.py)


def adam(module: nn.Module, lr: float, train: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(train.beta1, train.beta2))


class Players:
    """G and D (None for ACL-AE, which has no image discriminator), their Adam optimisers and the autocast they
    run under. Owns the checkpoint keys G, D, opt_g and opt_d."""

    def __init__(
        self,
        cfg: Config,
        clean_shape: tuple[int, int, int],
        d_shape: tuple[int, ...] | None,  # what D sees (the measurement's output shape); None: no D
        num_classes: int,  # > 0: G and D conditioned on the class
        device: torch.device,
        wrap: Callable[[nn.Module], nn.Module],
        penalty_rng: torch.Generator,  # the gradient penalty's mixing weights (the theta stream)
    ):
        t, m = cfg.train, cfg.model
        self.loss, self.gp_weight, self.penalty_rng = LOSSES[t.loss], t.gp_weight, penalty_rng
        # Same initial weights on every rank (DDP also broadcasts rank 0's).
        torch.manual_seed(t.seed)
        generator = Generator(clean_shape, z_dim=m.z_dim, width=m.g_width, num_classes=num_classes)
        self.G = wrap(generator.to(device))
        self.opt_g = adam(self.G, t.lr_g, t)
        self.D = self.opt_d = None
        if d_shape is not None:
            discriminator = Discriminator(d_shape, width=m.d_width, norm=m.d_norm, num_classes=num_classes)
            self.D = wrap(discriminator.to(device))
            self.opt_d = adam(self.D, t.lr_d, t)
        self.autocast = autocast(device)

    def discriminator_steps(
        self,
        reals: list[torch.Tensor],
        labels: Iterable[torch.Tensor | None],
        fake: Callable[[int, torch.Tensor | None], torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """One D step per real batch (with its LABELS, for a conditional GAN) against FAKE(n, labels), what D sees of
        the generator; D's loss and mean outputs on the last, detached."""
        for real, label in zip(reals, labels):
            with torch.no_grad():
                fakes = fake(len(real), label)
            with self.autocast:
                # Separate passes, as in DCGAN: D's BatchNorm must see pure real and pure fake batches,
                # as it does in the generator step (a mixed batch would normalise fakes differently there).
                real_logits = self.D(real, labels=label).float()
                fake_logits = self.D(fakes, labels=label).float()
            loss_d = self.loss.d(real_logits, fake_logits)
            if self.loss.gradient_penalty:
                loss_d = loss_d + self.gradient_penalty(real, fakes, label)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        # D(real), D(fake): probabilities for the probabilistic losses, mean critic values otherwise.
        squash = torch.sigmoid if self.loss.probabilistic else (lambda v: v)
        return {
            "loss_d": loss_d.detach(),
            "d_real": squash(real_logits.detach()).mean(),
            "d_fake": squash(fake_logits.detach()).mean(),
        }

    def gradient_penalty(self, real: torch.Tensor, fakes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """WGAN-GP's weighted penalty on D, in fp32 whatever autocast is on: its double backward
        (autograd.grad with create_graph) is a backward pass, which the AMP documentation keeps out of autocast, and
        in bf16 the gradient norm it penalises carries bf16's 3 significant digits (benchmarks/bench_gp_precision.py
        measures both ways)."""
        with torch.autocast(real.device.type, enabled=False):
            return self.gp_weight * gradient_penalty(functools.partial(self.D, labels=labels), real, fakes,
                                                     self.penalty_rng)

    def adversarial_loss(self, fake: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G's loss on D's outputs for FAKE (what D sees of the generator)."""
        with self.autocast:
            fake_logits = self.D(fake, labels=labels).float()
        return self.loss.g(fake_logits)

    def state_dict(self) -> dict:
        return self._keyed().state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._keyed().load_state_dict(state)

    def _keyed(self) -> Keyed:
        return Keyed({G_KEY: self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d})
