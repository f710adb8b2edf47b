"""`gansweep invert`: the codes of given images under a run's generator (generator reversal), their
reconstructions, and a manifold traversal between the codes of two images (Kilcher et al., Fig. 8).
No Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.schema import Config, ReversalConfig
from gansweep.gan.reversal import TOOL_REVERSAL_STEPS
from gansweep.gan.runtime import resolve_device
from gansweep.data.sources import load_source
from gansweep.gan.reversal import reverse
from gansweep.gan.sampler import Sampler
from gansweep.nets.pixels import to_unit
from gansweep.run.run_dir import load_sampler, resolve_checkpoint

TRAVERSAL_STEPS = 10  # images from the first code to the second, both ends included


def read_images(path: str | Path, shape: tuple[int, int, int], limit: int | None) -> torch.Tensor:
    """Images in [0, 1] from a .npy array (uint8 0..255, or floats in [0, 1];
    (N, H, W) or (N, C, H, W)) or a folder of image files (read as the image_folder source reads them)."""
    path = Path(path).expanduser()
    if path.suffix == ".npy" and path.is_file():
        array = np.load(path, allow_pickle=False)
        if array.ndim == 3:
            array = array[:, None]
        unit = array / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)
    elif path.is_dir():
        unit = load_source("image_folder", str(path), image_size=shape[-1]).images / 255.0
    else:
        raise ConfigError(f"{path}: give a .npy array of images or a folder of image files")
    if unit.ndim != 4 or tuple(unit.shape[1:]) != tuple(shape):
        raise ConfigError(f"{path}: images of shape {tuple(unit.shape[1:])}, but the run's generator makes {shape}")
    if unit.min() < 0 or unit.max() > 1:
        raise ConfigError(f"{path}: float images must lie in [0, 1] (got {unit.min():.3g}..{unit.max():.3g})")
    images = torch.as_tensor(unit[:limit], dtype=torch.float32)
    if len(images) < 1:
        raise ConfigError(f"{path} holds no images")
    return images


def reversible_sampler(run: str | Path, command: str, device: torch.device) -> tuple[Sampler, str, Config, int]:
    """The sampler of RUN's newest checkpoint on DEVICE, whose generator COMMAND reverses images through (G, or
    G(C(z)) for an ACL run), with the run directory, its config and the checkpoint's step. A conditional GAN is
    refused."""
    run_dir, checkpoint = resolve_checkpoint(run)
    sampler, cfg, step = load_sampler(run_dir, checkpoint)
    sampler.to(device)
    if sampler.num_classes:
        raise ConfigError(f"{storage.display(run_dir)} is a conditional GAN (model.conditional): reversing an image would need its "
                          f"class as well; {command} supports unconditional runs only")
    return sampler, run_dir, cfg, step


def invert(run: str | Path, images_path: str | Path, output: str | Path, *, steps: int = TOOL_REVERSAL_STEPS,
           lr: float = ReversalConfig.lr, init_std: float = ReversalConfig.init_std, seed: int = 0,
           limit: int | None = 64, device: str = "auto") -> dict:
    """Reverse the images through the run's newest generator, on DEVICE (auto: the GPU where there is one), into
    OUTPUT: codes.npy, reconstructions.png (originals above their reconstructions), traversal.png, reversal.json
    and TensorBoard images."""
    if steps < 1 or lr <= 0 or init_std < 0:
        raise ConfigError(f"invert needs --steps >= 1, --lr > 0 and --init-std >= 0; got {steps}, {lr}, {init_std}")
    where = resolve_device(device)
    output = storage.check_writable(output, "--output")
    sampler, run_dir, _, step = reversible_sampler(run, "invert", where)
    images = read_images(images_path, sampler.image_shape, limit)
    # In [0, 1], the scale of every reversal (KDE-GAN's in any mode too), which reversal.lr is set for.
    result = reverse(sampler.generator, images.to(where), lr=lr, max_steps=steps, init_std=init_std,
                     measure=to_unit, rng=torch.Generator(where).manual_seed(seed))
    codes = result.codes.cpu()
    reconstructions = sampler.images(codes).cpu()
    traversal = None
    if len(images) >= 2:
        weights = torch.linspace(0, 1, TRAVERSAL_STEPS)[:, None]
        traversal = sampler.images((1 - weights) * codes[0] + weights * codes[1]).cpu()

    with storage.Mirror(output) as folder:  # published to OUTPUT when it is a URI
        np.save(folder / "codes.npy", codes.numpy())
        pairs = _pairs_grid(images, reconstructions)
        save_image(pairs, folder / "reconstructions.png")
        with SummaryWriter(str(folder / "tensorboard")) as writer:
            writer.add_image("invert/reconstructions", pairs, step)
            if traversal is not None:
                strip = make_grid(traversal, nrow=TRAVERSAL_STEPS, pad_value=0.5)
                save_image(strip, folder / "traversal.png")
                writer.add_image("invert/traversal", strip, step)
            for i, error in enumerate(result.errors):
                writer.add_scalar("invert/reconstruction_error", error, i)
        summary = {
            "run": storage.display(run_dir), "checkpoint_step": step, "images": len(images), "steps": result.steps,
            "lr": lr, "init_std": init_std, "error_first": result.errors[0], "error_last": result.errors[-1],
            "errors": result.errors,
        }
        (folder / "reversal.json").write_text(json.dumps(summary, indent=2))
    return summary


def _pairs_grid(originals: torch.Tensor, reconstructions: torch.Tensor, per_row: int = 8) -> torch.Tensor:
    """Rows of up to PER_ROW originals, each followed by a row of their reconstructions."""
    rows = []
    for start in range(0, len(originals), per_row):
        rows += [originals[start:start + per_row], reconstructions[start:start + per_row]]
    padded = [torch.cat([row, torch.ones(per_row - len(row), *row.shape[1:]) * 0.5]) for row in rows]
    return make_grid(torch.cat(padded), nrow=per_row, pad_value=0.5)
