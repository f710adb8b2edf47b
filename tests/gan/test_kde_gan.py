"""KDE-GAN (Kilcher et al., Algorithm 2): the prior re-estimated from reversed reals, fed to G, checkpointed,
and used by the evaluation."""

import pytest
import torch
from conftest import _generator, _save_run
from gansweep.config import ConfigError, load_config
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.build import build_gan
from gansweep.gan.priors import KDEPrior
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
                                       "reversal.lr=0.03"])
        gan = build_gan(cfg, (1, 28, 28))
        gan.players.G.load_state_dict(_generator(3).state_dict())  # random weights whose images respond to z
        return gan.prior.refresh(reals, indices), gan.prior.refresh(reals, indices)

    (cold_first, cold_second), (warm_first, warm_second) = two_refreshes(False), two_refreshes(True)
    assert warm_first == pytest.approx(cold_first)  # nothing to start from yet
    # The second reversal of the same images goes on from where the first stopped: a lower error.
    assert warm_second["reversal_error"] < warm_first["reversal_error"]
    assert warm_second["reversal_error"] < cold_second["reversal_error"]


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
