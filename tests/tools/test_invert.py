"""`gansweep invert`: codes, reconstructions and a traversal of given images under a run's generator."""

import subprocess
import sys

import numpy as np
import torch
from conftest import Z_DIM, _generator, _run_of
from gansweep.nets.pixels import to_unit
from gansweep.tools.invert import invert


def test_invert_writes_codes_reconstructions_and_a_traversal(tmp_path):
    generator = _generator(11)
    _run_of(generator, tmp_path / "run")
    with torch.no_grad():
        images = generator(torch.randn(6, Z_DIM, generator=torch.Generator().manual_seed(12)))
    np.save(tmp_path / "images.npy", ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())

    summary = invert(tmp_path / "run", tmp_path / "images.npy", tmp_path / "out", steps=150, lr=0.04, init_std=1.0)
    out = tmp_path / "out"
    codes = np.load(out / "codes.npy")
    assert codes.shape == (6, Z_DIM) and summary["checkpoint_step"] == 7
    with torch.no_grad():  # the saved codes reconstruct the images: those G made are reachable (errors in [0, 1])
        error = float((to_unit(generator(torch.as_tensor(codes))) - to_unit(images)).square().mean())
    assert error <= summary["error_last"] < 0.5 * summary["error_first"]
    for name in ("reconstructions.png", "traversal.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_invert_cli_refuses_bad_images_with_exit_2(tmp_path):
    _run_of(_generator(13), tmp_path / "run")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 32, 32), dtype=np.uint8))
    for images, message in ((tmp_path / "wrong.npy", "shape (1, 32, 32)"), (tmp_path / "missing.npy", ".npy array")):
        result = subprocess.run([sys.executable, "-m", "gansweep.cli", "invert", str(tmp_path / "run"), str(images)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr, result.stderr
