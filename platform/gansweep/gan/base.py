"""What every GAN trainer is made of (AmbientGAN and ACL's are siblings built on it). No Ray here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gansweep.data.thetas import image_seed

if TYPE_CHECKING:
    from gansweep.config.schema import Config
    from gansweep.gan.ema import GeneratorEMA
    from gansweep.gan.players import Players
    from gansweep.gan.runtime import RandomStreams
    from gansweep.gan.sampler import Sampler


class GANTrainer:
    """The players, the prior G is fed (PRIOR.sample, PRIOR.due, and KDE-GAN's PRIOR.refresh), this rank's random
    streams, the sampler of G's clean samples (raw_sampler) and, with train.ema, G's moving average EMA;
    ``sampler`` is what evaluations and image panels draw from: the average's when there is one, else G's. ``step``
    is the trainer's own. The checkpoint state is the union of the parts' state dicts, each part owning its keys."""

    def __init__(self, cfg: Config, players: Players, prior, streams: RandomStreams, sampler: Sampler,
                 ema: GeneratorEMA | None = None):
        self.cfg, self.players, self.prior, self.streams, self.ema = cfg, players, prior, streams, ema
        self.raw_sampler = sampler
        self.sampler = sampler if ema is None else sampler.of_averaged(ema.module)
        self.last: dict[str, torch.Tensor] = {}  # tensors of the last step, for image summaries

    @property
    def z_dim(self) -> int:
        return self.sampler.z_dim

    @property
    def num_classes(self) -> int:
        """The classes G and D are conditioned on (0: unconditional)."""
        return self.sampler.num_classes

    def step(self, reals: list[torch.Tensor], labels: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One training step on len(REALS) real batches (their class LABELS for a conditional GAN). Returns detached
        scalar tensors; converting them to floats is left to the caller, so an unlogged step never waits for the
        device."""
        raise NotImplementedError

    def average(self, step: int) -> None:
        """After generator step STEP: G's moving average takes G's new weights in (with train.ema)."""
        if self.ema is not None:
            self.ema.update(step)

    def calibrate(self, step: int) -> None:
        """Bring what an eval-mode G reads up to date before it is sampled, reversed or saved at STEP (AmbientGAN's
        hidden measurement: G's BatchNorm statistics). Here, G's moving average's BatchNorm statistics, recomputed
        on its clean forwards of codes drawn from (train.seed, STEP) alone (the same on every rank, and in a resumed
        run as in an uninterrupted one): those it holds are G's (gan/ema.py). Not with hidden.bn_stats measured,
        which keeps the statistics training accumulates (G's) by choice."""
        hidden_measured = self.cfg.hidden.inject_at is not None and self.cfg.hidden.bn_stats == "measured"
        if self.ema is not None and not hidden_measured:
            self.sampler.recompute_bn_stats(image_seed(self.cfg.train.seed, step))

    def parts(self) -> list:
        """What the checkpoint holds, each part with its own keys (the random streams are saved per rank apart); G's
        moving average after the players, whose G it starts from when a checkpoint has none."""
        return [self.players, self.prior] + ([self.ema] if self.ema is not None else [])

    def state_dict(self) -> dict:
        state = {}
        for part in self.parts():
            state |= part.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for part in self.parts():
            part.load_state_dict(state)

    def rng_state(self) -> dict[str, torch.Tensor]:
        """This rank's random streams; each rank has its own, so a checkpoint keeps all of them."""
        return self.streams.state_dict()

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        self.streams.load_state_dict(state)
