"""`gansweep evaluate`: a run's generator through the evaluation protocol, and clear errors for bad paths."""

import json
import subprocess
import sys
from functools import partial

import torch
from conftest import _fake_run, needs_fashion
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.evaluation.metrics import PROTOCOL_FIELDS
from gansweep.run import evaluate


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gansweep.cli", *args], capture_output=True, text=True, timeout=120)


def test_missing_run_exits_2(tmp_path):
    result = _cli("evaluate", str(tmp_path / "nope"))
    assert result.returncode == 2 and "nope does not exist" in result.stderr
    empty = _cli("evaluate", str(tmp_path))
    assert empty.returncode == 2 and "holds no checkpoint" in empty.stderr


@needs_fashion
def test_evaluate_run_writes_the_protocol(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    gan = _fake_run(run_dir, step=40)
    # A small classifier stands in for the full one (3 epochs on 60k images), to keep the test fast.
    small = partial(load_or_train_classifier, limit=2000, epochs=1, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda source, root, **kwargs: small(source, root))

    figures = evaluate.evaluate_run(run_dir, n_samples=300)
    assert set(PROTOCOL_FIELDS) <= set(figures)
    assert figures["n_fake"] == 300 and figures["n_real"] == 10000 and figures["reference_split"] == "test"
    assert figures["step"] == 40 and figures["fid"] > 0
    assert json.loads((run_dir / "evaluation.json").read_text())["fid"] == figures["fid"]

    # The samples are the checkpoint's generator, unmeasured: the same z gives the same images.
    sampler, _, _ = evaluate.load_sampler(run_dir, run_dir / "checkpoints" / "checkpoint_000")
    z = torch.randn(4, sampler.z_dim)
    assert torch.allclose(sampler.images(z), gan.sampler.images(z))
