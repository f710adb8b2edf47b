"""Clean samples of a generator, the one way every part of the platform draws them: the train loop's image
panels, the cheap evaluation while training, `gansweep evaluate`, `invert` and `holdout`; the one place that picks a
checkpoint's EMA generator over its G (checkpoint_sampler). No Ray here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from gansweep.gan.ema import G_EMA_KEY
from gansweep.gan.players import G_KEY
from gansweep.gan.priors import CODE_GENERATOR_KEY
from gansweep.gan.priors import REGISTRY as PRIORS
from gansweep.gan.runtime import full_precision, unwrap
from gansweep.nets.code_nets import CodeGenerator, CodeToImage
from gansweep.nets.models import Generator, class_cycle
from gansweep.nets.pixels import to_unit

if TYPE_CHECKING:
    from gansweep.config.schema import Config

SAMPLE_BATCH = 500  # images per forward pass
# The clean forwards G's BatchNorm statistics are recomputed on (their plain mean, as update_bn takes it): 1,024
# codes, ~0.1 s at half width on one CPU core, paid at each log, evaluation and checkpoint.
CLEAN_STATS_BATCHES, CLEAN_STATS_BATCH_SIZE = 2, 512


class _CleanForward(nn.Module):
    """G(z) without a measurement, labelled as the sampler labels it (every class in turn): what update_bn runs."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.train(generator.training)  # update_bn leaves the model in the mode it found: the generator's

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        labels = class_cycle(len(z), self.generator.num_classes)
        return self.generator(z, labels=None if labels is None else labels.to(z.device))


class Sampler:
    """Images in [0, 1] of a generator of noise z and the prior z is drawn from: no measurement, BatchNorm in eval
    mode, bypassing DDP, in batches; a conditional generator draws every class equally often unless told which.

    The generator is G, or G(C(z)) for an ACL run (CodeToImage), and the prior anything with sample(n, rng): N(0, I),
    or a KDE-GAN's KDE over reversed codes (N(0, I) before its first refresh)."""

    def __init__(self, generator: nn.Module, prior, averaged: bool = False):
        self.generator = unwrap(generator)
        self.prior = prior
        self.averaged = averaged  # whether the generator is an EMA of G's weights (gan/ema.py), not G

    def of_averaged(self, average: nn.Module) -> Sampler:
        """A sampler of the same prior whose image generator is AVERAGE, G's EMA: fed C(z) as G is, for an ACL
        run."""
        generator = self.generator
        if isinstance(generator, CodeToImage):
            average = CodeToImage(generator.code_generator, average)
        return Sampler(average, self.prior, averaged=True)

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.generator.image_shape

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: torch.device) -> Sampler:
        """This sampler with its generator on DEVICE (the prior's draws follow: see draw)."""
        self.generator.to(device)
        return self

    @torch.no_grad()
    def images(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The images of the noise Z (of LABELS' classes; by default every class in turn, for a conditional G)."""
        if labels is None:
            labels = class_cycle(len(z), self.num_classes)
        generator, device, batches = self.generator, self.device, []
        training = generator.training
        generator.eval()
        try:
            for start in range(0, len(z), SAMPLE_BATCH):
                batch_labels = None if labels is None else labels[start:start + SAMPLE_BATCH].to(device)
                images = generator(z[start:start + SAMPLE_BATCH].to(device), labels=batch_labels)
                batches.append(to_unit(images.float()))
        finally:
            generator.train(training)  # a training G goes on training
        return torch.cat(batches)

    def recompute_bn_stats(self, seed: int) -> None:
        """The generator's BatchNorm running statistics recomputed on clean forwards of codes from the prior, drawn by
        a CPU random generator seeded SEED; the generator stays in the mode it was in (update_bn restores it)."""
        rng = torch.Generator().manual_seed(seed)
        device = self.device
        batches = [self.prior.sample(CLEAN_STATS_BATCH_SIZE, rng).to(device) for _ in range(CLEAN_STATS_BATCHES)]
        update_bn(batches, _CleanForward(self.generator))

    def draw(self, n: int, seed: int) -> torch.Tensor:
        """N images of z drawn from the prior by a CPU random generator seeded SEED: the same z for the same seed
        on every device (a CUDA generator's draws differ from the CPU's), computed in full precision (no TF32):
        these are the images an evaluation scores, so a GPU's figures are the CPU's up to rounding."""
        with full_precision():
            return self.images(self.prior.sample(n, torch.Generator().manual_seed(seed)))


def checkpoint_sampler(cfg: Config, clean_shape: tuple[int, int, int], num_classes: int, state: dict,
                       raw: bool = False) -> Sampler:
    """The sampler a checkpoint's STATE describes (a run's state.pt, of CFG, for a training set of NUM_CLASSES
    classes): G's EMA where the checkpoint has one (train.ema), unless RAW, else G, with its weights, fed C(z) for an
    ACL run; the prior a KDE-GAN's KDE, else N(0, I)."""
    m = cfg.model
    generator = Generator(clean_shape, z_dim=m.z_dim, width=m.g_width, num_classes=num_classes if m.conditional else 0)
    averaged = G_EMA_KEY in state and not raw
    generator.load_state_dict(state[G_EMA_KEY if averaged else G_KEY])
    if cfg.acl.variant != "none":  # ACL's prior is C(z) of z ~ N(0, I): sampled (and reversed) as G(C(z)) of z
        code_generator = CodeGenerator(m.z_dim, cfg.acl.code_width)
        code_generator.load_state_dict(state[CODE_GENERATOR_KEY])
        generator = CodeToImage(code_generator, generator)
    return Sampler(generator.eval(), PRIORS[cfg.prior.name].sampling_prior(cfg, state), averaged=averaged)
