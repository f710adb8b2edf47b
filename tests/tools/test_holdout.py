"""`gansweep holdout`: the hold-out likelihood of reversed test codes under a KDE over the training codes."""

import json
import math

import pytest
import torch
from conftest import Z_DIM, _generator, _run_of
from gansweep.cli import main
from PIL import Image


def _holdout_run(tmp_path, test_images: int = 6):
    """A run of a random-weight generator whose data is a tiny labelled image folder of that generator's own
    images (so reversal can fit them): 8 training images and TEST_IMAGES in its test split, two classes."""
    generator = _generator(21)
    with torch.no_grad():
        images = generator(torch.randn(8 + test_images, Z_DIM, generator=torch.Generator().manual_seed(22)))
    pixels = ((images[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    root = tmp_path / "images"
    for i, image in enumerate(pixels):
        folder = root / ("test" if i >= 8 else "") / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i}.png")
    run = tmp_path / "run"
    _run_of(generator, run, overrides=("mode=clean", "data.name=image_folder", f"data.root={root}"))
    return run


def test_holdout_writes_the_curve_and_shows_memorisation_at_small_bandwidths(tmp_path, capsys):
    run = _holdout_run(tmp_path)
    assert main(["holdout", str(run), "--n", "6", "--bandwidths", "0.01,0.1,1,10", "--steps", "30", "--lr", "0.01"]) == 0
    printed = capsys.readouterr().out
    assert "bandwidth" in printed and "test LL" in printed and f"wrote {run / 'holdout'}/" in printed

    out = run / "holdout"  # the default: beside the run's checkpoints
    summary = json.loads((out / "holdout.json").read_text())
    assert summary["n"] == 6 and summary["z_dim"] == Z_DIM and summary["checkpoint_step"] == 7
    assert summary["bandwidths"] == [0.01, 0.1, 1.0, 10.0]
    test, train = summary["test_log_likelihood"], summary["train_log_likelihood"]
    assert len(test) == len(train) == 4 and all(math.isfinite(v) for v in test + train)
    assert test[0] < test[1]  # a held-out code falls between the kernels as they narrow
    assert train[0] > test[0]  # the training codes are the kernels' centres: memorisation
    for errors in summary["reversal_error"].values():
        assert errors["last"] < errors["first"]
    assert (out / "holdout_likelihood.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--n", "1"], "--n >= 2"),
        (["--bandwidths", "0.1,0"], "every bandwidth > 0"),
        (["--bandwidths", ","], "at least one bandwidth"),
        (["--steps", "0"], "--steps >= 1"),
        (["--lr", "0"], "--lr > 0"),
    ],
)
def test_holdout_cli_refuses_bad_arguments_with_exit_2(tmp_path, capsys, arguments, message):
    # Checked before the run is read: no run directory needed.
    assert main(["holdout", str(tmp_path), "--output", str(tmp_path / "out"), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_holdout_cli_refuses_unreadable_bandwidths(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["holdout", str(tmp_path), "--bandwidths", "0.1,wide"])
    assert exit_info.value.code == 2 and "comma-separated list of numbers" in capsys.readouterr().err


def test_holdout_refuses_data_that_cannot_serve_n_held_out_images(tmp_path, capsys):
    run = _holdout_run(tmp_path / "six")
    assert main(["holdout", str(run), "--n", "7", "--steps", "2"]) == 2  # 8 training images, 6 test ones
    assert "the test split holds only 6 images" in capsys.readouterr().err
    run = _holdout_run(tmp_path / "none", test_images=0)
    assert main(["holdout", str(run), "--n", "2", "--steps", "2"]) == 2
    assert "has no test split" in capsys.readouterr().err


def test_holdout_starts_train_and_test_codes_from_independent_draws(tmp_path, monkeypatch):
    # With one tiny step the codes barely leave their initial draws. Were the test codes started from the
    # training codes' draws, each would sit on its twin training code's kernel and score like a training code.
    from gansweep.tools import holdout

    starts = []

    def recording_reverse(generator, images, *, rng, init_std, **kwargs):
        starts.append(torch.randn(len(images), generator.z_dim, generator=torch.Generator(images.device).set_state(
            rng.get_state()), device=images.device) * init_std)  # the draw reverse is about to make
        return reverse(generator, images, rng=rng, init_std=init_std, **kwargs)

    reverse = holdout.reverse
    monkeypatch.setattr(holdout, "reverse", recording_reverse)
    run = _holdout_run(tmp_path)
    summary = holdout.holdout_likelihood(run, tmp_path / "out", n=6, bandwidths=[0.01, 10], steps=1, lr=1e-6,
                                         device="cpu")
    train_start, test_start = starts
    assert torch.cdist(test_start, train_start).min() > 1  # no test code starts near any training code
    test, train = summary["test_log_likelihood"], summary["train_log_likelihood"]
    assert test[0] < train[0] - 1000  # the held-out codes fall between the narrow kernels: not inflated

    again = holdout.holdout_likelihood(run, tmp_path / "again", n=6, bandwidths=[0.01, 10], steps=1, lr=1e-6,
                                       device="cpu")
    assert again["test_log_likelihood"] == test and again["train_log_likelihood"] == train  # same seed, same result
    assert torch.equal(starts[2], train_start) and torch.equal(starts[3], test_start)
