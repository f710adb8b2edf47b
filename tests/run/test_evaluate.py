"""`gansweep evaluate`: a run's generator through the evaluation protocol, and clear errors for bad paths."""

import json
import subprocess
import sys
from functools import partial

import pytest
import torch
from conftest import _fake_run, needs_fashion
from gansweep import storage
from gansweep.data.sources import load_source
from gansweep.evaluation import reference
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.evaluation.metrics import PROTOCOL_FIELDS, nearest_neighbour_distance
from gansweep.run import evaluate


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gansweep.cli", *args], capture_output=True, text=True, timeout=120)


def test_missing_run_exits_2(tmp_path):
    result = _cli("evaluate", str(tmp_path / "nope"))
    assert result.returncode == 2 and "nope does not exist" in result.stderr
    empty = _cli("evaluate", str(tmp_path))
    assert empty.returncode == 2 and "holds no checkpoint" in empty.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_exits_2(tmp_path):
    result = _cli("evaluate", str(tmp_path), "--device", "cuda")
    assert result.returncode == 2 and "--device cuda: this machine has no CUDA GPU" in result.stderr


@needs_fashion
def test_evaluate_run_writes_the_protocol(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    gan = _fake_run(run_dir, step=40)
    # A small classifier stands in for the full one (3 epochs on 60k images), to keep the test fast.
    small = partial(load_or_train_classifier, limit=2000, epochs=1, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(evaluate, "protocol_classifier",
                        lambda data, **kwargs: small(data.name, data.root, holdout=data.holdout))
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))  # the run's data.cache_dir is unset

    figures = evaluate.evaluate_run(run_dir, n_samples=300)
    assert set(PROTOCOL_FIELDS) <= set(figures)
    assert figures["n_fake"] == 300 and figures["n_real"] == 10000 and figures["reference_split"] == "test"
    assert figures["step"] == 40 and figures["fid"] > 0
    # PRDC's figures are numbers, and the arithmetic is recorded under its own name beside them.
    assert all(0 <= figures[key] <= 1 for key in ("precision", "recall", "coverage"))
    assert (figures["device"], figures["arithmetic"]) == ("cpu", "fp32")
    assert json.loads((run_dir / "evaluation.json").read_text())["fid"] == figures["fid"]
    cached = list((tmp_path / "cache" / "reference").glob("fashion_mnist-*.npz"))
    assert len(cached) == 1

    # The samples are the checkpoint's generator, unmeasured: the same z gives the same images.
    sampler, _, _ = evaluate.load_sampler(run_dir, run_dir / "checkpoints" / "checkpoint_000")
    z = torch.randn(4, sampler.z_dim)
    assert torch.allclose(sampler.images(z), gan.sampler.images(z))
    # The nearest-neighbour distance, over the run's 500 training images streamed in batches, is the in-memory one.
    train = load_source("fashion_mnist", None, split="train", limit=500).images
    in_memory = nearest_neighbour_distance(sampler.draw(300, 0), train)
    assert figures["nn_pixel_distance"] == pytest.approx(in_memory, rel=1e-9)

    # Again: the test split's features come from the cache; the classifier does not run over it a second time.
    written = cached[0].stat().st_mtime_ns

    def no_classifier(*args, **kwargs):
        raise AssertionError("the classifier ran over the reference split again")

    monkeypatch.setattr(reference, "classifier_outputs", no_classifier)
    again = evaluate.evaluate_run(run_dir, n_samples=300)
    assert cached[0].stat().st_mtime_ns == written
    for key in ("fid", "kid", "kid_std", "classifier_score", "nn_pixel_distance", "n_real"):
        assert again[key] == pytest.approx(figures[key], rel=1e-12), key


@needs_fashion
def test_a_run_in_a_bucket_is_evaluated_and_its_evaluation_written_there(tmp_path, monkeypatch, s3_bucket):
    """`gansweep evaluate s3://...`: the run read from object storage (a real S3 server on 127.0.0.1), its figures
    written beside it, nothing written locally under the URI's name."""
    local = tmp_path / "run"
    _fake_run(local, step=40)
    run = s3_bucket + "/runs/fake"
    storage.upload_folder(local, run)
    small = partial(load_or_train_classifier, limit=2000, epochs=1, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(evaluate, "protocol_classifier",
                        lambda data, **kwargs: small(data.name, data.root, holdout=data.holdout))
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    figures = evaluate.evaluate_run(run, n_samples=300)
    assert figures["step"] == 40 and figures["checkpoint"] == run + "/checkpoints/checkpoint_000"
    assert json.loads(storage.read_text(run + "/evaluation.json"))["fid"] == figures["fid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run"]
