"""Adversarial code learning (Yuan et al., "Adversarial Code Learning for Image Generation"). No Ray here.

An encoder E maps images to codes c = E(x); a code generator C maps noise z ~ N(0, I) to codes, and a code
discriminator D_c plays the GAN game of Eq. 1 on codes (real: E(x), fake: C(z)), so that C(z) learns E's code
distribution. The image generator G draws images from codes; samples are G(C(z)).

- ACL-GAN (acl.variant=gan, Eq. 6 and Algorithm 1): lambda_2 ||Phi(x) - Phi(G(E(x)))||^2, Phi being D's last
  features (Larsen et al.'s feature-wise reconstruction), trains E and G; the image GAN loss on G(C(z)) trains
  G and D (lambda_3); the code GAN trains C and D_c (lambda_4). With train.loss=wgan_gp this is ACL-GAN-GP.
- ACL-AE (acl.variant=ae, Eq. 3): an autoencoder (E, G as decoder) on ||x - G(E(x))||^2 plus lambda_1 times the
  code GAN; there is no image discriminator.

As in Algorithm 1, the code GAN's target E(x) is detached (the code distribution is fixed to the code learner)
and G's image GAN loss does not reach C: C learns only from D_c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.data.training_set import to_unit
from gansweep.gan.ambient import AmbientGAN, unwrap
from gansweep.nets.losses import d_loss, g_loss
from gansweep.nets.models import Generator, conv_body, init_weights

CODE_LOSS = "non_saturating"  # Eq. 1 is the original GAN game; its practical generator loss


class Encoder(nn.Module):
    """E(x): images (C, H, W) in [0, 1] to codes (z_dim,), a DCGAN discriminator's body with a linear head.

    The codes are standardised per dimension (BatchNorm without affine): a free linear head drifted to codes
    ~3x the scale of N(0, I) within 50 steps on Fashion-MNIST, which C (starting near N(0, I)) then chased
    for hundreds of steps while G learnt from two different input distributions."""

    def __init__(self, image_shape: tuple[int, int, int], z_dim: int, width: int = 64):
        super().__init__()
        self.body, n_features = conv_body(tuple(image_shape), width, "batch")
        self.head = nn.Sequential(nn.Linear(n_features, z_dim), nn.BatchNorm1d(z_dim, affine=False))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class CodeGenerator(nn.Module):
    """C(z) = z + MLP(z): the paper's two-layer MLP as a residual, so C starts at the identity, i.e. at N(0, I),
    the moments of the standardised encoder codes, and the code GAN learns only their shape."""

    def __init__(self, z_dim: int, width: int):
        super().__init__()
        self.mlp = two_layer_mlp(z_dim, width, z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.mlp(z)


def two_layer_mlp(n_in: int, width: int, n_out: int) -> nn.Sequential:
    """The paper's ACL nets (section 5: "simple 2-layer MLPs"): C (codes out) and D_c (one logit out). PyTorch's
    default initialisation: DCGAN's N(0, 0.02) would start C with codes near 0, far from any encoder's."""
    return nn.Sequential(nn.Linear(n_in, width), nn.LeakyReLU(0.2), nn.Linear(width, n_out))


class CodeToImage(nn.Module):
    """G(C(z)): an ACL run's sampler, a generator of noise z ~ N(0, I) like a plain G (z_dim, forward)."""

    def __init__(self, code_generator: nn.Module, generator: Generator):
        super().__init__()
        self.code_generator, self.generator = code_generator, generator
        self.z_dim, self.image_shape, self.num_classes = generator.z_dim, generator.image_shape, 0

    def forward(self, z: torch.Tensor, labels: None = None) -> torch.Tensor:
        return self.generator(self.code_generator(z), labels=labels)


def code_gan_step(code_generator: nn.Module, code_discriminator: nn.Module, opt_c, opt_dc,
                  real_codes: torch.Tensor, z: torch.Tensor, weight: float = 1.0) -> dict[str, torch.Tensor]:
    """One step of Eq. 1: D_c on REAL_CODES against C(Z), then C against D_c; both losses times WEIGHT."""
    fake_codes = code_generator(z)
    loss_dc = weight * d_loss(CODE_LOSS, code_discriminator(real_codes.detach()).squeeze(1),
                              code_discriminator(fake_codes.detach()).squeeze(1))
    opt_dc.zero_grad(set_to_none=True)
    loss_dc.backward()
    opt_dc.step()
    loss_c = weight * g_loss(CODE_LOSS, code_discriminator(fake_codes).squeeze(1))
    opt_c.zero_grad(set_to_none=True)
    loss_c.backward()
    opt_c.step()
    return {"loss_code_d": loss_dc.detach(), "loss_code_g": loss_c.detach()}


