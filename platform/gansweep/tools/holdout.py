"""`gansweep holdout`: the hold-out likelihood of Kilcher et al. (Appendix C, Fig. 10). Clean training and
test images are reversed into codes through a run's generator; a kernel density over the training codes,
of each bandwidth in turn, scores the test codes. Test codes that keep a substantial likelihood show a
generator that generalises; training codes scored far above them as the bandwidth shrinks show memorisation.
The training and test codes start from independent draws of one seeded stream, not from twin draws.
No Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.schema import ReversalConfig
from gansweep.gan.reversal import TOOL_REVERSAL_STEPS
from gansweep.gan.runtime import resolve_device
from gansweep.data.sources import load_source
from gansweep.evaluation.reference import reference_images
from gansweep.gan.priors import KDEPrior
from gansweep.gan.reversal import Reversed, reverse
from gansweep.nets.pixels import to_unit
from gansweep.tools.invert import reversible_sampler

# Log-spaced, three per decade from 0.01 to 10 (rounded for the table): from memorising every training
# code to a kernel wider than the N(0, I) codes themselves.
BANDWIDTHS = tuple(float(f"{10 ** (k / 3):.3g}") for k in range(-6, 4))


def holdout_likelihood(run: str | Path, output: str | Path, *, n: int = 500, bandwidths=BANDWIDTHS,
                       steps: int = TOOL_REVERSAL_STEPS, lr: float = ReversalConfig.lr,
                       init_std: float = ReversalConfig.init_std, seed: int = 0, device: str = "auto") -> dict:
    """Reverse N training and N test images (picked with SEED) through the run's newest generator, on DEVICE (auto:
    the GPU where there is one), and score both sets of codes under a pure KDE (no background) over the training
    codes, for each bandwidth.
    Writes OUTPUT/holdout.json, OUTPUT/holdout_likelihood.png and OUTPUT/tensorboard/; returns the summary."""
    bandwidths = [float(h) for h in bandwidths]
    if n < 2 or not bandwidths or min(bandwidths) <= 0 or steps < 1 or lr <= 0 or init_std < 0:
        raise ConfigError(f"holdout needs --n >= 2, at least one bandwidth, every bandwidth > 0, --steps >= 1, "
                          f"--lr > 0 and --init-std >= 0; got {n}, {bandwidths}, {steps}, {lr}, {init_std}")
    where = resolve_device(device)
    output = storage.check_writable(output, "--output")
    sampler, run_dir, cfg, step = reversible_sampler(run, "holdout", where)
    generator, data = sampler.generator, cfg.data
    test, split = reference_images(cfg)
    if split != "test":
        raise ConfigError(f"{data.name} at {data.root} has no test split: the hold-out likelihood needs images the "
                          "run never trained on")
    train = load_source(data.name, data.root, split="train", limit=data.limit, image_size=data.image_size).images
    rng = np.random.default_rng(seed)
    train_images, test_images = (_pick(name, images, n, rng).to(where)  # both checked first
                                 for name, images in (("train", train), ("test", test)))
    # One stream for both sets: the test codes start from the draws after the training codes', not the same ones.
    codes_rng = torch.Generator(where).manual_seed(seed)
    train_codes = _reverse("train", train_images, generator, steps, lr, init_std, codes_rng)
    test_codes = _reverse("test", test_images, generator, steps, lr, init_std, codes_rng)

    test_ll, train_ll = [], []
    for h in bandwidths:
        kde = KDEPrior(train_codes.codes, h)
        test_ll.append(kde.holdout_log_likelihood(test_codes.codes))
        # The training codes are the kernels' own centres: as h -> 0 each one's own kernel dominates and its
        # log-density grows without bound, so train >> test at small h is what memorisation looks like.
        train_ll.append(float(kde.log_prob(train_codes.codes).mean()))

    summary = {
        "run": storage.display(run_dir), "checkpoint_step": step, "n": n, "z_dim": generator.z_dim, "steps": steps, "lr": lr,
        "init_std": init_std, "seed": seed,
        "prior_bandwidth": cfg.prior.bandwidth if cfg.prior.name == "kde" else None,
        "bandwidths": bandwidths, "test_log_likelihood": test_ll, "train_log_likelihood": train_ll,
        "reversal_error": {
            name: {"first": result.errors[0], "last": result.errors[-1]}
            for name, result in (("train", train_codes), ("test", test_codes))
        },
    }
    figure = _plot(summary)
    with storage.Mirror(output) as folder:  # published to OUTPUT when it is a URI
        (folder / "holdout.json").write_text(json.dumps(summary, indent=2))
        figure.savefig(folder / "holdout_likelihood.png")
        with SummaryWriter(str(folder / "tensorboard")) as writer:
            for i, (h, test_value, train_value) in enumerate(zip(bandwidths, test_ll, train_ll)):
                writer.add_scalar("holdout/bandwidth", h, i)  # the step is the bandwidth's index
                writer.add_scalar("holdout/test_log_likelihood", test_value, i)
                writer.add_scalar("holdout/train_log_likelihood", train_value, i)
            figure.canvas.draw()  # the saved picture, as pixels
            writer.add_image("holdout/likelihood_vs_bandwidth", np.asarray(figure.canvas.buffer_rgba())[..., :3],
                             step, dataformats="HWC")
    return summary


def _pick(name: str, images: np.ndarray, n: int, rng: np.random.Generator) -> torch.Tensor:
    """N of the uint8 IMAGES, drawn without replacement by RNG, in [0, 1] (the scale of every reversal)."""
    if len(images) < n:
        raise ConfigError(f"--n={n}, but the {name} split holds only {len(images)} images")
    return torch.as_tensor(images[rng.choice(len(images), n, replace=False)], dtype=torch.float32) / 255


def _reverse(name: str, images: torch.Tensor, generator: nn.Module, steps: int, lr: float, init_std: float,
             rng: torch.Generator) -> Reversed:
    """The codes of IMAGES, started from draws of RNG (advanced by them), with a progress line before and after
    (minutes for 500 images on a CPU)."""
    print(f"[gansweep] holdout: reversing {len(images)} {name} images ({steps} steps) ...", flush=True)
    result = reverse(generator, images, lr=lr, max_steps=steps, init_std=init_std, measure=to_unit, rng=rng)
    print(f"[gansweep] holdout: {name} mean squared error {result.errors[0]:.4f} -> {result.errors[-1]:.4f}",
          flush=True)
    return result


def _plot(summary: dict) -> Figure:
    """Log-likelihood vs bandwidth, test and train, drawn on an Agg canvas (no display needed)."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(summary["bandwidths"], summary["test_log_likelihood"], "o-", label="test codes (held out)")
    ax.plot(summary["bandwidths"], summary["train_log_likelihood"], "s--", label="train codes (the kernels' centres)")
    if summary["prior_bandwidth"] is not None:
        ax.axvline(summary["prior_bandwidth"], color="tab:gray", linestyle=":", label="the run's KDE bandwidth")
    ax.set_xscale("log")
    # The test log-likelihood falls like -1/h^2 at small h: symlog keeps that and the values near 0 readable.
    ax.set_yscale("symlog")
    ax.set_xlabel("KDE bandwidth h")
    ax.set_ylabel("mean log-likelihood of the codes")
    ax.set_title(f"Hold-out likelihood, step {summary['checkpoint_step']}, n={summary['n']}, z_dim={summary['z_dim']}")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return figure
