"""KDE-GAN in mode ambient: each lossy real's theta a pure function of (data.seed, its index in the set), and the
reversal of a measured real through f_theta with the theta that measured it, ||f_theta(G(z)) - y||^2."""

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Z_DIM, _generator, needs_fashion
from gansweep.config.checks import validate
from gansweep.config.loading import load_config
from gansweep.data.sources import describe_source
from gansweep.data.thetas import keyed_theta, measure_keyed
from gansweep.run.training_set import (
    fingerprint,
    prepare_training_set,
    read_training_set,
)
from gansweep.gan.ambient import AmbientGAN
from gansweep.gan.build import build_gan
from gansweep.gan.reversal import reverse
from gansweep.nets.measurements import BlockPixel
from gansweep.nets.models import Generator
from gansweep.nets.pixels import to_unit
from gansweep.run.run_dir import latest_checkpoint, load_checkpoint
from gansweep.run.trainer import check_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

KDE = ["prior.name=kde", "model.g_width=16", "model.d_width=8", "reversal.max_steps=10", "reversal.lr=0.03"]
CASCADE = "measurement.steps=[{name: block_pixel, p: 0.3}, {name: block_patch, patch: 8}]"
MEASUREMENTS = {
    "block_pixel": ["measurement.name=block_pixel", "measurement.p=0.5"],
    "block_patch": ["measurement.name=block_patch", "measurement.patch=10"],
    "cascade": ["measurement.name=cascade", CASCADE],
}
ROWS = [0, 7, 42, 199]
SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")  # Fashion-MNIST's pieces converted once for the module


def _data(cache: Path, *overrides):
    return load_config(None, [f"data.cache_dir={cache}", "data.limit=200", *overrides])


def _read(cfg) -> torch.Tensor:
    """The training set of CFG as the workers' stream gives it (measured with each image's keyed theta)."""
    source = describe_source(cfg.data.name, cfg.data.root, cfg.data.image_size, cfg.data.limit)
    return torch.from_numpy(read_training_set(prepare_training_set(cfg, validate(cfg), source))[0])


@pytest.fixture(scope="module")
def clean(cache) -> torch.Tensor:
    return _read(_data(cache, "mode=clean"))


def _digest(theta: dict) -> str:
    """SHA-256 of a theta's tensors: keys, dtypes, shapes and bytes (a cascade's steps in order)."""
    digest = hashlib.sha256()

    def add(part: dict) -> None:
        for key in sorted(part):
            if key == "steps":
                for step in part[key]:
                    add(step)
            else:
                value = part[key].contiguous()
                digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
                digest.update(value.numpy().tobytes())

    add(theta)
    return digest.hexdigest()


@needs_fashion
@pytest.mark.parametrize("measurement", MEASUREMENTS.values(), ids=MEASUREMENTS.keys())
def test_the_theta_recomputed_from_the_index_reproduces_the_measured_set_exactly(cache, clean, measurement):
    cfg = _data(cache, "prior.name=kde", *measurement)
    lossy, f = _read(cfg), validate(cfg).image
    assert lossy.shape == clean.shape == (200, *SHAPE)
    y = lossy[ROWS]
    assert torch.equal(f.measure(clean[ROWS], keyed_theta(f, SHAPE, ROWS, cfg.data.seed)), y)
    # Whatever batch an image is in, its theta is its own: image 42 alone is measured as in the set.
    assert torch.equal(f.measure(clean[[42]], keyed_theta(f, SHAPE, [42], cfg.data.seed)), lossy[[42]])
    # Another image's theta does not reproduce it.
    shifted = ROWS[1:] + ROWS[:1]
    assert not torch.equal(f.measure(clean[ROWS], keyed_theta(f, SHAPE, shifted, cfg.data.seed)), y)


