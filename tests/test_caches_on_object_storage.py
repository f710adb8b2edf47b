"""Caches on object storage: with GANSWEEP_CACHE (or data.cache_dir) an s3:// location, the domain classifier, the
reference features, the IDX sets' Parquet and mode unmeasure's restored set are made once in the bucket and read
back from it, nothing of them on the local disk; a cache folder without its completion marker is absent."""

import json

import numpy as np
import pytest
import torch
from conftest import needs_fashion
from gansweep import storage
from gansweep.config.checks import validate
from gansweep.config.loading import load_config
from gansweep.data.cache import classifier_folder
from gansweep.data.cache import root as cache_root_of
from gansweep.data import source_idx
from gansweep.data.restoration import restore
from gansweep.data.sources import (
    describe_source,
    load_source,
    read_piece,
    source_pieces,
)
from gansweep.data.thetas import measure_keyed
from gansweep.evaluation import reference
from gansweep.evaluation.classifier import (
    ClassifierRecord,
    classifier_fingerprint,
    load_or_train_classifier,
)
from gansweep.nets.domain_classifier import DomainClassifier
from gansweep.run import training_set
from PIL import Image

pytestmark = needs_fashion


@pytest.fixture
def cache(s3_bucket, monkeypatch, tmp_path):
    """GANSWEEP_CACHE in the bucket, run from an empty folder that must stay empty: no local "s3:" folder."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    location = f"{s3_bucket}/cache"
    monkeypatch.setenv("GANSWEEP_CACHE", location)
    yield location
    assert list(work.iterdir()) == []


def _keys(location: str) -> list[str]:
    """Every object under LOCATION, relative to it."""
    import boto3

    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    return sorted(item["Key"].removeprefix(f"{prefix}/") for item in listing.get("Contents", []))


def _train_small(**kwargs):
    return load_or_train_classifier("fashion_mnist", None, seed=0, epochs=1, limit=200, progress=False, **kwargs)


def test_the_classifier_is_trained_once_into_the_bucket_and_read_back(cache):
    first = _train_small()
    folder = f"classifiers/fashion_mnist-{first.fingerprint}"
    assert first.trained_now and first.path == f"{cache}/{folder}"
    assert _keys(cache) == [f"{folder}/model.pt", f"{folder}/record.json"]
    assert json.loads(storage.read_text(f"{first.path}/record.json"))["test_accuracy"] == first.test_accuracy

    second = _train_small()
    assert not second.trained_now and second.path == first.path and second.test_accuracy == first.test_accuracy
    first_state, second_state = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)


def test_a_classifier_folder_without_its_record_is_retrained(cache):
    folder = classifier_folder("fashion_mnist", classifier_fingerprint("fashion_mnist", None, seed=0, epochs=1, limit=200))
    storage.write_bytes(f"{folder}/model.pt", b"cut off")  # a writer interrupted before record.json, its marker
    trained = _train_small()
    assert trained.trained_now and trained.path == folder and storage.is_file(f"{folder}/record.json")
    again = _train_small()
    assert not again.trained_now and again.test_accuracy == trained.test_accuracy


def test_reference_features_are_cached_in_the_bucket_and_read_back_equal(cache, tmp_path, monkeypatch, s3_bucket):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(10):  # a tiny two-class image folder: 6 training, 4 test images
        folder = root / ("test" if i >= 6 else "") / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L").save(folder / f"{i}.png")
    other_cache = f"{s3_bucket}/configured"  # data.cache_dir wins over GANSWEEP_CACHE
    cfg = load_config(None, ["mode=clean", "data.name=image_folder", f"data.root={root}",
                             f"data.cache_dir={other_cache}"])
    torch.manual_seed(0)
    record = ClassifierRecord(model=DomainClassifier(1, 2).eval(), fingerprint="f" * 16, test_accuracy=0.5,
                              n_train=6, path=None)
    cache_root = cache_root_of(cfg.data.cache_dir)
    assert cache_root == other_cache
    first = reference.reference_features(cfg.data, record, cache_root)
    assert first.computed_now and first.feats.shape == (4, record.model.feature_dim)
    assert first.path.startswith(f"{other_cache}/reference/image_folder-") and storage.is_file(first.path)
    assert _keys(other_cache) == [first.path.removeprefix(f"{other_cache}/")] and _keys(cache) == []

    monkeypatch.setattr(reference, "classifier_outputs", lambda *a, **k: pytest.fail("features computed again"))
    second = reference.reference_features(cfg.data, record, cache_root)
    assert not second.computed_now and second.path == first.path
    np.testing.assert_array_equal(second.feats, first.feats)


def test_an_idx_split_is_prepared_once_in_the_bucket_and_its_pieces_read_as_the_local_files(cache, monkeypatch):
    split = source_pieces("fashion_mnist", None, "test", limit=300, rows_per_piece=128)
    prepared = split.pieces[0].path
    assert prepared.startswith(f"{cache}/prepared/fashion_mnist-") and prepared.endswith("/test.parquet")
    assert [p.path for p in split.pieces] == [prepared] * 3 and storage.is_file(prepared)
    local = load_source("fashion_mnist", None, "test", limit=300)  # straight from the IDX files
    pieces = [read_piece(piece, None, 1) for piece in split.pieces]
    assert np.array_equal(np.concatenate([p.images for p in pieces]), local.images)
    assert np.array_equal(np.concatenate([p.labels for p in pieces]), local.labels)

    monkeypatch.setattr(source_idx, "_load_idx", lambda *a, **k: pytest.fail("the IDX split was converted again"))
    assert source_pieces("fashion_mnist", None, "test", limit=50).pieces[0].path == prepared


def _prepared(cfg):
    data = cfg.data
    source = describe_source(data.name, data.root, data.image_size, data.limit)
    return training_set.prepare_training_set(cfg, validate(cfg), source)


def test_the_restored_set_is_written_to_the_bucket_by_the_ray_job_once_and_a_half_written_one_is_absent(cache):
    import ray

    cfg = load_config(None, ["mode=unmeasure", "data.limit=200", "measurement.name=block_patch",
                             "measurement.patch=10"])
    folder = training_set.restored_folder(cfg)
    assert folder.startswith(f"{cache}/restored/fashion_mnist-")
    storage.write_bytes(f"{folder}/part-000000.parquet", b"cut off")  # a job interrupted before its marker
    pending = _prepared(cfg)
    assert pending.restoration is not None  # no marker: not restored, and the cut-off part is not read
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        restored = training_set.restore_training_set(cfg, pending)
    finally:
        ray.shutdown()
    assert restored.restored_path == folder and restored.restoration is None
    assert _keys(folder) == [training_set.RESTORED_MARKER, "part-000000.parquet"]
    images, labels = training_set.read_training_set(restored)

    # What the job made: the lossy images (each theta keyed by its index) restored, as uint8.
    clean = load_source("fashion_mnist", None, limit=200)
    measurement = pending.stream.measurement
    y, theta = measure_keyed(measurement, torch.from_numpy(clean.images).float() / 255, range(200), cfg.data.seed)
    expected = np.rint(restore(measurement, y, theta, **pending.restoration) * 255).clip(0, 255) / np.float32(255)
    assert np.array_equal(images, expected.astype(np.float32)) and np.array_equal(labels, clean.labels)

    again = _prepared(cfg)  # a new run, Ray down: found restored in the bucket
    assert again.restoration is None and again.restored_path == folder
    assert np.array_equal(training_set.read_training_set(again)[0], images)
