"""G's moving average (train.ema) without Ray: the update rule, its start step, its BatchNorm statistics, the
checkpoint round trip and resume, and the sampler that picks it from a checkpoint."""

import pytest
import torch
from gansweep.config.schema import Config
from gansweep.gan.build import build_gan
from gansweep.gan.ema import G_EMA_KEY
from gansweep.gan.players import G_KEY
from gansweep.gan.sampler import checkpoint_sampler
from gansweep.run.run_dir import load_checkpoint, save_checkpoint

SHAPE = (1, 28, 28)
DECAY = 0.9


def _gan(ema=DECAY, ema_start=0, seed=0, hidden=False, acl=False):
    cfg = Config(mode="clean" if acl else "ambient")
    cfg.train.seed, cfg.train.ema, cfg.train.ema_start = seed, ema, ema_start
    cfg.model.g_width = cfg.model.d_width = 8
    cfg.measurement.name, cfg.measurement.p = "block_pixel", 0.5
    if hidden:
        cfg.hidden.inject_at = "project"
        cfg.hidden.measurement.name, cfg.hidden.measurement.p = "block_pixel", 0.8
        cfg.hidden.measurement.unit = "channel"
    if acl:
        cfg.acl.variant = "gan"
    return build_gan(cfg, SHAPE)


def _reals(n_steps: int) -> list[torch.Tensor]:
    rng = torch.Generator().manual_seed(1)
    return [torch.rand(16, *SHAPE, generator=rng) for _ in range(n_steps)]


def _train(gan, reals, first_step: int = 1) -> None:
    """Generator steps as the loop takes them: the step, then the average."""
    for step, real in enumerate(reals, start=first_step):
        gan.step([real])
        gan.average(step)


