"""The domain classifier: trains above chance, is cached by fingerprint and read back without retraining."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FASHION, needs_fashion
from gansweep.data.sources import load_source
from gansweep.data.validation import Holdout, held_out_indices
from gansweep.evaluation.classifier import (
    _splits,
    classifier_fingerprint,
    load_or_train_classifier,
    train_classifier,
)


def test_fingerprint_tracks_what_changes_the_classifier():
    base = classifier_fingerprint("fashion_mnist", None, seed=0, epochs=3, limit=None)
    assert len(base) == 16
    assert base == classifier_fingerprint("fashion_mnist", str(FASHION) + "/", seed=0, epochs=3)  # resolved root
    for changed in (
        classifier_fingerprint("fashion_mnist", None, seed=1),
        classifier_fingerprint("fashion_mnist", None, epochs=2),
        classifier_fingerprint("fashion_mnist", None, limit=3000),
        classifier_fingerprint("mnist", str(FASHION)),
        classifier_fingerprint("fashion_mnist", "/tmp"),
        classifier_fingerprint("fashion_mnist", None, holdout=Holdout(5000, 0)),
    ):
        assert changed != base
    # The validation split held out of its training images names another classifier, per size and seed.
    assert len({classifier_fingerprint("fashion_mnist", None, holdout=Holdout(*split))
                for split in ((5000, 0), (5000, 1), (2000, 0))}) == 3


@needs_fashion
def test_small_classifier_trains_caches_and_reloads(tmp_path, capsys):
    first = load_or_train_classifier("fashion_mnist", None, seed=0, epochs=1, limit=3000, cache_dir=tmp_path)
    assert first.trained_now
    assert first.test_accuracy > 0.6  # chance is 0.1
    assert first.n_train == 3000 and first.n_test == 10_000 and first.accuracy_split == "test"
    assert not first.model.training
    folder = tmp_path / "classifiers" / f"fashion_mnist-{first.fingerprint}"
    assert Path(first.path) == folder and (folder / "model.pt").is_file()
    meta = json.loads((folder / "record.json").read_text())
    assert meta["fingerprint"] == first.fingerprint and meta["test_accuracy"] == first.test_accuracy
    assert "epoch 1/1" in capsys.readouterr().err  # progress, one line per epoch off a terminal

    mtime = (folder / "model.pt").stat().st_mtime_ns
    second = load_or_train_classifier("fashion_mnist", None, seed=0, epochs=1, limit=3000, cache_dir=tmp_path)
    assert not second.trained_now
    assert second.fingerprint == first.fingerprint and second.test_accuracy == first.test_accuracy
    assert second.n_train == first.n_train and second.path == first.path
    assert (folder / "model.pt").stat().st_mtime_ns == mtime  # read, not rewritten
    assert not second.model.training
    first_state, second_state = first.model.state_dict(), second.model.state_dict()
    assert first_state.keys() == second_state.keys()
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(first.model(x), second.model(x))

    other_seed = classifier_fingerprint("fashion_mnist", None, seed=1, epochs=1, limit=3000)
    assert other_seed != first.fingerprint
    assert not (tmp_path / "classifiers" / f"fashion_mnist-{other_seed}").exists()


@needs_fashion
def test_training_is_deterministic_with_the_seed_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = train_classifier("fashion_mnist", None, seed=5, epochs=1, limit=400, progress=False)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched
    b = train_classifier("fashion_mnist", None, seed=5, epochs=1, limit=400, progress=False)
    c = train_classifier("fashion_mnist", None, seed=6, epochs=1, limit=400, progress=False)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.path is None


@needs_fashion
def test_a_broken_cache_is_retrained(tmp_path):
    first = load_or_train_classifier("fashion_mnist", None, seed=0, epochs=1, limit=300, progress=False, cache_dir=tmp_path)
    (Path(first.path) / "model.pt").write_bytes(b"cut off")
    again = load_or_train_classifier("fashion_mnist", None, seed=0, epochs=1, limit=300, progress=False, cache_dir=tmp_path)
    assert again.trained_now and again.fingerprint == first.fingerprint
    third = load_or_train_classifier("fashion_mnist", None, seed=0, epochs=1, limit=300, progress=False, cache_dir=tmp_path)
    assert not third.trained_now


@needs_fashion
@pytest.mark.slow
def test_full_classifier_reaches_90_percent(tmp_path):
    record = load_or_train_classifier("fashion_mnist", None, seed=0, epochs=3, cache_dir=tmp_path)
    assert record.n_train == 60_000
    assert record.test_accuracy >= 0.90, record.test_accuracy


def test_image_folder_without_test_split_is_scored_on_held_out_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 215)):
        (tmp_path / name).mkdir()
        for i in range(60):
            pixels = np.clip(level + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i:03d}.png")
    record = train_classifier("image_folder", str(tmp_path), seed=0, epochs=2, progress=False)
    assert record.accuracy_split == "holdout" and record.image_shape == (3, 32, 32)
    assert record.n_train == 108 and record.n_test == 12 and record.num_classes == 2
    assert record.test_accuracy == 1.0  # trivially separable
    held_labels = _splits("image_folder", str(tmp_path), None, None, Holdout(0, 0))[3]
    assert set(held_labels.tolist()) == {0, 1}  # held out across the classes, not the last folder only


def test_the_validation_split_is_not_among_the_classifier_s_training_images(tmp_path):
    """The cheap FID's reference images stay as unseen by the feature network as the test split's."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(40):
        (tmp_path / "ab"[i % 2]).mkdir(exist_ok=True)
        image = Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L")
        image.save(tmp_path / "ab"[i % 2] / f"{i}.png")
    split = load_source("image_folder", str(tmp_path)).images
    held = split[held_out_indices(40, Holdout(8, 0), "x")]
    x_train = _splits("image_folder", str(tmp_path), None, None, Holdout(8, 0))[0]
    x_eval = _splits("image_folder", str(tmp_path), None, None, Holdout(8, 0))[2]  # the accuracy's every 10th
    assert len(x_train) + len(x_eval) == 32
    assert not {image.tobytes() for image in held} & {image.tobytes() for image in np.concatenate([x_train, x_eval])}
