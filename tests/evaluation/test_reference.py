"""The evaluation's data: the reference splits' classifier features (the validation split's for the cheap FID, the
test split's for the full evaluation), cached once per (source, split, classifier), and the training images streamed
in batches for the nearest-neighbour distance."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gansweep.config.loading import load_config
from gansweep.data.sources import load_source
from gansweep.data.validation import Holdout, held_out_indices
from gansweep.evaluation import protocol, reference
from gansweep.evaluation.classifier import ClassifierRecord
from gansweep.evaluation.metrics import (
    classifier_outputs,
    feature_statistics,
    nearest_neighbour_distance,
)
from gansweep.nets.domain_classifier import DomainClassifier
from PIL import Image

N_TRAIN, N_TEST, N_VALID, SIZE = 12, 5, 4, 16  # 16x16: the smallest image the domain classifier takes


def _data(tmp_path, test_split: bool = True, *overrides: str):
    """The data config of a tiny labelled grayscale image folder (two classes), its cache in tmp_path/cache."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(N_TRAIN + (N_TEST if test_split else 0)):
        folder = root / ("test" if i >= N_TRAIN else "") / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8), mode="L").save(folder / f"{i}.png")
    cfg = load_config(None, ["mode=clean", "data.name=image_folder", f"data.root={root}",
                             f"data.cache_dir={tmp_path / 'cache'}", f"data.validation_size={N_VALID}", *overrides])
    return cfg


def _record(fingerprint: str = "f" * 16) -> ClassifierRecord:
    torch.manual_seed(0)
    return ClassifierRecord(model=DomainClassifier(1, 2).eval(), fingerprint=fingerprint, test_accuracy=0.5,
                            n_train=N_TRAIN, path=None)


def _no_classifier(*args, **kwargs):
    raise AssertionError("the classifier ran over the reference split again")


def test_reference_features_are_computed_once_per_source_and_classifier(tmp_path, monkeypatch):
    cfg, record = _data(tmp_path), _record()
    cache = tmp_path / "cache"
    first = reference.reference_features(cfg.data, record, cache)
    assert first.computed_now and first.split == "test" and first.feats.shape == (N_TEST, record.model.feature_dim)
    test_images = load_source("image_folder", cfg.data.root, split="test").images
    np.testing.assert_array_equal(first.feats, classifier_outputs(record.model, test_images)[0])
    path = Path(first.path)
    assert path.parent == cache / "reference" and path.name.startswith("image_folder-")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    written = path.stat().st_mtime_ns

    with monkeypatch.context() as patch:
        patch.setattr(reference, "classifier_outputs", _no_classifier)
        second = reference.reference_features(cfg.data, record, cache)
    assert not second.computed_now and second.path == first.path and second.split == "test"
    np.testing.assert_array_equal(second.feats, first.feats)
    assert path.stat().st_mtime_ns == written

    # Another classifier, or another image size, has features of its own.
    other = reference.reference_features(cfg.data, replace(record, fingerprint="0" * 16), cache)
    resized = reference.reference_features(replace(cfg.data, image_size=SIZE), record, cache)
    assert other.computed_now and resized.computed_now
    assert len({first.path, other.path, resized.path}) == 3


def test_an_unreadable_or_foreign_cache_file_is_recomputed(tmp_path):
    cfg, record = _data(tmp_path), _record()
    first = reference.reference_features(cfg.data, record, tmp_path / "cache")
    Path(first.path).write_bytes(b"cut off")
    again = reference.reference_features(cfg.data, record, tmp_path / "cache")
    assert again.computed_now
    np.testing.assert_array_equal(again.feats, first.feats)
    np.savez(first.path, feats=first.feats, key=np.array("{}"))  # made for another key
    assert reference.reference_features(cfg.data, record, tmp_path / "cache").computed_now


def test_a_source_without_a_test_split_is_scored_against_its_training_split(tmp_path):
    cfg = _data(tmp_path, test_split=False)
    features = reference.reference_features(cfg.data, _record(), tmp_path / "cache")
    assert features.split == "train" and len(features.feats) == N_TRAIN
    images, split = reference.reference_images(cfg)
    assert split == "train" and len(images) == N_TRAIN


