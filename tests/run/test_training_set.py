"""The training set: described and listed, never loaded; the lossy y = f_theta(x) made in the stream with each
image's theta keyed by (data.seed, index)."""

import numpy as np
import pytest
from conftest import needs_fashion
from gansweep.config.checks import validate
from gansweep.config.loading import load_config
from gansweep.data.sources import describe_source, load_source
from gansweep.run.training_set import (
    fingerprint,
    prepare_training_set,
    read_training_set,
)

pytestmark = needs_fashion


def _cfg(tmp_path, *overrides):
    return load_config(None, [f"data.cache_dir={tmp_path}", "data.limit=200", *overrides])


def _set(cfg):
    data = cfg.data
    return prepare_training_set(cfg, validate(cfg), describe_source(data.name, data.root, data.image_size,
                                                                              data.limit))


def test_lossy_set_is_the_same_every_time_it_is_read(tmp_path):
    cfg = _cfg(tmp_path, "measurement.name=block_pixel", "measurement.p=0.8")
    lossy = _set(cfg)
    assert lossy.n_images == 200 and lossy.sample_shape == (1, 28, 28)
    images, labels = read_training_set(lossy)
    assert images.shape == (200, 1, 28, 28) and images.dtype == np.float32
    clean, _ = read_training_set(_set(_cfg(tmp_path, "mode=clean")))
    dropped = (images == 0) & (clean > 0)
    assert dropped.sum() / (clean > 0).sum() == pytest.approx(0.8, abs=0.02)
    assert np.array_equal(read_training_set(_set(cfg))[0], images)  # no cache, the same y: theta is keyed
    assert np.array_equal(read_training_set(lossy, limit=50)[0], images[:50])


def test_fingerprint_tracks_what_changes_the_data(tmp_path):
    base = _cfg(tmp_path, "measurement.name=block_pixel")
    assert fingerprint(base) == fingerprint(_cfg(tmp_path, "measurement.name=block_pixel", "train.steps=7"))
    assert fingerprint(base) == fingerprint(_cfg(tmp_path, "measurement.name=block_pixel", "mode=ignore"))
    for change in ("measurement.p=0.9", "data.seed=1", "data.limit=100", "mode=clean"):
        assert fingerprint(base) != fingerprint(_cfg(tmp_path, "measurement.name=block_pixel", change)), change


def test_different_seed_gives_different_theta(tmp_path):
    a = read_training_set(_set(_cfg(tmp_path, "measurement.name=block_patch", "measurement.patch=10")))[0]
    b = read_training_set(_set(_cfg(tmp_path, "measurement.name=block_patch", "measurement.patch=10",
                                    "data.seed=5")))[0]
    assert not np.array_equal(a, b)


def test_clean_mode_streams_the_clean_images_unchanged(tmp_path):
    clean = _set(_cfg(tmp_path, "mode=clean"))
    assert clean.stream.measurement is None
    images, labels = read_training_set(clean)
    assert images.min() == 0 and images.max() == 1
    assert list(labels[:3]) == [9, 0, 0]
    source = load_source("fashion_mnist", None, limit=200)
    assert np.array_equal(images, source.images / np.float32(255)) and np.array_equal(labels, source.labels)


def test_idx_sets_are_converted_to_parquet_in_the_cache_once(tmp_path):
    first = _set(_cfg(tmp_path, "mode=clean"))
    prepared = list((tmp_path / "prepared").rglob("train.parquet"))
    assert len(prepared) == 1 and first.stream.pieces[0].path == str(prepared[0])
    mtime = prepared[0].stat().st_mtime_ns
    _set(_cfg(tmp_path, "mode=clean", "data.limit=100"))
    assert prepared[0].stat().st_mtime_ns == mtime  # reused, whatever the limit
    assert len(first.stream.pieces) == 1  # 200 images: one piece of at most 1,024


def test_extract_patch_changes_the_sample_shape(tmp_path):
    patches = _set(_cfg(tmp_path, "measurement.name=extract_patch", "measurement.patch=12"))
    assert patches.sample_shape == (1, 12, 12) and patches.clean_shape == (1, 28, 28)
    assert read_training_set(patches, limit=5)[0].shape == (5, 1, 12, 12)
