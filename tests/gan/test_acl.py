"""Adversarial code learning (Yuan et al.): the code GAN, which loss trains which net (acl.rec_trains: Eq. 4 and 6
or Algorithm 1), ACL-GAN / ACL-GAN-GP / ACL-AE steps and shapes, checkpoints, the evaluation's G(C(z)), and a real
two-worker run."""

import json

import pytest
import torch
from conftest import _cli, _events, _save_run, _train, needs_fashion
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.gan.acl import ACLGAN, code_gan_step
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.build import build_gan
from gansweep.nets.code_nets import CodeGenerator, CodeToImage, two_layer_mlp
from gansweep.run.run_dir import load_checkpoint, load_sampler, resolve_checkpoint

SMALL = ["mode=clean", "measurement.name=none", "model.g_width=8", "model.d_width=8", "acl.code_width=32"]
GP = ["train.loss=wgan_gp", "model.d_norm=layer", "train.d_steps=2"]


def _acl(variant: str, *extra: str) -> ACLGAN:
    return build_gan(load_config(None, SMALL + [f"acl.variant={variant}", *extra]), (1, 28, 28))


def _weights(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


def _grads(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_the_code_gan_moves_c_onto_the_target_code_distribution():
    torch.manual_seed(0)
    d = 8
    code_generator, code_discriminator = CodeGenerator(d, 64), two_layer_mlp(d, 64, 1)
    opt_c = torch.optim.Adam(code_generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_dc = torch.optim.Adam(code_discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    mean = torch.tensor([3.0, -2.0] + [0.0] * (d - 2))
    std = torch.tensor([0.5, 2.0] + [1.0] * (d - 2))
    for _ in range(900):
        code_gan_step(code_generator, code_discriminator, opt_c, opt_dc, mean + std * torch.randn(128, d),
                      torch.randn(128, d))
    with torch.no_grad():
        codes = code_generator(torch.randn(4000, d))
    # From C(z) ~ z to the target's mean, and a wider spread where the target's is wider.
    assert torch.allclose(codes.mean(0)[:2], mean[:2], atol=0.6)
    assert codes.std(0)[1] > 1.5 * codes.std(0)[0]


@pytest.mark.parametrize("variant,extra", [("gan", []), ("gan", GP), ("gan", ["acl.rec_trains=encoder"]), ("ae", [])],
                         ids=["acl-gan", "acl-gan-gp", "acl-gan-rec-trains-encoder", "acl-ae"])
def test_acl_trains_a_few_steps_with_the_right_shapes(variant, extra):
    gan = _acl(variant, *extra)
    reals = [torch.rand(16, 1, 28, 28) for _ in range(gan.cfg.train.d_steps)]
    for _ in range(3):
        figures = gan.step(reals)
    expected = {"loss_rec", "loss_code_d", "loss_code_g"} | ({"loss_d", "loss_g", "d_real", "d_fake"} if variant == "gan" else set())
    assert set(figures) == expected and all(torch.isfinite(v) for v in figures.values())
    assert (gan.players.D is None) == (variant == "ae")
    assert gan.E(reals[0]).shape == (16, gan.z_dim) and gan.prior.sample(5, gan.streams.z).shape == (5, gan.z_dim)
    shown = ("real", "fake", "reconstruction") if variant == "gan" else ("real", "reconstruction")
    assert {key: tuple(v.shape) for key, v in gan.last.items()} == {key: (16, 1, 28, 28) for key in shown}
    samples = gan.sampler.images(torch.randn(7, gan.z_dim))
    assert samples.shape == (7, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1


def test_encoder_codes_and_c_start_on_the_scale_of_n01():
    # Standardised codes and a residual C: the code GAN starts matched in mean and scale (a free encoder drifted
    # to ~3x that scale and C chased it for hundreds of steps).
    gan = _acl("gan")
    codes = gan.E(torch.rand(64, 1, 28, 28) * torch.linspace(0.2, 1, 64)[:, None, None, None])
    assert codes.mean(0).abs().max() < 1e-4 and torch.allclose(codes.std(0, unbiased=False), torch.ones(gan.z_dim), atol=1e-3)
    with torch.no_grad():
        spread = gan.prior.C(torch.randn(4096, gan.z_dim)).std(0)
    assert 0.8 < float(spread.min()) and float(spread.max()) < 1.3


def test_each_loss_trains_only_its_nets():
    reals = [torch.rand(16, 1, 28, 28)]
    # No reconstruction: the encoder learns nothing (the code GAN's target E(x) is detached).
    gan = _acl("gan", "acl.rec_weight=0")
    encoder, code_generator = _weights(gan.E), _weights(gan.prior.C)
    gan.step(reals)
    assert torch.equal(_weights(gan.E), encoder) and not torch.equal(_weights(gan.prior.C), code_generator)
    # No code GAN: C learns nothing, though G's image GAN loss is on G(C(z)) (Algorithm 1 keeps it off C).
    gan = _acl("gan", "acl.code_weight=0")
    code_generator, generator = _weights(gan.prior.C), _weights(gan.players.G)
    gan.step(reals)
    assert torch.equal(_weights(gan.prior.C), code_generator) and not torch.equal(_weights(gan.players.G), generator)


def test_rec_trains_says_whether_the_reconstruction_reaches_g():
    # One step from the same start in each config; a net's .grad after it is that of the step's last backward pass.
    reals = [torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))]
    stepped = {}
    for name, extra in {"default": [], "encoder": ["acl.rec_trains=encoder"], "gan_alone": ["acl.rec_weight=0"],
                        "rec_alone": ["acl.gan_weight=0"]}.items():
        stepped[name] = _acl("gan", *extra)
        stepped[name].step(reals)
    g = {name: _grads(gan.players.G) for name, gan in stepped.items()}
    e = {name: _grads(gan.E) for name, gan in stepped.items()}
    # Algorithm 1: G's gradient is its GAN loss's alone, so its step is exactly the GAN loss's step; E's is the
    # reconstruction's, still through G (E is not on the GAN loss's path).
    assert torch.equal(g["encoder"], g["gan_alone"])
    assert torch.equal(_weights(stepped["encoder"].players.G), _weights(stepped["gan_alone"].players.G))
    assert e["encoder"].abs().sum() > 0 and torch.allclose(e["encoder"], e["rec_alone"], rtol=1e-5, atol=1e-8)
    # Eq. 4 and 6 (the default): G's gradient is the sum of both losses' (rec_weight = gan_weight = 1).
    assert not torch.allclose(g["default"], g["gan_alone"])
    assert torch.allclose(g["default"], g["gan_alone"] + g["rec_alone"], rtol=1e-4, atol=1e-7)
    assert torch.allclose(e["default"], e["rec_alone"], rtol=1e-5, atol=1e-8)


def test_acl_ae_learns_to_reconstruct():
    torch.manual_seed(0)
    gan = _acl("ae", "train.lr_g=2e-3")
    reals = [torch.rand(32, 1, 28, 28).round()]  # a fixed batch the autoencoder can memorise
    first = float(gan.step(reals)["loss_rec"])
    for _ in range(40):
        last = float(gan.step(reals)["loss_rec"])
    assert last < 0.6 * first


def test_a_checkpoint_restores_acl_and_the_evaluation_samples_g_of_c(tmp_path):
    cfg = load_config(None, SMALL + ["acl.variant=gan"])
    gan = build_gan(cfg, (1, 28, 28))
    gan.step([torch.rand(16, 1, 28, 28)])
    run = tmp_path / "run"
    checkpoint = _save_run(gan, cfg, run, 1)

    state = load_checkpoint(checkpoint)
    # Each part's keys, as before the trainer was made of parts: older checkpoints still load.
    assert set(state) == {"G", "D", "opt_g", "opt_d", "C", "E", "D_code", "opt_e", "opt_c", "opt_dc", "step", "rng",
                          "best_eval"}
    resumed = build_gan(cfg, (1, 28, 28))
    resumed.load_state_dict(state)
    z = torch.randn(6, cfg.model.z_dim)
    assert torch.equal(resumed.sampler.images(z), gan.sampler.images(z))
    for a, b in ((resumed.E, gan.E), (resumed.prior.C, gan.prior.C), (resumed.D_code, gan.D_code)):
        assert torch.equal(_weights(a), _weights(b))

    sampler, _, step = load_sampler(run, checkpoint)
    assert isinstance(sampler.generator, CodeToImage) and step == 1
    z = torch.randn(5, cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sampler.draw(5, seed=0), gan.sampler.images(z), atol=1e-6)


def test_without_acl_the_plain_trainer_is_built():
    assert type(build_gan(load_config(None, SMALL), (1, 28, 28))) is AmbientGAN


@pytest.mark.parametrize("overrides,message", [
    (["acl.variant=vae"], "acl.variant='vae' is not one of none, gan, ae"),
    (["acl.variant=gan", "acl.rec_weight=-1"], "acl.rec_weight=-1.0 must be >= 0"),
    (["acl.variant=gan", "acl.code_width=0"], "acl.code_width=0 must be >= 1"),
    (["acl.variant=gan", "prior.name=kde"], "ACL learns G's input distribution itself"),
    (["acl.rec_trains=decoder"], "acl.rec_trains='decoder' is not one of encoder_and_generator, encoder"),
    (["acl.variant=ae", "acl.rec_trains=encoder"], "acl.rec_trains=encoder with acl.variant=ae: ACL-AE's decoder G"),
    (["acl.variant=gan", "acl.rec_trains=encoder", "acl.gan_weight=0"],
     "acl.rec_trains=encoder with acl.gan_weight=0.0: G learns from its GAN loss alone"),
])
def test_bad_acl_values_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, SMALL + overrides)


def test_cli_refuses_rec_trains_encoder_for_acl_ae_with_exit_2_before_ray(tmp_path):
    # As tests/test_config.py's test_cli_bad_input_exits_2_before_ray checks every other bad key.
    result = _cli("train", *[arg for key in SMALL for arg in ("--set", key)], "--set", "acl.variant=ae",
                  "--set", "acl.rec_trains=encoder", "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "acl.rec_trains=encoder with acl.variant=ae" in result.stderr and "Traceback" not in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not (tmp_path / "run").exists()


def test_acl_is_refused_in_mode_ambient():
    with pytest.raises(ConfigError, match="mode=ambient"):
        load_config(None, ["acl.variant=gan"])


@needs_fashion
@pytest.mark.slow  # a minute on Ray, on 2 cores; the parts are tested in-process above (run with -m slow)
def test_a_two_worker_acl_gan_run_logs_its_losses_and_reconstructions(tmp_path):
    run = tmp_path / "run"
    _train(run, *SMALL, "acl.variant=gan", "data.limit=256", "train.workers=2", "train.batch_size=32",
           "train.steps=4", "train.log_every=2", "train.image_every=4", "train.checkpoint_every=4",
           cache=tmp_path / "cache")
    result = json.loads((run / "result.json").read_text())
    assert result["step"] == 4
    for key in ("loss_rec", "loss_code_d", "loss_code_g", "loss_d", "loss_g"):
        assert key in result["metrics"]
    events = _events(run)
    assert {"loss/reconstruction", "loss/code_d", "loss/code_g", "loss/d", "loss/g"} <= set(events.Tags()["scalars"])
    assert {"training/reconstructions", "samples/fixed_z"} <= set(events.Tags()["images"])
    sampler, _, step = load_sampler(*resolve_checkpoint(run))
    assert isinstance(sampler.generator, CodeToImage) and step == 4