def _validation_images(cfg) -> np.ndarray:
    """The clean training images the validation split holds out, in index order."""
    whole = load_source("image_folder", cfg.data.root, split="train").images
    return whole[held_out_indices(len(whole), cfg.data.holdout, "test")]


def test_prepare_monitor_scores_against_the_cached_validation_split(tmp_path, monkeypatch, capsys):
    cfg, record = _data(tmp_path), _record()
    monkeypatch.setattr(protocol, "protocol_classifier", lambda *args, **kwargs: record)
    payload = protocol.prepare_monitor(cfg)
    cached = reference.reference_features(cfg.data, record, tmp_path / "cache", "validation")
    assert not cached.computed_now  # prepare_monitor cached them under the data's cache root
    # The held-out clean training images, not the test split's.
    np.testing.assert_array_equal(cached.feats, classifier_outputs(record.model, _validation_images(cfg))[0])
    mu, sigma = feature_statistics(cached.feats)
    np.testing.assert_array_equal(payload.mu, mu)
    np.testing.assert_array_equal(payload.sigma, sigma)
    assert payload.n_real == N_VALID and payload.reference_split == "validation"
    assert payload.provenance(64, "cpu")["reference_split"] == "validation"
    assert payload.classifier_fingerprint == record.fingerprint
    assert "WARNING" not in capsys.readouterr().err

    monkeypatch.setattr(reference, "classifier_outputs", _no_classifier)
    np.testing.assert_array_equal(protocol.prepare_monitor(cfg).mu, mu)


def test_without_a_validation_split_the_cheap_fid_selects_on_the_test_split_and_says_so(tmp_path, monkeypatch,
                                                                                      capsys):
    cfg, record = _data(tmp_path, True, "data.validation_size=0"), _record()
    monkeypatch.setattr(protocol, "protocol_classifier", lambda *args, **kwargs: record)
    payload = protocol.prepare_monitor(cfg)
    assert payload.n_real == N_TEST and payload.reference_split == "test"
    assert "WARNING: data.validation_size=0" in capsys.readouterr().err


def test_the_validation_split_has_features_of_its_own_per_size_and_seed(tmp_path):
    cfg, record = _data(tmp_path), _record()
    cache = tmp_path / "cache"
    test = reference.reference_features(cfg.data, record, cache)
    valid = reference.reference_features(cfg.data, record, cache, "validation")
    reseeded = reference.reference_features(replace(cfg.data, validation_seed=1), record, cache, "validation")
    larger = reference.reference_features(replace(cfg.data, validation_size=N_VALID + 1), record, cache, "validation")
    assert (test.split, valid.split, len(test.feats), len(valid.feats)) == ("test", "validation", N_TEST, N_VALID)
    assert len({test.path, valid.path, reseeded.path, larger.path}) == 4
    assert all(f.computed_now for f in (test, valid, reseeded, larger)) and len(larger.feats) == N_VALID + 1
    # The test split's key is the one it had before validation splits: its cached features (Inception's: hours) stay.
    no_split = reference.reference_features(replace(cfg.data, validation_size=0), record, cache)
    assert not no_split.computed_now and no_split.path == test.path


@pytest.mark.parametrize("limit", [None, 5])
def test_training_batches_stream_the_training_images_and_give_the_in_memory_distance(tmp_path, limit):
    cfg = _data(tmp_path, True, *([f"data.limit={limit}"] if limit else []))
    batches = list(reference.training_batches(cfg.data, tmp_path / "cache", batch=3))
    # The images a run trains on: the first LIMIT of the training split less its validation split.
    split = load_source("image_folder", cfg.data.root, split="train").images
    whole = np.delete(split, held_out_indices(N_TRAIN, Holdout(N_VALID, 0), "test"), axis=0)[:limit]
    assert all(b.dtype == np.uint8 and b.shape[1:] == (1, SIZE, SIZE) and 3 <= len(b) < 6 for b in batches[:-1])
    assert sum(len(b) for b in batches) == len(whole) == (limit or N_TRAIN - N_VALID)
    assert sorted(i.tobytes() for i in np.concatenate(batches)) == sorted(i.tobytes() for i in whole)

    samples = torch.rand(7, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    streamed = nearest_neighbour_distance(samples, reference.training_batches(cfg.data, tmp_path / "cache", batch=3))
    assert streamed == pytest.approx(nearest_neighbour_distance(samples, whole), rel=1e-12)
