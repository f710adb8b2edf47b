"""The GAN step without Ray: what D sees in each mode, hidden measurement in training only, state round trip."""

import pytest
import torch
from gansweep.config.schema import Config
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.build import build_gan
from gansweep.nets.pixels import to_unit
from gansweep.run.run_dir import load_checkpoint, save_checkpoint

SHAPE = (1, 28, 28)


def _gan(mode="ambient", seed=0, **measurement) -> AmbientGAN:
    cfg = Config(mode=mode)
    cfg.train.seed = seed
    cfg.model.g_width = cfg.model.d_width = 8
    for key, value in measurement.items():
        setattr(cfg.measurement, key, value)
    return build_gan(cfg, SHAPE)


def test_ambient_fakes_are_measured_like_the_reals():
    gan = _gan(name="block_pixel", p=0.9)
    fake, hidden = gan.fake(128)
    assert hidden is None
    assert fake.shape == (128, *SHAPE)
    # p=0.9 zeroes about 90% of the pixels: far more zeros than a tanh generator ever outputs.
    assert (fake == 0).float().mean() == pytest.approx(0.9, abs=0.02)
    assert fake.min() >= 0 and fake.max() <= 1  # measured in [0, 1] intensity space


def test_ignore_and_clean_show_d_the_unmeasured_generator():
    for mode in ("ignore", "clean"):
        gan = _gan(mode, name="block_pixel", p=0.9)
        fake, _ = gan.fake(64)
        assert (fake == 0).float().mean() < 0.05


def test_extract_patch_discriminator_takes_patches():
    gan = _gan(name="extract_patch", patch=8)
    fake, _ = gan.fake(16)
    assert fake.shape == (16, 1, 8, 8)
    metrics = gan.step([torch.rand(16, 1, 8, 8)])
    assert set(metrics) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(torch.isfinite(v) for v in metrics.values())


def test_hidden_measurement_in_training_only():
    cfg = Config()
    cfg.model.g_width = cfg.model.d_width = 8
    cfg.hidden.inject_at = "up1"
    cfg.hidden.measurement.name = "block_pixel"
    cfg.hidden.measurement.unit = "channel"
    cfg.hidden.measurement.p = 1.0  # every feature map zeroed: G1 sees nothing of z
    gan = build_gan(cfg, SHAPE)
    gan.measurement = None  # look at G1(f_hidden(G2(z))) itself
    fake_a, hidden = gan.fake(8)
    fake_b, _ = gan.fake(8)
    assert hidden.shape == (8, 16, 14, 14) and (hidden == 0).all()
    assert torch.allclose(fake_a, fake_b)  # with the hidden map all zero, z no longer matters
    z = torch.randn(8, gan.z_dim)
    samples = gan.sampler.images(z)
    assert not torch.allclose(samples[0], samples[1])  # sampling applies no measurement


def _hidden_arm(fake_measurement: str) -> AmbientGAN:
    """Block-Pixel p=0.9 on the images, whole feature maps dropped with p=0.5 after up1: the combined arm (both) or
    the hidden-space paper's (hidden_only), the same weights and streams for both."""
    cfg = Config()
    cfg.model.g_width = cfg.model.d_width = 8
    cfg.measurement.p = 0.9
    cfg.hidden.inject_at = "up1"
    cfg.hidden.measurement.name = "block_pixel"
    cfg.hidden.measurement.unit = "channel"
    cfg.hidden.measurement.p = 0.5
    cfg.hidden.fake_measurement = fake_measurement
    return build_gan(cfg, SHAPE)


def _stream_copy(rng: torch.Generator) -> torch.Generator:
    copy = torch.Generator(rng.device)
    copy.set_state(rng.get_state())
    return copy


def test_the_hidden_only_arm_shows_d_g1_of_the_measured_hidden_map_with_no_image_measurement():
    paper, combined = _hidden_arm("hidden_only"), _hidden_arm("both")
    z_rng, theta_rng = _stream_copy(paper.streams.z), _stream_copy(paper.streams.theta)
    fake, hidden = paper.fake(64)
    # G1(f_hidden(G2(z))) by hand, from the same draws: exactly what D sees, and nothing after it.
    z = paper.prior.sample(64, z_rng)
    expected = to_unit(paper.players.G(z, hidden=("up1", lambda h: paper.hidden_measurement(h, theta_rng))))
    assert torch.equal(fake, expected)
    assert (hidden == 0).flatten(2).all(dim=2).float().mean() == pytest.approx(0.5, abs=0.1)  # maps dropped
    assert (fake == 0).float().mean() < 0.01  # no pixel zeroed: no Block-Pixel on the images

    # The combined arm: the same fake, then Block-Pixel p=0.9 on the image.
    measured, _ = combined.fake(64)
    assert (measured == 0).float().mean() == pytest.approx(0.9, abs=0.02)
    assert torch.equal(measured, fake * (measured != 0))


