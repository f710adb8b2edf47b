"""Adversarial code learning (Yuan et al., "Adversarial Code Learning for Image Generation"): the code GAN and the
ACL trainer, a sibling of AmbientGAN on the same players (its nets are in nets/code_nets.py). No Ray here.

An encoder E maps images to codes c = E(x); a code generator C maps noise z ~ N(0, I) to codes, and a code
discriminator D_c plays the GAN game of Eq. 1 on codes (real: E(x), fake: C(z)), so that C(z) learns E's code
distribution. The image generator G draws images from codes; samples are G(C(z)): C(z) is G's prior.

- ACL-GAN (acl.variant=gan, Eq. 6 and Algorithm 1): lambda_2 ||Phi(x) - Phi(G(E(x)))||^2, Phi being D's last
  features (Larsen et al.'s feature-wise reconstruction), trains E and G as Eq. 4 and 6 minimise it, or E alone
  as Algorithm 1 (line 11) updates it (acl.rec_trains=encoder); the image GAN loss on G(C(z)) trains G and D
  (lambda_3); the code GAN trains C and D_c (lambda_4). With train.loss=wgan_gp this is ACL-GAN-GP.
- ACL-AE (acl.variant=ae, Eq. 3): an autoencoder (E, G as decoder) on ||x - G(E(x))||^2 plus lambda_1 times the
  code GAN; there is no image discriminator.

As in Algorithm 1, the code GAN's target E(x) is detached (the code distribution is fixed to the code learner)
and G's image GAN loss does not reach C: C learns only from D_c.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.gan.base import GANTrainer
from gansweep.gan.players import adam
from gansweep.gan.runtime import Keyed, unwrap
from gansweep.nets.losses import REGISTRY as LOSSES
from gansweep.nets.pixels import to_unit

if TYPE_CHECKING:
    from gansweep.config.schema import Config
    from gansweep.gan.ema import GeneratorEMA
    from gansweep.gan.players import Players
    from gansweep.gan.priors import CodePrior
    from gansweep.gan.runtime import RandomStreams
    from gansweep.gan.sampler import Sampler

CODE_LOSS = LOSSES["non_saturating"]  # Eq. 1 is the original GAN game; its practical generator loss


def code_gan_step(code_generator: nn.Module, code_discriminator: nn.Module, opt_c, opt_dc,
                  real_codes: torch.Tensor, z: torch.Tensor, weight: float = 1.0) -> dict[str, torch.Tensor]:
    """One step of Eq. 1: D_c on REAL_CODES against C(Z), then C against D_c; both losses times WEIGHT."""
    fake_codes = code_generator(z)
    loss_dc = weight * CODE_LOSS.d(code_discriminator(real_codes.detach()).squeeze(1),
                              code_discriminator(fake_codes.detach()).squeeze(1))
    opt_dc.zero_grad(set_to_none=True)
    loss_dc.backward()
    opt_dc.step()
    loss_c = weight * CODE_LOSS.g(code_discriminator(fake_codes).squeeze(1))
    opt_c.zero_grad(set_to_none=True)
    loss_c.backward()
    opt_c.step()
    return {"loss_code_d": loss_dc.detach(), "loss_code_g": loss_c.detach()}


class ACLGAN(GANTrainer):
    """ACL-GAN (-GP) or ACL-AE on clean (or restored / lossy-as-is) images: mode ambient is refused by the config.
    G is fed its prior C(z); the encoder E, the code discriminator D_c and the optimisers of E, C and D_c are the
    trainer's own, and so are their checkpoint keys E, D_code, opt_e, opt_c and opt_dc."""

    def __init__(self, cfg: Config, players: Players, prior: CodePrior, streams: RandomStreams, sampler: Sampler,
                 encoder: nn.Module, code_discriminator: nn.Module, ema: GeneratorEMA | None = None):
        super().__init__(cfg, players, prior, streams, sampler, ema)
        t = cfg.train
        self.E, self.D_code = encoder, code_discriminator
        self.opt_e = adam(self.E, t.lr_g, t)
        self.opt_c = adam(prior.C, t.lr_g, t)
        self.opt_dc = adam(self.D_code, t.lr_d, t)

    def fake(self, n: int) -> torch.Tensor:
        """G(C(z)) in [0, 1], what D sees of the generator."""
        with self.players.autocast:
            images = self.players.G(self.prior.sample(n, self.streams.z))
        return to_unit(images.float())

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        """G(CODES) in [0, 1]. With acl.rec_trains=encoder, G's plain module on its weights detached: the
        reconstruction's gradient reaches E through G but none reaches G's weights, so the one backward pass gives
        them their GAN loss's gradient alone (and G's DDP wrapper syncs that, from the pass on G(C(z)))."""
        generator = self.players.G
        with self.players.autocast:
            if self.cfg.acl.rec_trains == "encoder":
                plain = unwrap(generator)
                weights = {name: weight.detach() for name, weight in plain.named_parameters()}
                return to_unit(torch.func.functional_call(plain, weights, (codes,)).float())
            return to_unit(generator(codes).float())

    def step(self, reals: list[torch.Tensor], labels: list | None = None) -> dict[str, torch.Tensor]:
        """The code GAN, then (ACL-GAN) D's steps, then one step of G and E on reconstruction (+ G's GAN loss; G on
        that alone with acl.rec_trains=encoder).
        LABELS are ignored: ACL is unconditional (the config refuses model.conditional with it)."""
        a, players, real = self.cfg.acl, self.players, reals[-1]
        with players.autocast:
            codes = self.E(real)
        figures = code_gan_step(self.prior.C, self.D_code, self.opt_c, self.opt_dc, codes.detach().float(),
                                self.prior.noise(len(real), self.streams.z), a.code_weight)
        if players.D is not None:
            figures |= players.discriminator_steps(reals, [None] * len(reals), lambda n, _: self.fake(n))

        reconstruction = self.reconstruct(codes)
        if players.D is None:  # ACL-AE: pixel-wise, Eq. 2
            loss_rec = F.mse_loss(reconstruction, real)
            loss = a.rec_weight * loss_rec
        else:
            # Eq. 4 through D's last features. Its body alone, outside the DDP wrapper: only G and E learn
            # from it (D's gradients from this loss are discarded by D's next zero_grad).
            features = unwrap(players.D).features
            with players.autocast:
                loss_rec = F.mse_loss(features(reconstruction).float(), features(real).detach().float())
            fake = self.fake(len(real))
            loss_g = players.adversarial_loss(fake)
            loss = a.rec_weight * loss_rec + a.gan_weight * loss_g
            figures["loss_g"] = loss_g.detach()
        players.opt_g.zero_grad(set_to_none=True)
        self.opt_e.zero_grad(set_to_none=True)
        loss.backward()
        players.opt_g.step()
        self.opt_e.step()

        # ACL-AE draws no fake in its step; its samples are the fixed-z panel.
        self.last = {"real": real, "reconstruction": reconstruction.detach()}
        if players.D is not None:
            self.last["fake"] = fake.detach()
        return {**figures, "loss_rec": loss_rec.detach()}

    def parts(self) -> list:
        own = {"E": self.E, "D_code": self.D_code, "opt_e": self.opt_e, "opt_c": self.opt_c, "opt_dc": self.opt_dc}
        return [*super().parts(), Keyed(own)]
