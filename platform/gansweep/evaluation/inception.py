"""The optional Inception-V3 FID, for machines that have the weights: nothing is ever downloaded.

The user points eval.inception_weights (or `gansweep evaluate --inception-weights`) at a torchvision
inception_v3 state dict placed there by hand, e.g. the file torchvision's
Inception_V3_Weights.IMAGENET1K_V1 downloads elsewhere. Features are its 2048-d pool outputs. These are
torchvision's ImageNet weights, not the TF-Inception port of the original FID code, so the figures rank
runs but are not comparable with published FIDs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import inception_v3

from gansweep.config.errors import ConfigError
from gansweep.evaluation.metrics import frechet_distance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_inception(weights_path: str | Path) -> torch.nn.Module:
    """Inception-V3 from a local state dict, its classifier replaced so it outputs pool features; eval mode."""
    path = Path(weights_path).expanduser()
    expected = (
        "a torchvision inception_v3 state_dict (torch.save(model.state_dict(), path)), e.g. the file "
        "torchvision's Inception_V3_Weights.IMAGENET1K_V1 downloads, copied there by hand"
    )
    if not path.is_file():
        raise ConfigError(f"Inception weights {path} do not exist: expected {expected}; nothing is downloaded")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"Inception weights {path} cannot be read ({exc}): expected {expected}") from None
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise ConfigError(f"{path} is not an Inception-V3 state dict: expected {expected}")
    has_aux = any(key.startswith("AuxLogits.") for key in state)
    # transform_input=True, as torchvision sets it when it loads IMAGENET1K_V1: those (Google-ported)
    # weights were trained on inputs in [-1, 1], and the flag maps ImageNet-normalised input to that.
    model = inception_v3(weights=None, aux_logits=has_aux, init_weights=False, transform_input=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{path} does not fit torchvision's inception_v3: {exc}") from None
    model.fc = torch.nn.Identity()
    return model.eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images, batch: int = 50) -> np.ndarray:
    """(N, 2048) float64 pool features of images (N, C, H, W) in [0, 1] (or uint8); grey is repeated to RGB."""
    x = torch.as_tensor(images)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images: expected (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
    device = next(model.parameters()).device
    # ImageNet mean/std, torchvision's own preprocessing for these weights: load_inception's model has
    # transform_input=True, which turns it into the (x - 0.5) / 0.5 the weights were trained on.
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    feats = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch].to(device).clamp(0, 1).expand(-1, 3, -1, -1)
        chunk = F.interpolate(chunk, size=(299, 299), mode="bilinear", align_corners=False)
        feats.append(model((chunk - mean) / std).double().cpu())
    return torch.cat(feats).numpy()


def inception_fid(samples, reference, model: torch.nn.Module) -> float:
    """FID on Inception-V3 pool features of samples against the reference images."""
    return frechet_distance(inception_features(model, samples), inception_features(model, reference))