@pytest.mark.parametrize("measurement", [
    MEASUREMENTS["block_pixel"], MEASUREMENTS["cascade"],
    ["measurement.name=gaussian_projection", "measurement.projections=20"],
], ids=["block_pixel", "cascade", "gaussian_projection"])
def test_the_same_seed_and_index_give_the_same_theta_in_another_process(measurement):
    overrides = ["data.seed=3", *measurement]
    cfg = load_config(None, overrides)
    here = _digest(keyed_theta(validate(cfg).image, SHAPE, ROWS, cfg.data.seed))
    code = inspect.getsource(_digest) + "\n".join([
        "import hashlib, torch",
        "from gansweep.config.checks import validate",
        "from gansweep.config.loading import load_config",
        "from gansweep.data.thetas import keyed_theta",
        "torch.manual_seed(12345); torch.rand(99)  # another global generator state: a keyed theta never reads it",
        f"cfg = load_config(None, {overrides!r})",
        f"print(_digest(keyed_theta(validate(cfg).image, {SHAPE!r}, {ROWS!r}, cfg.data.seed)))",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == here
    other = load_config(None, ["data.seed=4", *measurement])
    assert _digest(keyed_theta(validate(other).image, SHAPE, ROWS, other.data.seed)) != here


def test_another_seed_or_another_index_draws_independently():
    p, n = 0.8, 200
    f = BlockPixel(p=p)
    mask = keyed_theta(f, SHAPE, range(n), seed=0)["mask"].bool()
    assert torch.equal(keyed_theta(f, SHAPE, range(n), seed=0)["mask"].bool(), mask)
    chance = p**2 + (1 - p) ** 2  # two independent Bernoulli(1 - p) masks agree at this rate
    for seed in (1, 2, 1000):  # nearby seeds too: no shared draws
        other = keyed_theta(f, SHAPE, range(n), seed=seed)["mask"].bool()
        assert float((other == mask).float().mean()) == pytest.approx(chance, abs=0.01), seed
    # Neighbouring images under one seed as well.
    assert float((mask[1:] == mask[:-1]).float().mean()) == pytest.approx(chance, abs=0.01)


@needs_fashion
def test_block_pixel_drops_its_share_of_the_pixels(cache, clean):
    lossy = _read(_data(cache, "measurement.name=block_pixel", "measurement.p=0.8"))
    dropped = (lossy == 0) & (clean > 0)
    assert float(dropped.sum() / (clean > 0).sum()) == pytest.approx(0.8, abs=0.02)
    assert torch.equal(lossy[lossy > 0], clean[lossy > 0])  # what is kept is kept unchanged


@needs_fashion
def test_block_patch_corners_are_uniform_over_the_valid_positions(cache, clean):
    cfg = _data(cache, *MEASUREMENTS["block_patch"])
    f, positions = validate(cfg).image, 28 - 10 + 1
    corners = keyed_theta(f, SHAPE, range(2000), cfg.data.seed)["corners"]
    assert corners.min() == 0 and corners.max() == positions - 1
    for axis in range(2):
        counts = np.bincount(corners[:, axis].numpy(), minlength=positions)
        expected = len(corners) / positions
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 45, (axis, counts)  # 18 degrees of freedom: above 45 once in ~2,000 uniform draws
    # The measured set has each image's patch zeroed where its keyed corner says, and nothing else.
    lossy = _read(cfg)
    for index, (row, col) in zip(range(200), corners[:200].tolist()):
        assert not lossy[index, :, row:row + 10, col:col + 10].any()
        outside = torch.ones(SHAPE, dtype=torch.bool)
        outside[:, row:row + 10, col:col + 10] = False
        assert torch.equal(lossy[index][outside], clean[index][outside])


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
    generator = Generator(SHAPE, z_dim=Z_DIM, width=16)
    generator.load_state_dict(weights)
    return generator.eval()


def _configs(*overrides: str):
    """The config of the run that measured the set, and the same with another data.seed: a GAN built from it
    recomputes other thetas than those that measured the reals."""
    return load_config(None, [*KDE, *overrides]), load_config(None, [*KDE, *overrides, "data.seed=1"])


def _measured_set(cfg, weights: dict, n: int = 32) -> torch.Tensor:
    """Y = f_theta(G(z)) of N codes under the random G, image i measured with its keyed theta under CFG's seed:
    a training set of N images, as the stream would give it."""
    with torch.no_grad():
        x = to_unit(_generator_with(weights)(torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(0))))
        return measure_keyed(validate(cfg).image, x, range(n), cfg.data.seed)[0]


def _gan(cfg, weights: dict) -> AmbientGAN:
    gan = build_gan(cfg, SHAPE)
    gan.players.G.load_state_dict(weights)
    return gan


def test_refresh_prior_reverses_each_measured_real_through_its_own_theta(weights):
    cfg, wrong = _configs("measurement.name=block_pixel", "measurement.p=0.5")
    y = _measured_set(cfg, weights)
    rows = torch.tensor([3, 17, 9, 30, 4, 22, 11, 0])  # a shuffled batch, as the train loop's
    gan = _gan(cfg, weights)
    figures = gan.prior.refresh(y[rows], rows)
    assert figures["reversal_steps"] == 10 and gan.prior.kde.codes.shape == (8, Z_DIM)
    assert figures["reversal_error"] < 0.3 * _gan(wrong, weights).prior.refresh(y[rows], rows)["reversal_error"]
    with pytest.raises(ValueError, match="the clean image shape and the batch's indices"):
        gan.prior.refresh(y[rows])


def test_hidden_injection_reverses_through_the_clean_generator(weights):
    cfg, _ = _configs("measurement.name=block_pixel")
    hidden, _ = _configs("measurement.name=block_pixel", "hidden.inject_at=up1",
                         "hidden.measurement.name=block_pixel", "hidden.measurement.p=1.0")
    y = _measured_set(cfg, weights)
    rows = torch.arange(8)
    plain_gan, hidden_gan = _gan(cfg, weights), _gan(hidden, weights)
    plain_gan.prior.refresh(y[rows], rows)
    hidden_gan.prior.refresh(y[rows], rows)
    # A hidden measurement dropping every feature map would leave G(z) blind to z: it is not in the reversal.
    assert torch.equal(hidden_gan.prior.kde.codes, plain_gan.prior.kde.codes)


def test_the_mmd_rule_reverses_measured_fakes_alongside_even_when_the_shape_changes(weights):
    cfg, wrong = _configs("measurement.name=extract_patch", "measurement.patch=12",
                          "reversal.mmd_threshold=10")  # MMD^2 <= 2: never stops, always measured
    y = _measured_set(cfg, weights)
    assert y.shape == (32, 1, 12, 12)
    rows = torch.arange(16, 24)
    gan = _gan(cfg, weights)
    theta_stream = gan.streams.theta.get_state()
    figures = gan.prior.refresh(y[rows], rows)
    assert figures["reversal_steps"] == 10 and 0 < figures["reversal_mmd2"] < 2
    assert gan.prior.kde.codes.shape == (8, Z_DIM)
    assert not torch.equal(gan.streams.theta.get_state(), theta_stream)  # the fakes drew their own theta
    assert figures["reversal_error"] < _gan(wrong, weights).prior.refresh(y[rows], rows)["reversal_error"]


def test_kde_is_accepted_in_mode_ambient_with_gaussian_projection_too(weights):
    load_config(None, ["prior.name=kde", "measurement.name=cascade",  # accepted: no ConfigError
                       "measurement.steps=[{name: block_pixel}, {name: gaussian_projection}]"])
    # Its theta (a scale and an image of noise per image) is recomputed from the index, never kept: a refresh
    # reverses through it.
    cfg, wrong = _configs("measurement.name=gaussian_projection", "measurement.projections=100")
    y = _measured_set(cfg, weights, n=8)
    assert y.shape == (8, *SHAPE)  # the back-projection: an image
    rows = torch.tensor([5, 2, 7, 0])
    gan = _gan(cfg, weights)
    figures = gan.prior.refresh(y[rows], rows)
    assert figures["reversal_steps"] == 10 and gan.prior.kde.codes.shape == (4, Z_DIM)
    assert np.isfinite(figures["reversal_error"]) and torch.isfinite(gan.prior.kde.codes).all()
    assert figures["reversal_error"] < 0.3 * _gan(wrong, weights).prior.refresh(y[rows], rows)["reversal_error"]


@needs_fashion
def test_kde_with_gaussian_projection_passes_the_checks_against_the_source(cache):
    checked = check_config(_data(cache, "prior.name=kde", "measurement.name=gaussian_projection"))
    assert checked.training_set.sample_shape == checked.training_set.clean_shape == SHAPE


@needs_fashion
@pytest.mark.slow  # a minute on Ray, on 2 cores; the parts are tested in-process above (run with -m slow)
def test_ambient_kde_gan_trains_on_ray_with_each_worker_recomputing_theta_from_the_index(tmp_path):
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
    assert summary["step"] == 4
    # Nothing kept for the thetas: the workers stream the set measured with the keyed thetas, and the prior
    # recomputes each real's from its index.
    data = summary["data"]
    assert data["fingerprint"] == fingerprint(load_config(None, overrides)) and data["n_train"] == 64
    assert data["sample_shape"] == [1, 28, 28] and data["restored_set"] is None and "theta_store" not in data
    assert not any(path.name.endswith(".theta") for path in cache.rglob("*"))
    assert summary["metrics"]["reversal_steps"] == 3 and summary["metrics"]["reversal_error"] > 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag in ("prior/reversal_steps", "prior/reversal_error", "prior/reversal_mmd2"):
        assert [e.step for e in events.Scalars(tag)] == [2, 4]
    state = load_checkpoint(latest_checkpoint(run))
    assert state["prior_codes"].shape == (8, 64)  # one worker's real batch (16 / 2 workers), model.z_dim codes
