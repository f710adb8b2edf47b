"""The training set: the lossy y = f_theta(x) made once with a fixed seed, cached by fingerprint."""

from pathlib import Path

import numpy as np
import pytest
from conftest import needs_fashion
from gansweep.config import load_config
from gansweep.data.training_set import fingerprint, load_training_set, to_ray_dataset

pytestmark = needs_fashion


def _cfg(tmp_path, *overrides):
    return load_config(None, [f"data.cache_dir={tmp_path}", "data.limit=200", *overrides])


def test_lossy_set_is_measured_once_and_reused(tmp_path):
    cfg = _cfg(tmp_path, "measurement.name=block_pixel", "measurement.p=0.8")
    first = load_training_set(cfg)
    assert first.images.shape == (200, 1, 28, 28) and first.images.dtype == np.float32
    clean = load_training_set(_cfg(tmp_path, "mode=clean")).images
    dropped = (first.images == 0) & (clean > 0)
    assert dropped.sum() / (clean > 0).sum() == pytest.approx(0.8, abs=0.02)
    assert Path(first.cache_path).is_file()

    mtime = Path(first.cache_path).stat().st_mtime_ns
    second = load_training_set(cfg)
    assert second.cache_path == first.cache_path
    assert Path(second.cache_path).stat().st_mtime_ns == mtime  # read back, not remade
    assert np.array_equal(first.images, second.images)


def test_fingerprint_tracks_what_changes_the_data(tmp_path):
    base = _cfg(tmp_path, "measurement.name=block_pixel")
    assert fingerprint(base) == fingerprint(_cfg(tmp_path, "measurement.name=block_pixel", "train.steps=7"))
    assert fingerprint(base) == fingerprint(_cfg(tmp_path, "measurement.name=block_pixel", "mode=ignore"))
    for change in ("measurement.p=0.9", "data.seed=1", "data.limit=100", "mode=clean"):
        assert fingerprint(base) != fingerprint(_cfg(tmp_path, "measurement.name=block_pixel", change)), change


def test_different_seed_gives_different_theta(tmp_path):
    a = load_training_set(_cfg(tmp_path, "measurement.name=block_patch", "measurement.patch=10"))
    b = load_training_set(_cfg(tmp_path, "measurement.name=block_patch", "measurement.patch=10", "data.seed=5"))
    assert not np.array_equal(a.images, b.images)


def test_clean_mode_uses_the_clean_images_unchanged(tmp_path):
    clean = load_training_set(_cfg(tmp_path, "mode=clean"))
    assert clean.cache_path is None
    assert clean.images.min() == 0 and clean.images.max() == 1
    assert list(clean.labels[:3]) == [9, 0, 0]


def test_extract_patch_changes_the_sample_shape(tmp_path):
    patches = load_training_set(_cfg(tmp_path, "measurement.name=extract_patch", "measurement.patch=12"))
    assert patches.sample_shape == (1, 12, 12) and patches.clean_shape == (1, 28, 28)


def test_ray_dataset_carries_images_and_labels(tmp_path):
    import ray

    training_set = load_training_set(_cfg(tmp_path, "mode=clean"))
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        rows = to_ray_dataset(training_set).take_all()
    finally:
        ray.shutdown()
    assert len(rows) == 200
    assert np.array_equal(np.stack([r["image"] for r in rows]), training_set.images)
    assert [r["label"] for r in rows] == list(training_set.labels)
