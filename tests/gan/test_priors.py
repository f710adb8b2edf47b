"""The latent priors: the KDE density (its samples, mixture and likelihood) and KDE-GAN's prior (Kilcher et al.,
Algorithm 2), re-estimated from reversed reals, fed to G, checkpointed, and used by the evaluation."""

import math

import pytest
import torch
from conftest import _generator, _save_run
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.config.schema import PRIORS
from gansweep.gan import reversal
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.build import build_gan
from gansweep.gan.priors import REGISTRY, KDEPrior
from gansweep.nets.pixels import to_unit
from gansweep.run.run_dir import load_checkpoint, load_sampler

KDE = ["mode=clean", "measurement.name=none", "prior.name=kde", "prior.bandwidth=0.05", "model.g_width=8",
       "model.d_width=8", "reversal.max_steps=5"]


def test_refresh_feeds_g_codes_from_the_kde_of_reversed_reals():
    cfg = load_config(None, KDE)
    gan = build_gan(cfg, (1, 28, 28))
    reals = torch.rand(16, 1, 28, 28)
    figures = gan.prior.refresh(reals)
    assert figures["reversal_steps"] == 5 and figures["reversal_error"] > 0
    assert isinstance(gan.prior.kde, KDEPrior) and gan.prior.kde.codes.shape == (16, cfg.model.z_dim)
    z = gan.prior.sample(4000, gan.streams.z)
    # Every code is near one of the reversed ones: the bandwidth's noise, not N(0, I).
    nearest = torch.cdist(z, gan.prior.kde.codes).min(dim=1).values
    normal = torch.cdist(torch.randn(4000, cfg.model.z_dim), gan.prior.kde.codes).min(dim=1).values
    assert nearest.mean() < 0.05 * 8 * 1.5 < 0.1 * normal.mean()  # bandwidth x sqrt(z_dim), with room
    losses = gan.step([reals])
    assert all(torch.isfinite(v) for v in losses.values())


def test_the_mmd_rule_decides_the_reversal_steps():
    reals = torch.rand(16, 1, 28, 28)

    def refresh(threshold: float) -> dict:
        gan = build_gan(load_config(None, KDE + ["reversal.max_steps=60", f"reversal.mmd_threshold={threshold}"]),
                         (1, 28, 28))
        return gan.prior.refresh(reals)

    never = refresh(10.0)  # MMD^2 of an RBF kernel is at most 2: the rule never fires
    assert never["reversal_steps"] == 60
    threshold = never["reversal_mmd2"] / 2  # reached on the way: the same reversal stops there
    stopped = refresh(threshold)
    assert stopped["reversal_steps"] < 60 and stopped["reversal_mmd2"] > threshold


def test_the_prior_is_checkpointed_and_used_by_the_evaluation(tmp_path):
    cfg = load_config(None, KDE)
    gan = build_gan(cfg, (1, 28, 28))
    gan.prior.refresh(torch.rand(8, 1, 28, 28))
    run = tmp_path / "run"
    checkpoint = _save_run(gan, cfg, run, 3)

    resumed = build_gan(cfg, (1, 28, 28))
    resumed.load_state_dict(load_checkpoint(checkpoint))
    assert torch.equal(resumed.prior.kde.codes, gan.prior.kde.codes)

    sampler, _, step = load_sampler(run, checkpoint)
    assert step == 3 and torch.equal(sampler.prior.codes, gan.prior.kde.codes)
    with torch.no_grad():
        expected = to_unit(sampler.generator(sampler.prior.sample(5, torch.Generator().manual_seed(0))))
    assert torch.allclose(sampler.draw(5, seed=0), expected)


def test_warm_start_continues_each_image_from_its_last_code():
    reals, indices = torch.rand(16, 1, 28, 28), torch.arange(100, 116)

    def two_refreshes(warm: bool) -> tuple[dict, dict]:
        cfg = load_config(None, KDE + [f"reversal.warm_start={warm}", "reversal.max_steps=10", "model.g_width=16",
                                       "reversal.lr=0.12"])
        gan = build_gan(cfg, (1, 28, 28))
        gan.players.G.load_state_dict(_generator(3).state_dict())  # random weights whose images respond to z
        return gan.prior.refresh(reals, indices), gan.prior.refresh(reals, indices)

    (cold_first, cold_second), (warm_first, warm_second) = two_refreshes(False), two_refreshes(True)
    assert warm_first == pytest.approx(cold_first)  # nothing to start from yet
    # The second reversal of the same images goes on from where the first stopped: a lower error.
    assert warm_second["reversal_error"] < warm_first["reversal_error"]
    assert warm_second["reversal_error"] < cold_second["reversal_error"]


def test_warm_codes_are_the_banked_codes_where_known_and_fresh_draws_elsewhere():
    prior = build_gan(load_config(None, KDE + ["reversal.warm_start=true"]), (1, 28, 28)).prior
    banked = torch.randn(2, prior.z_dim)
    prior.code_bank = {7: banked[0], 9: banked[1]}
    state = prior.streams.z.get_state()
    cold = prior.noise(3, prior.streams.z) * prior.reversal.init_std
    prior.streams.z.set_state(state)
    warm = prior._warm_codes([9, 3, 7], 3)
    assert torch.equal(warm, torch.stack([banked[1], cold[1], banked[0]]))  # the same draws as a cold start


