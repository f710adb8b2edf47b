"""KDE-GAN in mode ambient: each lossy real's theta kept beside the lossy cache, and the reversal of a measured
real through f_theta with the theta that measured it, ||f_theta(G(z)) - y||^2."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Z_DIM, _generator, needs_fashion
from gansweep.cli import main
from gansweep.config import ConfigError, load_config
from gansweep.data.sources import DataSourceError
from gansweep.data.thetas import ThetaStore, save_store
from gansweep.data.training_set import load_training_set
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.build import build_gan
from gansweep.gan.reversal import reverse
from gansweep.nets.measurements import BlockPixel, build_measurement
from gansweep.nets.models import Generator
from gansweep.nets.pixels import to_unit
from gansweep.run.run_dir import latest_checkpoint, load_checkpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

KDE = ["prior.name=kde", "model.g_width=16", "model.d_width=8", "reversal.max_steps=10", "reversal.lr=0.03"]
CASCADE = "measurement.steps=[{name: block_pixel, p: 0.3}, {name: block_patch, patch: 8}]"
ROWS = [0, 7, 42, 199]


def _data(tmp_path, *overrides):
    return load_config(None, [f"data.cache_dir={tmp_path}", "data.limit=200", *overrides])


@needs_fashion
@pytest.mark.parametrize("measurement", [
    ["measurement.name=block_pixel", "measurement.p=0.5"],
    ["measurement.name=block_patch", "measurement.patch=10"],
    ["measurement.name=cascade", CASCADE],
])
def test_the_stored_theta_reproduces_the_lossy_cache_exactly(tmp_path, measurement):
    cfg = _data(tmp_path, "prior.name=kde", *measurement)
    lossy = load_training_set(cfg)
    clean = torch.from_numpy(load_training_set(_data(tmp_path, "mode=clean")).images)
    assert lossy.theta_path == str(Path(lossy.cache_path).with_suffix(".theta"))
    store, f = ThetaStore(lossy.theta_path), build_measurement(asdict(cfg.measurement))
    rows = torch.tensor(ROWS)
    y = torch.from_numpy(lossy.images[ROWS])
    assert torch.equal(f.measure(clean[rows], store.rows(rows)), y)
    # Another image's theta does not: the store is row-aligned with the set.
    assert not torch.equal(f.measure(clean[rows], store.rows(rows.roll(1))), y)


@needs_fashion
def test_block_pixel_masks_are_stored_as_bool(tmp_path):
    lossy = load_training_set(_data(tmp_path, "prior.name=kde", "measurement.name=block_pixel"))
    mask = np.load(Path(lossy.theta_path) / "mask.npy", mmap_mode="r")
    assert mask.dtype == bool and mask.shape == (200, 1, 28, 28)
    assert ThetaStore(lossy.theta_path).rows(torch.tensor([3]))["mask"].dtype == torch.float32


@needs_fashion
def test_an_old_cache_gets_its_theta_store_and_a_changed_one_is_refused(tmp_path):
    plain = load_training_set(_data(tmp_path, "measurement.name=block_pixel"))  # prior normal: no theta kept
    cache = Path(plain.cache_path)
    assert plain.theta_path is None and not cache.with_suffix(".theta").exists()
    mtime = cache.stat().st_mtime_ns

    kde = load_training_set(_data(tmp_path, "measurement.name=block_pixel", "prior.name=kde"))
    assert kde.cache_path == plain.cache_path and cache.stat().st_mtime_ns == mtime  # y kept, theta made beside it
    clean = torch.from_numpy(load_training_set(_data(tmp_path, "mode=clean")).images)
    rows = torch.tensor(ROWS)
    remeasured = BlockPixel(p=0.5).measure(clean[rows], ThetaStore(kde.theta_path).rows(rows))
    assert torch.equal(remeasured, torch.from_numpy(plain.images[ROWS]))

    # A cache that its seed no longer makes has no recoverable theta: refused, naming the file.
    other = tmp_path / "other"
    load_training_set(_data(other, "measurement.name=block_pixel"))
    changed = next((other / "lossy").glob("*.npy"))
    np.save(changed, np.load(changed)[::-1].copy())
    with pytest.raises(DataSourceError, match=f"{changed}.*data.seed=0"):
        load_training_set(_data(other, "measurement.name=block_pixel", "prior.name=kde"))
    assert not changed.with_suffix(".theta").exists()


def test_reversal_through_the_measurement_needs_the_theta_that_measured(weights):
    generator = _generator_with(weights)
    z_true = torch.randn(8, Z_DIM, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = to_unit(generator(z_true))
    f, rng = BlockPixel(p=0.5), torch.Generator().manual_seed(3)
    theta, wrong = f.sample_theta(x, rng), f.sample_theta(x, rng)
    y = f.measure(x, theta)
    start = z_true + 0.3 * torch.randn(8, Z_DIM, generator=rng)  # near the truth, where descent converges to it

    def reversal(t):
        return reverse(generator, y, lr=0.1, max_steps=30, init_std=0.0, init=start,
                       measure=lambda images: f.measure(to_unit(images), t))

    right, off = reversal(theta), reversal(wrong)
    assert all(later < earlier for earlier, later in zip(right.errors, right.errors[1:]))  # falls every step
    assert right.errors[-1] < 0.3 * right.errors[0] and right.errors[-1] < 0.05 * off.errors[-1]
    distance = {name: float((r.codes - z_true).norm(dim=1).mean()) for name, r in (("right", right), ("off", off))}
    assert distance["right"] < 0.6 * float((start - z_true).norm(dim=1).mean())
    assert distance["right"] < 0.5 * distance["off"]


@pytest.fixture(scope="module")
def weights() -> dict:
    return _generator(3).state_dict()  # random weights whose images respond to z (made once: seconds on a CPU)


def _generator_with(weights: dict) -> Generator:
    generator = Generator((1, 28, 28), z_dim=Z_DIM, width=16)
    generator.load_state_dict(weights)
    return generator.eval()


def _measured_set(tmp_path: Path, cfg, weights: dict, n: int = 32) -> tuple[torch.Tensor, Path, Path]:
    """Y = f_theta(G(z)) of N codes under the random G, a store of that theta and a store of another draw."""
    f, rng = build_measurement(asdict(cfg.measurement)), torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = to_unit(_generator_with(weights)(torch.randn(n, Z_DIM, generator=rng)))
    theta, wrong = f.sample_theta(x, rng), f.sample_theta(x, rng)
    save_store(tmp_path / "right", theta)
    save_store(tmp_path / "wrong", wrong)
    return f.measure(x, theta), tmp_path / "right", tmp_path / "wrong"


def _gan(cfg, store: Path, weights: dict) -> AmbientGAN:
    gan = build_gan(cfg, (1, 28, 28), thetas=ThetaStore(store))
    gan.players.G.load_state_dict(weights)
    return gan


def test_refresh_prior_reverses_each_measured_real_through_its_own_theta(tmp_path, weights):
    cfg = load_config(None, KDE + ["measurement.name=block_pixel", "measurement.p=0.5"])
    y, right, wrong = _measured_set(tmp_path, cfg, weights)
    rows = torch.tensor([3, 17, 9, 30, 4, 22, 11, 0])  # a shuffled batch, as the train loop's
    gan = _gan(cfg, right, weights)
    figures = gan.prior.refresh(y[rows], rows)
    assert figures["reversal_steps"] == 10 and gan.prior.kde.codes.shape == (8, Z_DIM)
    assert figures["reversal_error"] < 0.3 * _gan(cfg, wrong, weights).prior.refresh(y[rows], rows)["reversal_error"]
    with pytest.raises(ValueError, match="theta store and the batch's indices"):
        gan.prior.refresh(y[rows])


def test_hidden_injection_reverses_through_the_clean_generator(tmp_path, weights):
    cfg = load_config(None, KDE + ["measurement.name=block_pixel"])
    hidden = load_config(None, KDE + ["measurement.name=block_pixel", "hidden.inject_at=up1",
                                      "hidden.measurement.name=block_pixel", "hidden.measurement.p=1.0"])
    y, right, _ = _measured_set(tmp_path, cfg, weights)
    rows = torch.arange(8)
    plain_gan, hidden_gan = _gan(cfg, right, weights), _gan(hidden, right, weights)
    plain_gan.prior.refresh(y[rows], rows)
    hidden_gan.prior.refresh(y[rows], rows)
    # A hidden measurement dropping every feature map would leave G(z) blind to z: it is not in the reversal.
    assert torch.equal(hidden_gan.prior.kde.codes, plain_gan.prior.kde.codes)


def test_the_mmd_rule_reverses_measured_fakes_alongside_even_when_the_shape_changes(tmp_path, weights):
    cfg = load_config(None, KDE + ["measurement.name=extract_patch", "measurement.patch=12",
                                   "reversal.mmd_threshold=10"])  # MMD^2 <= 2: never stops, always measured
    y, right, wrong = _measured_set(tmp_path, cfg, weights)
    assert y.shape == (32, 1, 12, 12)
    rows = torch.arange(16, 24)
    gan = _gan(cfg, right, weights)
    theta_stream = gan.streams.theta.get_state()
    figures = gan.prior.refresh(y[rows], rows)
    assert figures["reversal_steps"] == 10 and 0 < figures["reversal_mmd2"] < 2
    assert gan.prior.kde.codes.shape == (8, Z_DIM)
    assert not torch.equal(gan.streams.theta.get_state(), theta_stream)  # the fakes drew their own theta
    assert figures["reversal_error"] < _gan(cfg, wrong, weights).prior.refresh(y[rows], rows)["reversal_error"]


def test_kde_is_accepted_in_mode_ambient_but_not_with_gaussian_projection(capsys):
    assert load_config(None, ["prior.name=kde", "measurement.name=block_patch"]).needs_theta
    with pytest.raises(ConfigError, match="gaussian_projection's theta .* too big"):
        load_config(None, ["prior.name=kde", "measurement.name=cascade",
                           "measurement.steps=[{name: block_pixel}, {name: gaussian_projection}]"])
    code = main(["train", "--set", "prior.name=kde", "--set", "measurement.name=gaussian_projection"])
    assert code == 2
    error = capsys.readouterr().err
    assert "prior.name=kde with mode=ambient" in error and "gaussian_projection's theta is an m x D matrix" in error


@needs_fashion
def test_ambient_kde_gan_trains_on_ray_with_each_worker_reading_the_theta_store(tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    overrides = ["data.limit=64", "train.workers=2", "train.batch_size=16", "train.steps=4", "train.log_every=2",
                 "train.checkpoint_every=4", "eval.every=0", "eval.n_samples=0", "model.g_width=8", "model.d_width=8",
                 "measurement.name=block_pixel", "prior.name=kde", "reversal.max_steps=3",
                 "reversal.mmd_threshold=10"]
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(run)]
    for item in overrides:
        args += ["--set", item]
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "GANSWEEP_CACHE": str(cache)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    summary = json.loads((run / "result.json").read_text())
    assert summary["step"] == 4 and Path(summary["data"]["theta_store"]).is_dir()
    assert summary["metrics"]["reversal_steps"] == 3 and summary["metrics"]["reversal_error"] > 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag in ("prior/reversal_steps", "prior/reversal_error", "prior/reversal_mmd2"):
        assert [e.step for e in events.Scalars(tag)] == [2, 4]
    state = load_checkpoint(latest_checkpoint(run))
    assert state["prior_codes"].shape == (8, 64)  # one worker's real batch (16 / 2 workers), model.z_dim codes
