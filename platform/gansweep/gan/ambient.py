"""One (hidden) AmbientGAN's training step: the measurements, the hidden injection, D's steps and G's step, on the
players and the prior it is composed of (gan/build.py composes it). No Ray here.

Modes: ``ambient`` measures the fakes like the reals, D(f_theta(G(z))) against D(y_real); with
``hidden.inject_at`` the fake is G1(f_hidden(G2(z))) during training, and D sees f_theta(G1(f_hidden(G2(z))))
(``hidden.fake_measurement`` both, the combined arm) or G1(f_hidden(G2(z))) itself (hidden_only: the hidden-space
paper's objective, Section 3.2, E_y[log D(y)] + E_{z,Theta}[log(1 - D(G1(f_Theta(G2(z)))))], its reals the same
measured y). ``ignore`` and ``clean`` train a plain GAN (on the lossy, resp. clean, data). Sampling never applies a
measurement, so with the hidden one G's BatchNorm statistics, accumulated on measured feature maps, are recomputed on
clean forwards before G is sampled, reversed or saved (``calibrate``), in either arm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gansweep.data.thetas import image_seed
from gansweep.gan.base import GANTrainer
from gansweep.nets.pixels import to_unit

if TYPE_CHECKING:
    from gansweep.config.schema import Config
    from gansweep.gan.ema import GeneratorEMA
    from gansweep.gan.players import Players
    from gansweep.gan.runtime import RandomStreams
    from gansweep.gan.sampler import Sampler
    from gansweep.nets.measurements import Measurement


class AmbientGAN(GANTrainer):
    """G fed by its prior (N(0, I), or KDE-GAN's), against D on what the measurement makes of G's images (mode
    ambient; G's images themselves otherwise), with the hidden measurement inside G during training."""

    def __init__(self, cfg: Config, players: Players, prior, streams: RandomStreams, sampler: Sampler,
                 measurement: Measurement | None = None,  # f_theta applied to the fakes (None: D sees G's images)
                 hidden_measurement: Measurement | None = None,
                 ema: GeneratorEMA | None = None):
        super().__init__(cfg, players, prior, streams, sampler, ema)
        self.measurement, self.hidden_measurement = measurement, hidden_measurement
        self.inject_at = cfg.hidden.inject_point

    def fake(self, n: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What D sees of the generator, in [0, 1]: in ambient mode f_theta(G1(f_hidden(G2(z)))), no f_theta in
        the hidden-only arm and G(z) for G1(f_hidden(G2(z))) without hidden.inject_at; G(z) otherwise. And the
        hidden feature map as measured (None without hidden.inject_at)."""
        theta_stream, hidden = self.streams.theta, None
        if self.hidden_measurement is not None:
            hidden = (self.inject_at, lambda h: self.hidden_measurement(h, theta_stream))
        with self.players.autocast:
            z = self.prior.sample(n, self.streams.z)
            images, hidden_map = self.players.G(z, hidden=hidden, return_hidden=True, labels=labels)
        images = to_unit(images.float())
        if self.measurement is not None:
            images = self.measurement(images, theta_stream)
        return images, hidden_map

    def calibrate(self, step: int) -> None:
        """With the hidden measurement (and hidden.bn_stats clean): G's BatchNorm running statistics recomputed on
        clean forwards of codes from the prior. Training normalises G1's layers by the statistics of measured
        feature maps (channel Block-Pixel p=0.8 at `project` leaves up1's output with 2.3x the training path's
        standard deviation when sampled: benchmarks/bench_hidden_bn.py); sampling feeds them clean ones. The codes
        are drawn from (train.seed, STEP) alone, so every rank computes the same statistics and a resumed run the
        same as an uninterrupted one."""
        if self.hidden_measurement is not None and self.cfg.hidden.bn_stats == "clean":
            self.raw_sampler.recompute_bn_stats(image_seed(self.cfg.train.seed, step))
        super().calibrate(step)  # G's EMA, with train.ema

    def step(self, reals: list[torch.Tensor], labels: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One generator step after len(reals) discriminator steps (one real batch each). A conditional GAN gets
        each batch's class labels, and its fakes are drawn for the same labels (the data's class frequencies)."""
        players = self.players
        labels = labels if self.num_classes else None
        figures = players.discriminator_steps(reals, labels or [None] * len(reals),
                                              lambda n, label: self.fake(n, label)[0])
        last_labels = labels[-1] if labels else None
        fake, hidden_map = self.fake(len(reals[-1]), last_labels)
        loss_g = players.adversarial_loss(fake, last_labels)
        players.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        players.opt_g.step()

        self.last = {"real": reals[-1], "fake": fake.detach()}
        if hidden_map is not None:
            self.last["hidden"] = hidden_map.detach()
        return {**figures, "loss_g": loss_g.detach()}
