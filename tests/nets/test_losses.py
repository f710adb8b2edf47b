"""The GAN losses: their values on hand-made examples, the WGAN-GP penalty, and the refusal of bad settings."""


import pytest
import torch
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.nets.losses import REGISTRY as LOSSES
from gansweep.nets.losses import gradient_penalty
from torch import nn


def test_probabilistic_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    expected_d = float(-torch.log(sig(real)).mean() - torch.log(1 - sig(fake)).mean())
    assert float(LOSSES["non_saturating"].d(real, fake)) == pytest.approx(expected_d)
    assert float(LOSSES["minimax"].d(real, fake)) == pytest.approx(expected_d)
    assert float(LOSSES["non_saturating"].g(fake)) == pytest.approx(float(-torch.log(sig(fake)).mean()))
    assert float(LOSSES["minimax"].g(fake)) == pytest.approx(float(torch.log(1 - sig(fake)).mean()))


def test_critic_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-0.5, 1.5])
    assert float(LOSSES["wgan_gp"].d(real, fake)) == pytest.approx(0.5 - 1.25)
    assert float(LOSSES["hinge"].d(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0.5 + 2.5) / 2)
    assert float(LOSSES["wgan_gp"].g(fake)) == float(LOSSES["hinge"].g(fake)) == pytest.approx(-0.5)


def test_gradient_penalty_equals_a_hand_computation():
    # A linear critic C(x) = w . x + b has gradient w everywhere: the penalty is (||w|| - 1)^2 whatever x_hat.
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))  # ||w|| = 5
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert float(penalty) == pytest.approx((5 - 1) ** 2)
    penalty.backward()  # it trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic[1].weight.grad, 2 * 4 * torch.tensor([[3.0, 0.0, 4.0, 0.0]]) / 5)


def test_gradient_penalty_of_a_nonlinear_critic_matches_autograd_per_sample():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    eps = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    by_hand = []
    for i in range(5):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        by_hand.append((grad.norm() - 1) ** 2)
    assert float(penalty) == pytest.approx(float(torch.stack(by_hand).mean()), rel=1e-5)


def test_bad_loss_settings_are_refused():
    with pytest.raises(ConfigError, match="train.loss='wasserstein' is not one of"):
        load_config(None, ["train.loss=wasserstein"])
    with pytest.raises(ConfigError, match="model.d_norm=layer"):
        load_config(None, ["train.loss=wgan_gp"])  # BatchNorm in the critic
    with pytest.raises(ConfigError, match="gp_weight"):
        load_config(None, ["train.loss=wgan_gp", "model.d_norm=layer", "train.gp_weight=-1"])


def test_each_loss_says_how_d_outputs_read_and_whether_it_penalises_the_critic():
    assert [name for name, loss in LOSSES.items() if loss.probabilistic] == ["non_saturating", "minimax"]
    assert [name for name, loss in LOSSES.items() if loss.gradient_penalty] == ["wgan_gp"]