@pytest.mark.parametrize("threshold", [0, 10])  # without the MMD rule; with it (never stopping)
def test_a_refresh_with_the_indices_on_the_cpu_waits_for_the_device_only_for_its_figures(monkeypatch, threshold):
    prior = build_gan(load_config(None, KDE + ["reversal.warm_start=true", f"reversal.mmd_threshold={threshold}"]),
                      (1, 28, 28)).prior
    # G, the reals and the codes on the meta device, where tensors have no data: any other sync would raise.
    prior.generator.to("meta")
    monkeypatch.setattr(prior, "noise", lambda n, rng: torch.randn(n, prior.z_dim, device="meta"))
    transfers = []

    def to_host(values: torch.Tensor) -> list[float]:  # stands in for the reversal's transfers: zeros
        transfers.append(len(values))
        return [0.0] * len(values)

    monkeypatch.setattr(reversal, "to_host", to_host)
    reals, indices = torch.zeros(8, 1, 28, 28, device="meta"), torch.arange(100, 108)  # the stream's: on the CPU
    for _ in range(2):  # the second starts from the code bank's codes
        transfers.clear()
        figures = prior.refresh(reals, indices)
        mmd_checks = math.ceil(5 / reversal.MMD_CHECK_EVERY) if threshold else 0  # reversal.max_steps=5
        assert len(transfers) == mmd_checks + 1  # the error trace, at the end
        assert figures["reversal_steps"] == 5 and figures["reversal_error"] == 0.0
    assert prior.kde.codes.shape == (8, prior.z_dim) and set(prior.code_bank) == set(range(100, 108))


@pytest.mark.parametrize("override,message", [
    ("prior.bandwidth=-0.1", "prior.bandwidth=-0.1 must be > 0"),
    ("reversal.mmd_threshold=-1", "reversal.mmd_threshold=-1.0 must be >= 0"),
    ("prior.name=flow", "prior.name='flow' is not one of normal, kde"),
    ("reversal.lr=0", "reversal.lr=0.0 must be > 0"),
])
def test_bad_prior_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, KDE + [override])


def test_the_prior_pools_the_codes_of_the_last_refreshes():
    def prior_sizes(pool: int) -> tuple[list[int], AmbientGAN]:
        gan = build_gan(load_config(None, KDE + [f"prior.pool={pool}", "reversal.max_steps=1"]), (1, 28, 28))
        sizes = []
        for _ in range(4):
            gan.prior.refresh(torch.rand(16, 1, 28, 28))
            sizes.append(len(gan.prior.kde.codes))
        return sizes, gan

    (single, _), (pooled, gan) = prior_sizes(1), prior_sizes(3)
    assert single == [16, 16, 16, 16]  # Algorithm 2 as written: this batch's codes only
    assert pooled == [16, 32, 48, 48]
    before = gan.prior.kde.codes
    gan.prior.refresh(torch.rand(16, 1, 28, 28))
    assert torch.equal(gan.prior.kde.codes[16:], before[:32])  # the newest batch first, the oldest dropped


def test_the_prior_is_due_every_refresh_every_steps_and_whenever_missing():
    gan = build_gan(load_config(None, KDE + ["prior.refresh_every=3"]), (1, 28, 28))
    assert gan.prior.due(5)  # none yet (a resumed run): due at once
    gan.prior.refresh(torch.rand(8, 1, 28, 28))
    assert [step for step in range(1, 9) if gan.prior.due(step)] == [1, 4, 7]
    assert not build_gan(load_config(None, ["mode=clean", "measurement.name=none"]), (1, 28, 28)).prior.due(1)


