"""The optional Inception-V3 FID: loads a local state dict only, with clear errors for anything else.

No real weights can be downloaded here, so a seeded randomly initialised inception_v3 stands in: the
tests check the loading, the feature shapes and the FID's behaviour, not ImageNet features."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import _fake_run, needs_fashion
from gansweep.config.errors import ConfigError
from gansweep.evaluation.inception import (
    inception_features,
    inception_fid,
    load_inception,
)
from gansweep.run import evaluate
from torchvision.models import inception_v3


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "inception_v3.pt"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(weights):
    return load_inception(weights)


def test_features_of_grey_images_are_2048_d(model):
    images = torch.rand(3, 1, 28, 28)
    feats = inception_features(model, images)
    assert feats.shape == (3, 2048) and feats.dtype == np.float64 and np.isfinite(feats).all()
    uint8 = (images * 255).round().to(torch.uint8)
    assert np.allclose(inception_features(model, uint8), feats, atol=1e-3 * np.abs(feats).max())
    # The convention of torchvision's IMAGENET1K_V1: the network sees (x - 0.5) / 0.5, as after
    # inception_v3(weights=IMAGENET1K_V1) (transform_input=True) on ImageNet-normalised input.
    x = torch.nn.functional.interpolate(images.expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear")
    model.transform_input = False
    try:
        with torch.no_grad():
            expected = model((x - 0.5) / 0.5).double().numpy()
    finally:
        model.transform_input = True
    assert np.allclose(feats, expected, atol=1e-4 * np.abs(expected).max())


def test_fid_is_zero_against_itself_and_large_against_noise(model):
    gen = torch.Generator().manual_seed(0)
    blobs = torch.zeros(10, 1, 28, 28)
    for i in range(10):  # bright squares of different sizes on black
        k = 6 + i
        blobs[i, :, 14 - k // 2 : 14 + k // 2, 14 - k // 2 : 14 + k // 2] = 1.0
    noise = torch.rand(10, 1, 28, 28, generator=gen)
    assert inception_fid(blobs, blobs, model) == pytest.approx(0.0, abs=1e-6)
    assert inception_fid(noise, blobs, model) > 1e-3


def test_missing_or_foreign_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="do not exist.*nothing is downloaded"):
        load_inception(tmp_path / "absent.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"x": torch.zeros(2)}, foreign)
    with pytest.raises(ConfigError, match="is not an Inception-V3 state dict"):
        load_inception(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_inception(garbage)


@needs_fashion
def test_evaluate_adds_the_inception_fid(tmp_path, monkeypatch, weights):
    from functools import partial

    from gansweep.evaluation.classifier import load_or_train_classifier

    run_dir = tmp_path / "run"
    _fake_run(run_dir, step=5)
    small = partial(load_or_train_classifier, limit=2000, epochs=1, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda source, root, **kwargs: small(source, root))
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))  # the reference features and the prepared IDX set
    # 12 reference images: Inception at 299x299 on a CPU is slow, and this checks the wiring only.
    full = evaluate.reference_images
    monkeypatch.setattr(evaluate, "reference_images", lambda cfg: (full(cfg)[0][:12], "test"))
    figures = evaluate.evaluate_run(run_dir, n_samples=12, inception_weights=weights)
    assert figures["fid_inception"] > 0 and figures["inception_weights"] == str(weights)
    assert figures["fid"] > 0  # the protocol's own figures are still there


def test_cli_with_missing_inception_weights_exits_2(tmp_path):
    run_dir = tmp_path / "run"
    _fake_run(run_dir, step=5)
    result = subprocess.run(
        [sys.executable, "-m", "gansweep.cli", "evaluate", str(run_dir), "--inception-weights", str(tmp_path / "no.pt")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "no.pt do not exist" in result.stderr