def _weights(module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_the_average_follows_the_ema_rule_from_g_s_initial_weights():
    gan = _gan()
    ema = gan.ema.module
    w = [_weights(gan.players.G)]
    assert all(torch.equal(ema.get_parameter(k), v) for k, v in w[0].items())  # it starts at G
    for real in _reals(2):
        _train(gan, [real], first_step=len(w))
        w.append(_weights(gan.players.G))
    for name in w[0]:
        expected = w[0][name]
        for step in (1, 2):  # ema = d * ema + (1 - d) * w, by hand
            expected = DECAY * expected + (1 - DECAY) * w[step][name]
        assert torch.allclose(ema.get_parameter(name), expected, rtol=0, atol=1e-6), name
        assert not torch.equal(ema.get_parameter(name), w[2][name])
    assert not any(p.requires_grad for p in ema.parameters())  # nothing trains the average


def test_before_ema_start_the_average_is_g_itself():
    gan = _gan(ema_start=3)
    reals = _reals(3)
    _train(gan, reals[:2])
    assert all(torch.equal(gan.ema.module.get_parameter(k), v) for k, v in _weights(gan.players.G).items())
    before = _weights(gan.players.G)
    _train(gan, reals[2:], first_step=3)  # step 3: the average runs from here
    for name, value in _weights(gan.players.G).items():
        expected = DECAY * before[name] + (1 - DECAY) * value
        assert torch.allclose(gan.ema.module.get_parameter(name), expected, rtol=0, atol=1e-6), name


def test_off_by_default_nothing_changes():
    assert Config().train.ema == 0
    gan, same = _gan(ema=0), _gan(ema=0)
    assert gan.ema is None and gan.sampler is gan.raw_sampler
    _train(gan, _reals(2))
    gan.calibrate(2)
    assert set(gan.state_dict()) == {"G", "D", "opt_g", "opt_d"}  # no EMA key in the checkpoint
    # The average's bookkeeping draws nothing from the run's random streams: G trains alike with it on.
    on = _gan()
    _train(same, _reals(2))
    _train(on, _reals(2))
    assert all(torch.equal(a, b) for a, b in zip(same.players.G.parameters(), on.players.G.parameters()))


def test_evaluations_and_panels_draw_from_the_average():
    gan = _gan()
    _train(gan, _reals(2))
    assert gan.sampler.averaged and not gan.raw_sampler.averaged
    assert gan.sampler.generator is gan.ema.module and gan.raw_sampler.generator is gan.players.G
    z = torch.randn(8, gan.z_dim)
    assert not torch.equal(gan.sampler.images(z), gan.raw_sampler.images(z))


def test_acl_s_average_is_fed_c_of_z_like_g():
    gan = _gan(acl=True)
    assert gan.sampler.generator.generator is gan.ema.module
    assert gan.sampler.generator.code_generator is gan.raw_sampler.generator.code_generator


def _bn_buffers(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def test_the_average_s_batchnorm_statistics_are_recomputed_on_its_own_clean_forwards():
    gan = _gan()
    _train(gan, _reals(3))
    g_stats = _bn_buffers(gan.players.G)
    assert all(torch.equal(v, _bn_buffers(gan.ema.module)[k]) for k, v in g_stats.items())  # G's, copied
    gan.calibrate(3)
    recomputed = _bn_buffers(gan.ema.module)
    assert all(not torch.equal(v, recomputed[k]) for k, v in g_stats.items())
    assert all(torch.equal(v, _bn_buffers(gan.players.G)[k]) for k, v in g_stats.items())  # G's own untouched
    gan.ema.module.eval()
    gan.calibrate(3)
    assert not gan.ema.module.training  # left in the mode it was in
    twin = _gan()
    _train(twin, _reals(3))
    twin.calibrate(3)  # a function of (seed, step): the same on every rank and after a resume
    assert all(torch.equal(v, _bn_buffers(twin.ema.module)[k]) for k, v in recomputed.items())
    # hidden.bn_stats measured keeps the statistics training accumulates, for the average as for G
    measured = _gan(hidden=True)
    measured.cfg.hidden.bn_stats = "measured"
    _train(measured, _reals(2))
    measured.calibrate(2)
    assert all(torch.equal(v, _bn_buffers(measured.ema.module)[k]) for k, v in _bn_buffers(measured.players.G).items())


def test_a_resumed_run_continues_the_same_average(tmp_path):
    reals = _reals(4)
    straight = _gan(hidden=True)
    _train(straight, reals)

    first = _gan(hidden=True)
    _train(first, reals[:2])
    first.calibrate(2)  # as the loop does before it saves
    save_checkpoint(first, 2, [first.rng_state()], tmp_path)
    state = load_checkpoint(tmp_path)
    assert G_EMA_KEY in state and set(state[G_EMA_KEY]) == set(state[G_KEY])  # G's layout
    resumed = _gan(hidden=True)  # the same config, as a resume has (the calibration's codes come from train.seed)
    resumed.load_state_dict(state)
    resumed.set_rng_state(state["rng"][0])
    _train(resumed, reals[2:], first_step=3)
    for gan in (straight, resumed):
        gan.calibrate(4)
    for key, value in straight.ema.module.state_dict().items():
        assert torch.equal(value, resumed.ema.module.state_dict()[key]), key


def test_a_checkpoint_without_an_average_starts_it_from_its_g(tmp_path):
    plain = _gan(ema=0)
    _train(plain, _reals(1))
    save_checkpoint(plain, 1, [plain.rng_state()], tmp_path)
    gan = _gan(seed=5)
    gan.load_state_dict(load_checkpoint(tmp_path))
    assert all(torch.equal(gan.ema.module.get_parameter(k), v) for k, v in _weights(plain.players.G).items())


def test_the_checkpoint_sampler_picks_the_average_unless_asked_for_g(tmp_path):
    gan = _gan()
    _train(gan, _reals(2))
    gan.calibrate(2)
    save_checkpoint(gan, 2, [gan.rng_state()], tmp_path)
    state = load_checkpoint(tmp_path)
    z = torch.randn(8, gan.z_dim)
    averaged = checkpoint_sampler(gan.cfg, SHAPE, 0, state)
    raw = checkpoint_sampler(gan.cfg, SHAPE, 0, state, raw=True)
    assert averaged.averaged and not raw.averaged
    assert torch.allclose(averaged.images(z), gan.sampler.images(z), atol=1e-6)
    assert torch.allclose(raw.images(z), gan.raw_sampler.images(z), atol=1e-6)
    plain = _gan(ema=0)
    save_checkpoint(plain, 0, [plain.rng_state()], tmp_path / "plain")
    assert not checkpoint_sampler(plain.cfg, SHAPE, 0, load_checkpoint(tmp_path / "plain")).averaged


@pytest.mark.parametrize("acl", [False, True])
def test_an_averaged_checkpoint_of_either_trainer_samples(tmp_path, acl):
    gan = _gan(acl=acl)
    save_checkpoint(gan, 0, [gan.rng_state()], tmp_path)
    sampler = checkpoint_sampler(gan.cfg, SHAPE, 0, load_checkpoint(tmp_path))
    assert sampler.draw(4, seed=0).shape == (4, *SHAPE)