def test_kde_samples_have_the_codes_mean_and_the_spread_the_bandwidth_implies():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(500, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([3.0, -1.0, 0.0])
    prior = KDEPrior(codes, bandwidth=0.7)
    z = prior.sample(200_000, gen)
    assert torch.allclose(z.mean(0), codes.mean(0), atol=0.02)
    # A mixture of N(z_i, h^2 I): the codes' variance plus h^2 in every direction.
    assert torch.allclose(z.var(0), codes.var(0, unbiased=False) + 0.49, rtol=0.02)


def test_kde_background_mixture_and_log_prob():
    codes = torch.full((10, 2), 5.0)
    prior = KDEPrior(codes, bandwidth=0.1, background_weight=0.25)
    z = prior.sample(40_000, torch.Generator().manual_seed(1))
    near_codes = ((z - 5.0).norm(dim=1) < 1.0).float().mean()
    assert near_codes == pytest.approx(0.75, abs=0.01)
    # At the codes the density is the kernel's peak (all codes coincide) plus a negligible background.
    peak = -2 * math.log(0.1) - math.log(2 * math.pi)
    assert float(prior.log_prob(torch.tensor([[5.0, 5.0]]))) == pytest.approx(peak + math.log(0.75), abs=1e-3)
    assert float(KDEPrior(codes, 0.1, 1.0).log_prob(torch.zeros(1, 2))) == pytest.approx(-math.log(2 * math.pi))


def test_holdout_likelihood_falls_as_the_bandwidth_goes_to_zero():
    gen = torch.Generator().manual_seed(2)
    train, test = torch.randn(300, 4, generator=gen), torch.randn(100, 4, generator=gen)
    likelihoods = [KDEPrior(train, h).holdout_log_likelihood(test) for h in (0.5, 0.2, 0.1, 0.05, 0.02)]
    assert likelihoods == sorted(likelihoods, reverse=True)


@pytest.mark.parametrize("kwargs,match", [
    ({"bandwidth": -0.1}, "bandwidth must be > 0"),
    ({"bandwidth": 0.1, "background_weight": 1.5}, "background weight"),
])
def test_kde_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KDEPrior(torch.zeros(3, 2), **kwargs)


@pytest.mark.parametrize("overrides", [["prior.name=kde"], ["acl.variant=gan", "mode=clean"]])
def test_an_evaluation_s_z_come_from_a_cpu_generator_whatever_device_the_nets_are_on(overrides):
    """Sampler.draw seeds a CPU generator, so the z are the same on every device (a CUDA generator's differ); the
    prior takes them to its nets' device. The meta device stands for a GPU: a CPU tensor fed to a meta net fails."""
    cfg = load_config(None, ["model.g_width=8", "model.d_width=8", "acl.code_width=16", *overrides])
    gan = build_gan(cfg, (1, 28, 28))
    if cfg.prior.name == "kde":
        gan.prior.kde = KDEPrior(torch.randn(12, cfg.model.z_dim, device="meta"), 0.1)
    else:
        gan.prior.C.to("meta")
    samples = gan.sampler.to("meta").draw(50, seed=4)
    assert samples.device.type == "meta" and samples.shape == (50, 1, 28, 28)


def test_a_warm_reversal_with_the_mmd_rule_starts_reals_and_fakes_on_the_same_footing(monkeypatch):
    reals, indices = torch.rand(32, 1, 28, 28), torch.arange(100, 132)
    cfg = load_config(None, KDE + ["reversal.warm_start=true", "reversal.mmd_threshold=0.01", "reversal.max_steps=40",
                                   "model.g_width=16", "reversal.lr=0.12"])
    gan = build_gan(cfg, (1, 28, 28))
    gan.players.G.load_state_dict(_generator(3).state_dict())
    # The bank as earlier reversals leave it: codes moved away from their N(0, I) start (issue 15, item 5: shifted
    # by 0.2 they differ from fresh draws by an MMD^2 of about 1e-2, and the rule fired after one step).
    torch.manual_seed(0)
    banked = torch.randn(32, cfg.model.z_dim) + 0.3
    gan.prior.code_bank = dict(zip(range(100, 132), banked))
    starts = []
    real_reverse = reversal.reverse

    def recording_reverse(*args, init=None, **kwargs):
        starts.append(init)
        return real_reverse(*args, init=init, **kwargs)

    monkeypatch.setattr("gansweep.gan.priors.reverse", recording_reverse)
    figures = gan.prior.refresh(reals, indices)
    (init,) = starts
    # The reals start from their banked codes, the fakes from the same codes in another order: before any step the
    # two batches are one set, so the rule fires only once the reversal has moved them apart.
    assert init.shape == (64, cfg.model.z_dim) and torch.equal(init[:32], banked)
    matches = (init[32:, None] == banked[None]).all(dim=2)  # (fake row, banked row)
    assert matches.sum(dim=1).eq(1).all() and matches.sum(dim=0).eq(1).all()  # a permutation of the banked codes
    assert not torch.equal(init[32:], banked)
    assert reversal.mmd2_unbiased(init[:32], init[32:], torch.cdist(init, init).median()) <= 0
    assert figures["reversal_steps"] > 1


def test_the_reversal_has_one_scale_in_every_mode():
    # Ambient through a measurement that loses nothing (Block-Pixel p=0) is the clean reversal: the same errors and
    # steps, so prior/reversal_error and reversal.lr mean one thing across modes (issue 15, item 7: clean modes
    # compared [-1, 1] images, a 4x larger error and gradient).
    reals, indices = torch.rand(16, 1, 28, 28), torch.arange(16)

    def refresh(*mode: str) -> dict:
        gan = build_gan(load_config(None, KDE[2:] + list(mode) + ["reversal.max_steps=8", "model.g_width=16"]),
                        (1, 28, 28))
        gan.players.G.load_state_dict(_generator(3).state_dict())
        return gan.prior.refresh(reals, indices)

    clean = refresh("mode=clean", "measurement.name=none")
    ambient = refresh("mode=ambient", "measurement.name=block_pixel", "measurement.p=0")
    assert clean == pytest.approx(ambient, rel=1e-5)
    assert clean["reversal_error"] < 0.25  # a mean squared error of images in [0, 1]


def test_the_prior_names_config_checks_are_the_registry_s():
    # config sits below gan, so it checks prior.name against its own list: it must name exactly the registry's priors.
    assert PRIORS == tuple(REGISTRY)