@pytest.mark.parametrize("fake_measurement", ["both", "hidden_only"])
def test_each_hidden_arm_trains_against_measured_reals_and_recomputes_g_s_statistics(fake_measurement):
    gan = _hidden_arm(fake_measurement)
    reals = _gan(name="block_pixel", p=0.9).measurement(torch.rand(16, *SHAPE), torch.Generator().manual_seed(0))
    g_before = [p.clone() for p in gan.players.G.parameters()]
    for _ in range(3):
        metrics = gan.step([reals])
    assert all(torch.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gan.players.G.parameters()))
    # hidden.bn_stats clean applies in either arm: G's running statistics are recomputed before sampling.
    before = {key: value.clone() for key, value in gan.state_dict()["G"].items() if "running" in key}
    gan.calibrate(step=3)
    assert any(not torch.equal(value, gan.state_dict()["G"][key]) for key, value in before.items())


def _hidden_gan(bn_stats: str) -> AmbientGAN:
    cfg = Config()
    cfg.model.g_width = cfg.model.d_width = 8
    cfg.hidden.inject_at = "project"
    cfg.hidden.measurement.name = "block_pixel"
    cfg.hidden.measurement.unit = "channel"
    cfg.hidden.measurement.p = 0.8
    cfg.hidden.bn_stats = bn_stats
    return build_gan(cfg, SHAPE)


def _up1_std(gan: AmbientGAN, z: torch.Tensor, training_path: bool) -> float:
    """The standard deviation of G's up1 output on the training path (train mode, measured after project) or on
    the sampling path (eval mode, clean)."""
    generator, out = gan.sampler.generator, {}
    hook = generator.blocks["up1"].register_forward_hook(lambda module, inputs, output: out.update(up1=output))
    with torch.no_grad():
        if training_path:
            gan.fake(len(z))
        else:
            gan.sampler.images(z)
    hook.remove()
    return out["up1"].std().item()


def test_hidden_bn_statistics_are_recomputed_on_clean_forwards_before_sampling():
    # Statistics accumulated on measured maps (80% of project's channels dropped) meet clean maps when sampled:
    # up1's output is far wider than in training. Recomputed on clean forwards, the two paths agree.
    z = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    spread = {}
    for bn_stats in ("measured", "clean"):
        gan = _hidden_gan(bn_stats)
        for _ in range(60):  # train mode: the running statistics converge to the measured maps' (momentum 0.1)
            gan.fake(64)
        gan.calibrate(step=60)
        spread[bn_stats] = _up1_std(gan, z, training_path=False) / _up1_std(gan, z, training_path=True)
        assert gan.sampler.generator.training  # calibrate leaves G in the mode it found
    assert spread["measured"] > 1.3  # 1.45 at this width, 1.8 at width 32
    assert spread["clean"] == pytest.approx(1.0, abs=0.1)


def test_calibration_is_a_function_of_the_step_and_leaves_the_streams_alone():
    a, b = _hidden_gan("clean"), _hidden_gan("clean")
    streams = {key: value.clone() for key, value in a.rng_state().items() if key != "device_type"}
    a.calibrate(step=7)
    b.calibrate(step=7)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict()["G"].values(), b.state_dict()["G"].values()))
    assert all(torch.equal(value, a.rng_state()[key]) for key, value in streams.items())
    before = {key: value.clone() for key, value in a.state_dict()["G"].items()}
    a.calibrate(step=8)
    assert any(not torch.equal(before[key], value) for key, value in a.state_dict()["G"].items())
    plain = _gan(name="block_pixel", p=0.5)  # no hidden measurement: nothing to recompute
    before = {key: value.clone() for key, value in plain.state_dict()["G"].items()}
    plain.calibrate(step=7)
    assert all(torch.equal(before[key], value) for key, value in plain.state_dict()["G"].items())


def test_training_steps_change_both_networks():
    gan = _gan(name="block_patch", patch=10)
    g_before = [p.clone() for p in gan.players.G.parameters()]
    d_before = [p.clone() for p in gan.players.D.parameters()]
    gan.cfg.train.d_steps = 2
    gan.step([torch.rand(16, *SHAPE), torch.rand(16, *SHAPE)])
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gan.players.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, gan.players.D.parameters()))


def test_checkpoint_state_resumes_the_same_run(tmp_path):
    """Weights, optimiser moments and the z / theta streams restored: the next step is the very same step."""
    torch.manual_seed(1)
    first, second = torch.rand(16, *SHAPE), torch.rand(16, *SHAPE)
    gan = _gan(name="block_pixel", p=0.5)
    gan.step([first])
    assert set(gan.state_dict()) == {"G", "D", "opt_g", "opt_d"}  # the players' keys; N(0, I) has none
    save_checkpoint(gan, 1, [gan.rng_state()], tmp_path)
    expected = gan.step([second])

    restored = _gan(seed=123, name="block_pixel", p=0.5)  # other initial weights and streams: the checkpoint's win
    state = load_checkpoint(tmp_path)
    restored.load_state_dict(state)
    restored.set_rng_state(state["rng"][0])
    resumed = restored.step([second])
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    for a, b in zip(gan.players.G.parameters(), restored.players.G.parameters()):
        assert torch.equal(a, b)
