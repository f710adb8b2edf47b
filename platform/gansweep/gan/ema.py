"""An exponential moving average of G's weights (train.ema), the generator every evaluation and sampling tool uses
when it is on (StudioGAN and most GAN papers since 2018 report EMA samples). No Ray here.

torch's own AveragedModel keeps the average, with get_ema_multi_avg_fn's update, ema = d * ema + (1 - d) * w
(one foreach lerp over G's parameters). Its buffers are not averaged (use_buffers=False: AveragedModel copies G's):
G's BatchNorm running statistics describe G's weights, not the average's, so the trainer recomputes the average's
on clean forwards of its own before it is sampled or saved (GANTrainer.calibrate), as hidden.bn_stats clean does for
G. BatchNorm statistics of EMA'd weights, averaged instead, would mix statistics of weights the average has left.

Every rank keeps its own average: after DDP's all-reduce every rank's G has the same weights, so the averages are
the same without a collective, and the trainer needs no rank-dependent part (the cost: a copy of G and a lerp per
generator step). Rank 0's goes into the checkpoint, under its own key, in G's layout, so that a run's sampler
(gan/sampler.py's checkpoint_sampler) loads it as it loads G."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

G_EMA_KEY = "G_ema"  # the average's weights (and BatchNorm statistics) in a checkpoint: what a sampler prefers


class GeneratorEMA:
    """The moving average of GENERATOR's weights (the plain G, past any DDP wrapper) with DECAY, from generator step
    START on; before START the average is G itself. Owns the checkpoint key G_ema."""

    def __init__(self, generator: nn.Module, decay: float, start: int):
        self.generator, self.start = generator, start
        self.average = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
        self.average.requires_grad_(False)  # nothing trains it: an optimiser or a reversal never reaches it
        self.average.update_parameters(generator)  # AveragedModel's first update copies: the average starts at G

    @property
    def module(self) -> nn.Module:
        """The averaged generator, a module like G."""
        return self.average.module

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After generator step STEP (counted from 1): the average takes G's new weights in; before train.ema_start
        it is set to them (AveragedModel copies on an update with nothing averaged yet)."""
        if step < self.start:
            self.average.n_averaged.zero_()
        self.average.update_parameters(self.generator)

    def state_dict(self) -> dict:
        return {G_EMA_KEY: self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """The checkpoint's average. A checkpoint without one (written with train.ema 0) starts it from its G, which
        the players load first (GANTrainer.parts)."""
        if G_EMA_KEY in state:
            self.module.load_state_dict(state[G_EMA_KEY])
            return
        self.average.n_averaged.zero_()
        self.average.update_parameters(self.generator)
