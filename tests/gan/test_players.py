"""The players G and D: each loss trains them a few steps, with the discriminator's normalisation it asks for."""

import math

import pytest
import torch
from gansweep.config import load_config
from gansweep.gan.build import build_gan
from torch import nn


@pytest.mark.parametrize("loss,norm", [("minimax", "batch"), ("wgan_gp", "layer"), ("hinge", "none")])
def test_each_loss_trains_for_a_few_steps(loss, norm):
    cfg = load_config(None, [f"train.loss={loss}", f"model.d_norm={norm}", "model.g_width=8", "model.d_width=8",
                             "train.d_steps=2", "measurement.name=block_pixel"])
    gan = build_gan(cfg, (1, 28, 28))
    reals = [torch.rand(16, 1, 28, 28) for _ in range(2)]
    for _ in range(3):
        losses = gan.step(reals)
    assert all(math.isfinite(float(v)) for v in losses.values())
    assert gan.sampler.images(torch.randn(4, cfg.model.z_dim)).shape == (4, 1, 28, 28)
    uses_batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in gan.players.D.modules())
    assert uses_batch_norm == (norm == "batch")
