"""A run's trainer composed of its parts: the players, the prior, this rank's random streams and the sampler, with
the measurements (AmbientGAN) or the code nets (ACL). No Ray here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from gansweep.config.checks import Measurements, check_shapes, validate
from gansweep.gan.acl import ACLGAN
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.base import GANTrainer
from gansweep.gan.ema import GeneratorEMA
from gansweep.gan.players import Players
from gansweep.gan.priors import REGISTRY as PRIORS
from gansweep.gan.priors import CodePrior, NormalPrior
from gansweep.gan.runtime import RandomStreams, unwrap
from gansweep.gan.sampler import Sampler
from gansweep.nets.code_nets import CodeGenerator, CodeToImage, Encoder, two_layer_mlp

if TYPE_CHECKING:
    from gansweep.config.schema import Config


def build_gan(
    cfg: Config,
    clean_shape: tuple[int, int, int],
    device: torch.device | str = "cpu",
    wrap: Callable[[nn.Module], nn.Module] = lambda m: m,  # DDP's prepare_model on a Ray Train worker
    rank: int = 0,
    num_classes: int = 0,  # classes of the training set: G and D are conditioned on them with model.conditional
    measurements: Measurements | None = None,
) -> GANTrainer:
    """The trainer for CFG: ACLGAN when acl.variant is set, else AmbientGAN (plain, ambient, hidden, KDE-GAN,
    conditional). MEASUREMENTS: the run's, as its plan ships them (else CFG's, as validate builds them). Raises ConfigError for a CFG that
    cannot run on images of CLEAN_SHAPE from NUM_CLASSES classes (config.check_shapes)."""
    measurements = measurements or validate(cfg)
    check_shapes(cfg, measurements, clean_shape, num_classes)
    num_classes = num_classes if cfg.model.conditional else 0
    device = torch.device(device)
    streams = RandomStreams(cfg.train.seed, rank, device)
    if cfg.acl.variant != "none":
        return _acl_gan(cfg, clean_shape, device, wrap, streams)

    ambient = cfg.mode == "ambient"
    measurement = measurements.image if ambient else None  # what made the reals y = f_theta(x) D sees
    hidden_measurement = measurements.hidden if ambient else None
    # The fakes pass through it too, except in the hidden-only arm (config/checks.py: the shapes then agree).
    fake_measurement = None if cfg.hidden.fake_measurement == "hidden_only" else measurement
    d_shape = measurement.output_shape(clean_shape) if measurement else clean_shape
    players = Players(cfg, clean_shape, d_shape, num_classes, device, wrap, streams.theta)
    generator = unwrap(players.G)
    # KDE-GAN reverses the measured reals through f_theta in either arm: they are y whatever D sees of the fakes.
    prior = PRIORS[cfg.prior.name].build(cfg, generator, streams, measurement, clean_shape)
    return AmbientGAN(cfg, players, prior, streams, Sampler(generator, prior), fake_measurement, hidden_measurement,
                      _ema(cfg, generator))


def _ema(cfg: Config, generator: nn.Module) -> GeneratorEMA | None:
    """G's moving average with train.ema (on every rank: gan/ema.py says why), else None."""
    t = cfg.train
    return GeneratorEMA(generator, t.ema, t.ema_start) if t.ema > 0 else None


def _acl_gan(cfg: Config, clean_shape: tuple[int, int, int], device: torch.device,
             wrap: Callable[[nn.Module], nn.Module], streams: RandomStreams) -> ACLGAN:
    """ACL's trainer: its players (no D for ACL-AE), the prior C(z), the encoder and the code discriminator."""
    a, z_dim = cfg.acl, cfg.model.z_dim
    players = Players(cfg, clean_shape, clean_shape if a.variant == "gan" else None, 0, device, wrap, streams.theta)
    torch.manual_seed(cfg.train.seed + 1)  # same initial weights on every rank
    code_generator, code_discriminator = CodeGenerator(z_dim, a.code_width), two_layer_mlp(z_dim, a.code_width, 1)
    encoder = wrap(Encoder(clean_shape, z_dim, cfg.model.d_width).to(device))
    prior = CodePrior(wrap(code_generator.to(device)), z_dim)
    # Sampled as G(C(z)) of z ~ N(0, I), like a run's checkpoint (gan/sampler.py's checkpoint_sampler).
    sampler = Sampler(CodeToImage(code_generator, unwrap(players.G)), NormalPrior(z_dim))
    return ACLGAN(cfg, players, prior, streams, sampler, encoder, wrap(code_discriminator.to(device)),
                  _ema(cfg, unwrap(players.G)))
