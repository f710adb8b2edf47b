"""One (hidden) AmbientGAN: G, D, their optimisers, the measurements, and the training step. No Ray here.

Modes: ``ambient`` measures the fakes like the reals, D(f_theta(G(z))) against D(y_real); with
``hidden.inject_at`` the fake is G1(f_hidden(G2(z))) during training. ``ignore`` and ``clean`` train a
plain GAN (on the lossy, resp. clean, data). Sampling never applies a measurement.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import nn

from gansweep.config import Config
from gansweep.data.thetas import ThetaStore, concat_thetas
from gansweep.data.training_set import to_unit
from gansweep.gan.priors import KDEPrior
from gansweep.gan.reversal import reverse
from gansweep.nets.losses import PROBABILISTIC, d_loss, g_loss, gradient_penalty
from gansweep.nets.measurements import build_measurement
from gansweep.nets.models import Discriminator, Generator


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module behind a DDP wrapper (single-rank forward passes must bypass DDP)."""
    return getattr(module, "module", module)


class AmbientGAN:
    def __init__(
        self,
        cfg: Config,
        clean_shape: tuple[int, int, int],
        device: torch.device | str = "cpu",
        wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
        rank: int = 0,
        num_classes: int = 0,  # classes of the training set: G and D are conditioned on them with model.conditional
        thetas: ThetaStore | None = None,
    ):
        """THETAS: the lossy set's theta store, which KDE-GAN needs in mode ambient (Config.needs_theta)."""
        self.cfg = cfg
        self.num_classes = num_classes if cfg.model.conditional else 0
        if cfg.model.conditional and num_classes < 2:
            raise ValueError(f"model.conditional needs labelled data with >= 2 classes, got num_classes={num_classes}")
        self.thetas = thetas
        self.device = torch.device(device)
        ambient = cfg.mode == "ambient"
        self.measurement = build_measurement(asdict(cfg.measurement)) if ambient else None
        self.hidden_measurement = build_measurement(asdict(cfg.hidden.measurement)) if ambient else None
        self.inject_at = cfg.hidden.inject_point

        # Same initial weights on every rank (DDP also broadcasts rank 0's).
        torch.manual_seed(cfg.train.seed)
        generator = Generator(clean_shape, z_dim=cfg.model.z_dim, width=cfg.model.g_width, num_classes=self.num_classes)
        self.G = wrap(generator.to(self.device))
        self.opt_g = self.adam(self.G, cfg.train.lr_g)
        self.D = self.opt_d = None
        if self.trains_discriminator:
            d_shape = self.measurement.output_shape(clean_shape) if self.measurement else clean_shape
            discriminator = Discriminator(d_shape, width=cfg.model.d_width, norm=cfg.model.d_norm,
                                          num_classes=self.num_classes)
            self.D = wrap(discriminator.to(self.device))
            self.opt_d = self.adam(self.D, cfg.train.lr_d)
        t = cfg.train

        # Dedicated generators: z and the fakes' theta are reproducible per rank and resume exactly.
        self.z_generator = torch.Generator(self.device).manual_seed(t.seed * 1000 + 2 * rank)
        self.theta_generator = torch.Generator(self.device).manual_seed(t.seed * 1000 + 2 * rank + 1)
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        )
        self.last: dict[str, torch.Tensor] = {}  # tensors of the last step, for image summaries
        self.prior: KDEPrior | None = None  # KDE-GAN: set by refresh_prior; None: z ~ N(0, I)
        # reversal.warm_start: each image's last reversed code, by its index in the training set (not checkpointed).
        self.code_bank: dict[int, torch.Tensor] = {}

    @property
    def trains_discriminator(self) -> bool:
        """Whether there is an image discriminator D (ACL-AE has none)."""
        return True

    def adam(self, module: nn.Module, lr: float) -> torch.optim.Adam:
        t = self.cfg.train
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(t.beta1, t.beta2))

    @property
    def z_dim(self) -> int:
        return unwrap(self.G).z_dim

    def noise(self, n: int) -> torch.Tensor:
        """Codes from the prior: the KDE over reversed codes once estimated (KDE-GAN), else N(0, I)."""
        if self.prior is not None:
            return self.prior.sample(n, self.z_generator)
        return torch.randn(n, self.z_dim, device=self.device, generator=self.z_generator)

    def prior_due(self, step: int) -> bool:
        """Whether KDE-GAN re-estimates its prior before generator step STEP (counted from 1): when it has none
        yet (a start, or a resume) and every prior.refresh_every steps (every step: Algorithm 2)."""
        return self.cfg.prior.name == "kde" and (self.prior is None or (step - 1) % self.cfg.prior.refresh_every == 0)

    def refresh_prior(self, reals: torch.Tensor, indices: torch.Tensor | None = None) -> dict[str, float]:
        """KDE-GAN (Kilcher et al., Algorithm 2): reverse a real batch through G (eval mode: BatchNorm's
        running statistics keep the images independent) and make the KDE over its codes the new prior. With
        reversal.mmd_threshold, a generated batch is reversed alongside and the MMD rule stops the reversal.
        In mode ambient the reals are measurements y, each reversed through f_theta with its own theta
        (looked up by INDICES, the images' positions in the training set)."""
        r, p = self.cfg.reversal, self.cfg.prior
        generator = unwrap(self.G)
        generator.eval()
        try:
            fakes = None
            if r.mmd_threshold > 0:
                with torch.no_grad():
                    fakes = generator(self.noise(len(reals)))
            if self.measurement is None:
                targets, measure = reals * 2 - 1, None  # G's images are in [-1, 1]
            else:
                targets, fakes, measure = self._measured_targets(reals, indices, fakes)
            init = self._warm_codes(indices, len(reals)) if r.warm_start and indices is not None else None
            result = reverse(generator, targets, lr=r.lr, max_steps=r.max_steps, init_std=r.init_std, fakes=fakes,
                             measure=measure, mmd_bandwidth=r.mmd_bandwidth, mmd_threshold=r.mmd_threshold or None,
                             init=init, rng=self.z_generator)
        finally:
            generator.train()
        codes = result.codes
        if self.prior is not None and p.pool > 1:  # the newest codes first, then the last refreshes' (older G)
            codes = torch.cat([codes, self.prior.codes])[: p.pool * len(result.codes)]
        self.prior = KDEPrior(codes, p.bandwidth, p.background_weight)
        if r.warm_start and indices is not None:
            self.code_bank.update(zip(indices.tolist(), result.codes))
        figures = {"reversal_steps": float(result.steps), "reversal_error": result.errors[-1]}
        if result.mmd2:
            figures["reversal_mmd2"] = result.mmd2[-1]
        return figures

    def _measured_targets(
        self, reals: torch.Tensor, indices: torch.Tensor | None, fakes: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, Callable[[torch.Tensor], torch.Tensor]]:
        """An ambient reversal's targets (the measured reals y, in their own [0, 1]), its fakes measured with
        freshly drawn theta, and the measurement that maps G's images to what each target is: f_theta with
        the reals' stored theta followed by the fakes' (reverse() stacks the fakes after the reals)."""
        if self.thetas is None or indices is None:
            raise ValueError("a KDE-GAN reversal in mode ambient needs the lossy set's theta store and the batch's "
                             "indices in the training set")
        theta = self.thetas.rows(indices, self.device)
        if fakes is not None:
            fakes = to_unit(fakes)
            fake_theta = self.measurement.sample_theta(fakes, self.theta_generator)
            fakes = self.measurement.measure(fakes, fake_theta)
            theta = concat_thetas([theta, fake_theta])
        # G's clean forward, then the image-space measurement: with hidden.inject_at too, for y was measured
        # from a clean image; the hidden measurement only shapes G's training.
        return reals, fakes, lambda images: self.measurement.measure(to_unit(images), theta)

    def fake(self, n: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What D sees of the generator: f_theta(G1(f_hidden(G2(z)))) in ambient mode, G(z) otherwise, in [0, 1]."""
        hidden = None
        if self.hidden_measurement is not None:
            hidden = (self.inject_at, lambda h: self.hidden_measurement(h, self.theta_generator))
        with self.autocast:
            images, hidden_map = self.G(self.noise(n), hidden=hidden, return_hidden=True, labels=labels)
        images = to_unit(images.float())
        if self.measurement is not None:
            images = self.measurement(images, self.theta_generator)
        return images, hidden_map

    def step(self, reals: list[torch.Tensor], labels: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One generator step after len(reals) discriminator steps (one real batch each). A conditional GAN gets
        each batch's class labels, and its fakes are drawn for the same labels (the data's class frequencies).

        Returns detached scalar tensors; converting them to floats is left to the caller, so an
        unlogged step never waits for the device.
        """
        labels = labels if self.num_classes else None
        figures = self.discriminator_steps(reals, labels)
        last_labels = labels[-1] if labels else None
        fake, hidden_map = self.fake(len(reals[-1]), last_labels)
        loss_g = self.adversarial_loss(fake, last_labels)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        self.last = {"real": reals[-1], "fake": fake.detach()}
        if hidden_map is not None:
            self.last["hidden"] = hidden_map.detach()
        return {**figures, "loss_g": loss_g.detach()}

    def adversarial_loss(self, fake: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G's loss on D's outputs for FAKE (what D sees of the generator)."""
        with self.autocast:
            fake_logits = self.D(fake, labels=labels).float()
        return g_loss(self.cfg.train.loss, fake_logits)

    def discriminator_steps(self, reals: list[torch.Tensor], labels: list | None = None) -> dict[str, torch.Tensor]:
        """One D step per real batch against fresh fakes (of the batch's labels, for a conditional GAN); D's loss
        and mean outputs on the last, detached."""
        for real, label in zip(reals, labels or [None] * len(reals)):
            with torch.no_grad():
                fake, _ = self.fake(len(real), label)
            with self.autocast:
                # Separate passes, as in DCGAN: D's BatchNorm must see pure real and pure fake batches,
                # as it does in the generator step (a mixed batch would normalise fakes differently there).
                real_logits = self.D(real, labels=label).float()
                fake_logits = self.D(fake, labels=label).float()
            loss_d = d_loss(self.cfg.train.loss, real_logits, fake_logits)
            if self.cfg.train.loss == "wgan_gp":
                with self.autocast:
                    loss_d = loss_d + self.cfg.train.gp_weight * gradient_penalty(
                        functools.partial(self.D, labels=label), real, fake, self.theta_generator).float()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        # D(real), D(fake): probabilities for the probabilistic losses, mean critic values otherwise.
        squash = torch.sigmoid if self.cfg.train.loss in PROBABILISTIC else (lambda v: v)
        return {
            "loss_d": loss_d.detach(),
            "d_real": squash(real_logits.detach()).mean(),
            "d_fake": squash(fake_logits.detach()).mean(),
        }

    def _warm_codes(self, indices: torch.Tensor, n: int) -> torch.Tensor:
        """Initial codes: each image's last reversed code where it has one, else N(0, init_std^2)."""
        init = torch.randn(n, self.z_dim, device=self.device, generator=self.z_generator) * self.cfg.reversal.init_std
        for row, index in enumerate(indices.tolist()):
            if index in self.code_bank:
                init[row] = self.code_bank[index]
        return init

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Clean samples in [0, 1] (of the given classes, for a conditional GAN): no measurement, BatchNorm in
        eval mode, bypassing DDP."""
        generator = unwrap(self.G)
        generator.eval()
        try:
            labels = labels.to(self.device) if labels is not None else None
            return to_unit(generator(z.to(self.device), labels=labels).float())
        finally:
            generator.train()

    def state_dict(self) -> dict:
        return {
            "G": unwrap(self.G).state_dict(),
            "D": unwrap(self.D).state_dict() if self.D is not None else {},
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.D is not None else {},
            # The prior is part of the model: the codes of its KDE (empty for N(0, I)).
            "prior_codes": self.prior.codes.cpu() if self.prior is not None else torch.empty(0),
        }

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.G).load_state_dict(state["G"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.D is not None:
            unwrap(self.D).load_state_dict(state["D"])
            self.opt_d.load_state_dict(state["opt_d"])
        codes = state.get("prior_codes")
        self.prior = KDEPrior.from_checkpoint(None if codes is None else codes.to(self.device), self.cfg.prior)

    def rng_state(self) -> dict[str, torch.Tensor]:
        """This rank's random streams (z and theta); each rank has its own, so a checkpoint keeps all of them."""
        return {"z": self.z_generator.get_state(), "theta": self.theta_generator.get_state()}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        self.z_generator.set_state(state["z"].cpu())
        self.theta_generator.set_state(state["theta"].cpu())