class ACLGAN(AmbientGAN):
    """ACL-GAN (-GP) or ACL-AE on clean (or restored / lossy-as-is) images: mode ambient is refused by the config."""

    def __init__(self, cfg, clean_shape, device="cpu", wrap=lambda m: m, rank: int = 0, num_classes: int = 0,
                 thetas=None):
        super().__init__(cfg, clean_shape, device, wrap, rank, num_classes, thetas)
        a, z_dim = cfg.acl, cfg.model.z_dim
        torch.manual_seed(cfg.train.seed + 1)  # same initial weights on every rank
        code_generator, code_discriminator = CodeGenerator(z_dim, a.code_width), two_layer_mlp(z_dim, a.code_width, 1)
        self.E = wrap(Encoder(clean_shape, z_dim, cfg.model.d_width).to(self.device))
        self.C = wrap(code_generator.to(self.device))
        self.D_code = wrap(code_discriminator.to(self.device))
        self.opt_e = self.adam(self.E, cfg.train.lr_g)
        self.opt_c = self.adam(self.C, cfg.train.lr_g)
        self.opt_dc = self.adam(self.D_code, cfg.train.lr_d)

    @property
    def trains_discriminator(self) -> bool:
        return self.cfg.acl.variant == "gan"

    def noise(self, n: int) -> torch.Tensor:
        """G's input codes C(z), z ~ N(0, I), without C's graph: C learns from D_c alone (Algorithm 1)."""
        with torch.no_grad():
            return unwrap(self.C)(super().noise(n))

    def step(self, reals: list[torch.Tensor], labels: list | None = None) -> dict[str, torch.Tensor]:
        """The code GAN, then (ACL-GAN) D's steps, then one step of G and E on reconstruction (+ G's GAN loss).
        LABELS are ignored: ACL is unconditional (the config refuses model.conditional with it)."""
        a, real = self.cfg.acl, reals[-1]
        with self.autocast:
            codes = self.E(real)
        figures = code_gan_step(self.C, self.D_code, self.opt_c, self.opt_dc, codes.detach().float(),
                                super().noise(len(real)), a.code_weight)
        if self.D is not None:
            figures |= self.discriminator_steps(reals)

        with self.autocast:
            reconstruction = to_unit(self.G(codes).float())
        if self.D is None:  # ACL-AE: pixel-wise, Eq. 2
            loss_rec = F.mse_loss(reconstruction, real)
            loss = a.rec_weight * loss_rec
        else:
            # Eq. 4 through D's last features. Its body alone, outside the DDP wrapper: only G and E learn
            # from it (D's gradients from this loss are discarded by D's next zero_grad).
            features = unwrap(self.D).features
            with self.autocast:
                loss_rec = F.mse_loss(features(reconstruction).float(), features(real).detach().float())
            fake, _ = self.fake(len(real))
            loss_g = self.adversarial_loss(fake)
            loss = a.rec_weight * loss_rec + a.gan_weight * loss_g
            figures["loss_g"] = loss_g.detach()
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_e.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.opt_e.step()

        # ACL-AE draws no fake in its step; its samples are the fixed-z panel.
        self.last = {"real": real, "reconstruction": reconstruction.detach()}
        if self.D is not None:
            self.last["fake"] = fake.detach()
        return {**figures, "loss_rec": loss_rec.detach()}

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: None = None) -> torch.Tensor:
        """Clean samples G(C(z)) in [0, 1] of noise z ~ N(0, I) (ACL is unconditional: LABELS must be None)."""
        return super().sample(unwrap(self.C)(z.to(self.device)), labels)

    def _nets(self) -> dict[str, nn.Module]:
        return {"E": unwrap(self.E), "C": unwrap(self.C), "D_code": unwrap(self.D_code)}

    def _optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_e": self.opt_e, "opt_c": self.opt_c, "opt_dc": self.opt_dc}

    def state_dict(self) -> dict:
        parts = {**self._nets(), **self._optimisers()}
        return {**super().state_dict(), **{key: part.state_dict() for key, part in parts.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for key, part in {**self._nets(), **self._optimisers()}.items():
            part.load_state_dict(state[key])


def build_gan(cfg, clean_shape, device="cpu", wrap=lambda m: m, rank: int = 0, num_classes: int = 0,
              thetas=None) -> AmbientGAN:
    """The trainer for CFG: ACLGAN when acl.variant is set, else AmbientGAN (plain, ambient, hidden, KDE-GAN,
    conditional)."""
    cls = ACLGAN if cfg.acl.variant != "none" else AmbientGAN
    return cls(cfg, clean_shape, device, wrap, rank, num_classes, thetas)


def load_code_generator(cfg, state: dict) -> nn.Module:
    """C with a checkpoint's weights (STATE: an ACL run's state.pt)."""
    code_generator = CodeGenerator(cfg.model.z_dim, cfg.acl.code_width)
    code_generator.load_state_dict(state["C"])
    return code_generator
