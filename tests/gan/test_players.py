"""The players G and D: each loss trains them a few steps, with the discriminator's normalisation it asks for."""

import math

import pytest
import torch
from gansweep.config.loading import load_config
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


def _wgan_players(**overrides):
    cfg = load_config(None, ["train.loss=wgan_gp", "model.d_norm=layer", "model.g_width=8", "model.d_width=8",
                             *(f"{k}={v}" for k, v in overrides.items())])
    return cfg, build_gan(cfg, (1, 28, 28)).players


def test_the_gradient_penalty_is_fp32_under_autocast():
    """WGAN-GP's double backward is a backward pass: under bf16 autocast (the GPU's, played here by the CPU's) the
    players compute it in fp32, the same penalty and the same gradients as without autocast."""
    _, players = _wgan_players()
    torch.manual_seed(1)
    real, fake = torch.rand(16, 1, 28, 28), torch.rand(16, 1, 28, 28)

    def penalty_and_grads(compute):
        players.penalty_rng.manual_seed(5)
        players.D.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = compute()
        value.backward()
        # (the last layer's bias gets none: the input gradient does not depend on it)
        return value.detach(), torch.cat([p.grad.flatten() for p in players.D.parameters() if p.grad is not None])

    fp32_value, fp32_grads = penalty_and_grads(lambda: players.gradient_penalty(real, fake, None))
    players.penalty_rng.manual_seed(5)
    with torch.autocast("cpu", enabled=False):
        reference = players.gradient_penalty(real, fake, None).detach()
    assert fp32_value.dtype == torch.float32 and torch.equal(fp32_value, reference)

    # The way it was computed before: inside autocast, the penalised gradient norm in bf16.
    from gansweep.nets.losses import gradient_penalty
    bf16_value, bf16_grads = penalty_and_grads(
        lambda: players.gp_weight * gradient_penalty(players.D, real, fake, players.penalty_rng).float())
    assert abs(float(bf16_value - fp32_value)) / float(fp32_value) > 1e-4  # the test can tell the two apart
    assert not torch.allclose(bf16_grads, fp32_grads, rtol=1e-3, atol=0)


def test_a_resumed_adam_keeps_its_step_counters_on_the_cpu_and_its_moments_with_the_nets(tmp_path):
    """A checkpoint is read to the CPU and each part placed by its own load_state_dict: nets on another device
    (the meta device stands for a GPU) get Adam's moments there and its step counters on the CPU, where a
    non-fused Adam keeps them (on a GPU it would otherwise wait for the device at every parameter's step)."""
    import warnings

    from gansweep.gan.players import Players
    from gansweep.run.run_dir import load_checkpoint, save_checkpoint

    cfg, _ = _wgan_players()
    gan = build_gan(cfg, (1, 28, 28))
    gan.step([torch.rand(8, 1, 28, 28)])
    save_checkpoint(gan, 1, [gan.rng_state()], tmp_path)
    state = load_checkpoint(tmp_path)

    elsewhere = Players(cfg, (1, 28, 28), (1, 28, 28), 0, torch.device("meta"), lambda m: m, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copying weights into meta parameters is a no-op, and says so
        elsewhere.load_state_dict(state)
    for optimizer in (elsewhere.opt_g, elsewhere.opt_d):
        for parameter in (p for group in optimizer.param_groups for p in group["params"]):
            moments = optimizer.state[parameter]
            assert moments["step"].device.type == "cpu" and int(moments["step"]) == 1
            assert moments["exp_avg"].device.type == moments["exp_avg_sq"].device.type == "meta"
