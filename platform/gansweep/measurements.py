"""Lossy measurements f_theta of AmbientGAN, for images and generator feature maps alike.

Each measurement has the shape of the original AmbientGAN code: ``sample_theta`` draws the random
parameters (per sample, batched, on the tensor's device, from a seeded torch.Generator only) and
``measure`` applies them, differentiably in x. Parameters are checked against the tensor that
arrives, with a message naming the parameter and its allowed range. Plain torch: no Ray.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F


class MeasurementError(ValueError):
    """A measurement parameter outside its range, or one that does not fit the tensor it meets."""


class Measurement:
    name = ""
    changes_shape = False  # True when the output is not the input's shape (D must adapt)

    def validate(self, shape: tuple[int, ...]) -> None:
        """Check against a per-sample shape; spatial measurements need (C, H, W)."""
        if len(shape) != 3:
            raise MeasurementError(f"measurement.{self.name} needs (N, C, H, W) tensors, got per-sample shape {tuple(shape)}")

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        self.validate(tuple(shape))
        return tuple(shape)

    def sample_theta(self, x: torch.Tensor, generator: torch.Generator) -> dict:
        raise NotImplementedError

    def measure(self, x: torch.Tensor, theta: dict) -> torch.Tensor:
        raise NotImplementedError

    def unmeasure(self, y: torch.Tensor, theta: dict) -> torch.Tensor:
        """Restoration of the lossy data (the `unmeasure` baseline); added with the evaluation issue."""
        raise NotImplementedError(f"measurement.{self.name} has no restoration yet")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.measure(x, self.sample_theta(x, generator))


def _check_range(name: str, param: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        allowed = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise MeasurementError(f"measurement.{name}: {param}={value} is outside the allowed range {allowed}")


class BlockPixel(Measurement):
    """Each element (unit="element") or whole feature map (unit="channel") zeroed with probability p."""

    name = "block_pixel"

    def __init__(self, p: float = 0.5, unit: str = "element"):
        _check_range(self.name, "p", p, 0.0, 1.0)
        if unit not in ("element", "channel"):
            raise MeasurementError(f"measurement.{self.name}: unit='{unit}' must be 'element' or 'channel'")
        self.p, self.unit = p, unit

    def validate(self, shape):
        if self.unit == "channel":
            super().validate(shape)

    def sample_theta(self, x, generator):
        self.validate(tuple(x.shape[1:]))
        shape = x.shape if self.unit == "element" else (*x.shape[:2], *([1] * (x.dim() - 2)))
        # p is the probability of DROPPING an element.
        keep = torch.rand(shape, device=x.device, generator=generator) >= self.p
        return {"mask": keep.to(x.dtype)}

    def measure(self, x, theta):
        return x * theta["mask"]


def _patch_corners(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Top-left corners (N, 2) of one k x k patch per sample, uniform over the valid positions."""
    n, _, h, w = x.shape
    rows = torch.randint(0, h - k + 1, (n,), device=x.device, generator=generator)
    cols = torch.randint(0, w - k + 1, (n,), device=x.device, generator=generator)
    return torch.stack([rows, cols], dim=1)


def _patch_mask(x: torch.Tensor, corners: torch.Tensor, k: int) -> torch.Tensor:
    """(N, 1, H, W) with ones inside each sample's patch."""
    h, w = x.shape[-2:]
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    in_rows = (r[None] >= corners[:, :1]) & (r[None] < corners[:, :1] + k)
    in_cols = (c[None] >= corners[:, 1:]) & (c[None] < corners[:, 1:] + k)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None].to(x.dtype)


class _Patch(Measurement):
    def __init__(self, patch: int = 14):
        _check_range(self.name, "patch", patch, 1)
        self.patch = int(patch)

    def validate(self, shape):
        super().validate(shape)
        _, h, w = shape
        if self.patch > h or self.patch > w:
            raise MeasurementError(
                f"measurement.{self.name}: patch={self.patch} is larger than the {h}x{w} map it meets; "
                f"allowed 1..{min(h, w)}"
            )

    def sample_theta(self, x, generator):
        self.validate(tuple(x.shape[1:]))
        return {"corners": _patch_corners(x, self.patch, generator)}


class BlockPatch(_Patch):
    """One random k x k patch per sample zeroed (the same place in every channel)."""

    name = "block_patch"

    def measure(self, x, theta):
        return x * (1 - _patch_mask(x, theta["corners"], self.patch))


class KeepPatch(_Patch):
    """Everything outside one random k x k patch per sample zeroed."""

    name = "keep_patch"

    def measure(self, x, theta):
        return x * _patch_mask(x, theta["corners"], self.patch)


class ExtractPatch(_Patch):
    """The random k x k patch itself: the output is (N, C, k, k)."""

    name = "extract_patch"
    changes_shape = True

    def output_shape(self, shape):
        self.validate(tuple(shape))
        return (shape[0], self.patch, self.patch)

    def measure(self, x, theta):
        n, c = x.shape[:2]
        offsets = torch.arange(self.patch, device=x.device)
        rows = (theta["corners"][:, 0:1] + offsets)[:, None, :, None].expand(n, c, self.patch, self.patch)
        cols = (theta["corners"][:, 1:2] + offsets)[:, None, None, :].expand(n, c, self.patch, self.patch)
        # Gather rows, then columns: vectorised over samples, no Python loop.
        picked_rows = torch.gather(x, 2, rows[..., :1].expand(n, c, self.patch, x.shape[3]))
        return torch.gather(picked_rows, 3, cols)


class GaussianProjection(Measurement):
    """m random Gaussian projections of the flattened input, a new matrix per sample.

    Entries are N(0, 1/D) for an input of D elements, so a projection has the scale of the input's
    root-mean-square value.
    """

    name = "gaussian_projection"
    changes_shape = True

    def __init__(self, projections: int = 100):
        _check_range(self.name, "projections", projections, 1)
        self.projections = int(projections)

    def validate(self, shape):
        if len(shape) < 1:
            raise MeasurementError(f"measurement.{self.name} needs batched input, got per-sample shape {tuple(shape)}")

    def output_shape(self, shape):
        self.validate(tuple(shape))
        return (self.projections,)

    def sample_theta(self, x, generator):
        self.validate(tuple(x.shape[1:]))
        d = x[0].numel()
        a = torch.randn(len(x), self.projections, d, device=x.device, generator=generator, dtype=x.dtype)
        return {"matrix": a / math.sqrt(d)}

    def measure(self, x, theta):
        return torch.bmm(theta["matrix"], x.flatten(1).unsqueeze(2)).squeeze(2)


class ConvolveNoise(Measurement):
    """Gaussian blur of sigma blur_radius (a fixed kernel, never trainable), then N(0, noise_std²) noise."""

    name = "convolve_noise"

    def __init__(self, blur_radius: float = 1.0, noise_std: float = 0.1):
        _check_range(self.name, "blur_radius", blur_radius, 0.0)
        _check_range(self.name, "noise_std", noise_std, 0.0)
        self.blur_radius, self.noise_std = float(blur_radius), float(noise_std)
        self.half = math.ceil(2 * self.blur_radius)
        if self.blur_radius > 0:
            t = torch.arange(-self.half, self.half + 1, dtype=torch.float32)
            g = torch.exp(-(t**2) / (2 * self.blur_radius**2))
            self.kernel_1d = g / g.sum()  # a plain tensor: no optimiser can reach it
        else:
            self.kernel_1d = None

    def sample_theta(self, x, generator):
        self.validate(tuple(x.shape[1:]))
        return {"noise": torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype) * self.noise_std}

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_1d is None:
            return x
        c = x.shape[1]
        k = self.kernel_1d.to(device=x.device, dtype=x.dtype)
        # Separable depthwise blur; replicate padding keeps the shape for any map size.
        x = F.pad(x, (self.half, self.half, self.half, self.half), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def measure(self, x, theta):
        return self.blur(x) + theta["noise"]


class Cascade(Measurement):
    """Several measurements applied in order, e.g. Block-Pixel then Block-Patch."""

    name = "cascade"

    def __init__(self, steps: list[Measurement]):
        if not steps:
            raise MeasurementError("measurement.cascade: steps must list at least one measurement")
        self.steps = steps
        self.changes_shape = any(step.changes_shape for step in steps)

    def validate(self, shape):
        self.output_shape(shape)

    def output_shape(self, shape):
        for step in self.steps:
            shape = step.output_shape(tuple(shape))
        return tuple(shape)

    def sample_theta(self, x, generator):
        # Each step's theta is drawn on that step's input, so the earlier steps are applied on the way.
        thetas = []
        for step in self.steps:
            theta = step.sample_theta(x, generator)
            thetas.append(theta)
            x = step.measure(x, theta)
        return {"steps": thetas}

    def measure(self, x, theta):
        for step, step_theta in zip(self.steps, theta["steps"]):
            x = step.measure(x, step_theta)
        return x

    def __call__(self, x, generator):
        for step in self.steps:  # one pass: draw and apply step by step
            x = step(x, generator)
        return x


def _cascade(spec: Mapping) -> Cascade:
    steps = [build_measurement(step) for step in spec.get("steps", [])]
    if any(step is None for step in steps):
        raise MeasurementError("measurement.cascade: steps must not include name 'none'")
    return Cascade(steps)


REGISTRY = {
    "block_pixel": lambda s: BlockPixel(p=s.get("p", 0.5), unit=s.get("unit", "element")),
    "block_patch": lambda s: BlockPatch(patch=s.get("patch", 14)),
    "keep_patch": lambda s: KeepPatch(patch=s.get("patch", 14)),
    "extract_patch": lambda s: ExtractPatch(patch=s.get("patch", 14)),
    "gaussian_projection": lambda s: GaussianProjection(projections=s.get("projections", 100)),
    "convolve_noise": lambda s: ConvolveNoise(blur_radius=s.get("blur_radius", 1.0), noise_std=s.get("noise_std", 0.1)),
    "cascade": _cascade,
}


def build_measurement(spec: Mapping | None) -> Measurement | None:
    """A measurement from a spec dict ({"name": "block_pixel", "p": 0.5, ...}); None for "none"."""
    if spec is None or spec.get("name", "none") == "none":
        return None
    name = spec["name"]
    if name not in REGISTRY:
        raise MeasurementError(f"measurement.name='{name}' is not one of none, {', '.join(REGISTRY)}")
    return REGISTRY[name](spec)
