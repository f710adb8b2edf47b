"""Lossy measurements f_theta of AmbientGAN, for images and generator feature maps alike.

Each measurement follows the original AmbientGAN code: ``sample_theta`` draws the random parameters
theta (per sample, batched, on the tensor's device, from the given torch.Generator only) and
``measure`` applies them, differentiably in x and without a Python loop over samples. Each measurement
declares its parameters, their defaults and allowed values in ``params``, next to its code: the constructor
checks them, and the config checks a spec by building it (``build_measurement``). The rest is checked in
``validate`` against the shape that arrives. Both raise MeasurementError naming the config key (``key``) and
the allowed values. Plain torch: no Ray, nothing else of gansweep.
Measurements are not nn.Modules and hold no parameters, so no optimiser can ever train them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F


class MeasurementError(ValueError):
    """A measurement parameter outside its range, or one that does not fit the tensor it meets."""


@dataclass(frozen=True)
class Range:
    """A number parameter: its default and the allowed values low <= value (<= high), whole ones when integer."""

    default: float
    low: float
    high: float | None = None
    integer: bool = False

    def checked(self, key: str, value):
        """VALUE as the measurement keeps it, or a MeasurementError naming KEY and the allowed values."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise MeasurementError(f"{key}={value!r} must be a number")
        # Written as "not inside" so that NaN is rejected too.
        if not (self.low <= value and (self.high is None or value <= self.high)):
            if self.high is None:
                raise MeasurementError(f"{key}={value} must be >= {self.low:g}")
            raise MeasurementError(f"{key}={value} is outside [{self.low:g}, {self.high:g}]")
        if self.integer and value != int(value):
            raise MeasurementError(f"{key}={value} must be an integer")
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class OneOf:
    """A parameter that names one of a few options."""

    default: str
    options: tuple[str, ...]

    def checked(self, key: str, value):
        if value not in self.options:
            raise MeasurementError(f"{key}='{value}' is not one of {', '.join(self.options)}")
        return value


class Measurement:
    """Base class: f_theta(x) = measure(x, sample_theta(x, generator))."""

    name = ""
    changes_shape = False  # True when the output is not the input's shape (D must adapt)
    params: dict[str, Range | OneOf] = {}  # each parameter's default and allowed values, in positional order

    def __init__(self, *values, key: str | None = None, **named):
        """Parameters by position (in the order of ``params``) or by name, each checked by its declaration;
        those left out take their default. KEY is the config key errors name (default: the measurement's name)."""
        self.key = key or self.name
        if len(values) > len(self.params):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.params)} parameters, got {len(values)}")
        given = {**dict(zip(self.params, values)), **named}
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter {unknown[0]!r}")
        for param, declared in self.params.items():
            value = given.get(param)
            # None: this measurement's own default (what DEFAULTS holds for a name whose defaults differ).
            value = declared.default if value is None else value
            setattr(self, param, declared.checked(f"{self.key}.{param}", value))

    def validate(self, shape: tuple[int, ...]) -> None:
        """Check against a per-sample shape; the spatial measurements need (C, H, W)."""
        if len(shape) != 3:
            raise MeasurementError(
                f"{self.key}: {self.name} needs (N, C, H, W) tensors, got per-sample shape {tuple(shape)}"
            )

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape for a per-sample input shape; validates."""
        self.validate(tuple(shape))
        return tuple(shape)

    def sample_theta(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw theta for every sample of x, from `generator` only."""
        self.validate(tuple(x.shape[1:]))
        return self._draw(x, generator)

    def _draw(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def measure(self, x: torch.Tensor, theta: dict) -> torch.Tensor:
        raise NotImplementedError

    def lost_mask(self, y: torch.Tensor, theta: dict) -> torch.Tensor | None:
        """Ones where the measurement destroyed an element of y (what inpainting must fill), broadcastable
        to y; None for measurements that lose no element positions (blur, projections)."""
        return None

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.measure(x, self.sample_theta(x, generator))


class BlockPixel(Measurement):
    """Each element (unit="element") or whole feature map (unit="channel") zeroed with probability p."""

    name = "block_pixel"
    params = {
        "p": Range(default=0.5, low=0.0, high=1.0),  # probability that an element (or a channel) is zeroed
        "unit": OneOf(default="element", options=("element", "channel")),  # channel: whole feature maps
    }

    def validate(self, shape):
        # Element-wise dropping fits any shape; a channel needs (C, H, W).
        if self.unit == "channel":
            super().validate(shape)

    def _draw(self, x, generator):
        shape = x.shape if self.unit == "element" else (*x.shape[:2], 1, 1)
        # p is the probability of DROPPING: keep where u >= p, so p=0 keeps all and p=1 drops all.
        keep = torch.rand(shape, device=x.device, generator=generator) >= self.p
        return {"mask": keep.to(x.dtype)}

    def measure(self, x, theta):
        return x * theta["mask"]

    def lost_mask(self, y, theta):
        return 1 - theta["mask"]


def _patch_mask(x: torch.Tensor, corners: torch.Tensor, k: int) -> torch.Tensor:
    """Ones inside the k x k patches, built by broadcasting, no loop: (N, 1, H, W) for corners (N, 2), one
    patch per sample; (N, C, H, W) for corners (N, C, 2), one patch per feature map."""
    h, w = x.shape[-2:]
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    in_rows = (r >= corners[..., :1]) & (r < corners[..., :1] + k)  # (N[, C], H)
    in_cols = (c >= corners[..., 1:]) & (c < corners[..., 1:] + k)  # (N[, C], W)
    mask = in_rows[..., :, None] & in_cols[..., None, :]  # (N[, C], H, W)
    return (mask[:, None] if corners.dim() == 2 else mask).to(x.dtype)


class _Patch(Measurement):
    """Shared by the patch measurements: one random k x k patch per sample, at the same place in every channel
    (unit="sample"), or one per feature map of each sample (unit="channel", the hidden-space paper's "randomly
    chosen patch in each feature map")."""

    params = {
        "patch": Range(default=14, low=1, integer=True),  # k of the k x k patch
        # Block-Pixel's "unit" has another default ("element"); DEFAULTS holds None for it, each measurement's own.
        "unit": OneOf(default="sample", options=("sample", "channel")),  # channel: a patch per feature map
    }

    def validate(self, shape):
        super().validate(shape)
        _, h, w = shape
        if self.patch > h or self.patch > w:
            raise MeasurementError(
                f"{self.key}.patch={self.patch} is larger than the {h}x{w} map; allowed [1, {min(h, w)}]"
            )

    def _draw(self, x, generator):
        """theta["corners"]: int64 top-left (row, col), uniform over the valid positions: (N, 2) per sample
        (unit="sample"), (N, C, 2) per feature map (unit="channel")."""
        n, c, h, w = x.shape
        size = (n,) if self.unit == "sample" else (n, c)
        rows = torch.randint(0, h - self.patch + 1, size, device=x.device, generator=generator)
        cols = torch.randint(0, w - self.patch + 1, size, device=x.device, generator=generator)
        return {"corners": torch.stack([rows, cols], dim=-1)}


class BlockPatch(_Patch):
    """One random k x k patch per sample (or per feature map, unit="channel") zeroed."""

    name = "block_patch"

    def measure(self, x, theta):
        return x * (1 - _patch_mask(x, theta["corners"], self.patch))

    def lost_mask(self, y, theta):
        return _patch_mask(y, theta["corners"], self.patch)


class KeepPatch(_Patch):
    """Everything outside one random k x k patch per sample (or per feature map, unit="channel") zeroed."""

    name = "keep_patch"

    def measure(self, x, theta):
        return x * _patch_mask(x, theta["corners"], self.patch)

    def lost_mask(self, y, theta):
        return 1 - _patch_mask(y, theta["corners"], self.patch)


class ExtractPatch(_Patch):
    """The random k x k patch itself: the output is (N, C, k, k); with unit="channel" each feature map's own."""

    name = "extract_patch"
    changes_shape = True

    def output_shape(self, shape):
        self.validate(tuple(shape))
        return (shape[0], self.patch, self.patch)

    def measure(self, x, theta):
        offsets = torch.arange(self.patch, device=x.device)
        corners = theta["corners"]
        if corners.dim() == 3:  # unit="channel": (N, C, 2), a patch per feature map
            rows = (corners[..., 0:1] + offsets)[..., :, None]  # (N, C, k, 1)
            cols = (corners[..., 1:2] + offsets)[..., None, :]  # (N, C, 1, k)
            samples = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
            channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            return x[samples, channels, rows, cols]  # (N, C, k, k)
        rows = (corners[:, 0:1] + offsets)[:, :, None]  # (N, k, 1)
        cols = (corners[:, 1:2] + offsets)[:, None, :]  # (N, 1, k)
        samples = torch.arange(len(x), device=x.device)[:, None, None]
        # Advanced indexing on channels-last picks every sample's own patch at once: (N, k, k, C).
        return x.permute(0, 2, 3, 1)[samples, rows, cols].permute(0, 3, 1, 2)


class GaussianProjection(Measurement):
    """m random Gaussian projections y = Ax of the flattened input, shown to D with their matrix A, as the
    back-projection (D/m) A^T y: an image of the input's own shape (D keeps its body, hidden layers take it).

    A is m x D with entries N(0, 1/D), a new A per sample (AmbientGAN's "random Gaussian vector which is included
    in the measurements", m of them). Given x the back-projection is an unbiased estimate of x, E = x, with
    covariance (||x||^2 / m)(I + u u^T), u = x / ||x||: D sees where x lies, not only its norm. (y = Ax alone,
    without A, is N(0, ||x||^2 / D I_m) given x and tells D nothing but the norm: not identifiable.)

    Drawn exactly without forming A (m x D normals per sample, 8% of a GAN step at m=100 on 28x28): splitting A
    into its part along u and the rest, A^T A x = ||x|| (s u + sqrt(s / D) (I - u u^T) h) with s = ||g||^2,
    g ~ N(0, I_m / D), h ~ N(0, I_D), independent. So theta is s (N, 1) and h (the input's shape): m + D normals
    per sample, and the law of the measurement given x is the matrix's. (For one theta the map x -> output is
    not linear, as A^T A x is; AmbientGAN needs only the law of f_theta(x) given x.)
    """

    name = "gaussian_projection"
    params = {"projections": Range(default=100, low=1, integer=True)}  # m projections

    def validate(self, shape):
        # Any per-sample shape works (it is flattened), as long as there is one.
        if len(shape) < 1:
            raise MeasurementError(
                f"{self.key}: {self.name} needs batched input (N, ...), got per-sample shape {tuple(shape)}"
            )

    def _draw(self, x, generator):
        d = math.prod(x.shape[1:])
        g = torch.randn(len(x), self.projections, device=x.device, dtype=x.dtype, generator=generator)
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return {"scale": g.square().sum(1, keepdim=True) / d, "noise": noise}

    def measure(self, x, theta):
        flat, h, s = x.flatten(1), theta["noise"].flatten(1), theta["scale"]
        d = flat.shape[1]
        norm = flat.norm(dim=1, keepdim=True)
        # ||x|| (I - u u^T) h, written without dividing x by a norm that may be 0 (a blank image or feature map).
        across = norm * h - (h * flat).sum(1, keepdim=True) * flat / norm.clamp_min(torch.finfo(x.dtype).tiny)
        back_projection = s * flat + (s / d).sqrt() * across
        return (back_projection * (d / self.projections)).view_as(x)


class ConvolveNoise(Measurement):
    """Gaussian blur of sigma blur_radius, then additive N(0, noise_std²) noise per element.

    The kernel (size 2*ceil(2r)+1) is a plain tensor, never a parameter: no optimiser can reach it.
    """

    name = "convolve_noise"
    # The blur's sigma and the noise's std.
    params = {"blur_radius": Range(default=1.0, low=0.0), "noise_std": Range(default=0.1, low=0.0)}

    def __init__(self, *values, key: str | None = None, **named):
        super().__init__(*values, key=key, **named)
        self.half = math.ceil(2 * self.blur_radius)
        self.kernel_1d = None  # blur_radius 0: no blur
        if self.blur_radius > 0:
            t = torch.arange(-self.half, self.half + 1, dtype=torch.float64)
            g = torch.exp(-(t**2) / (2 * self.blur_radius**2))
            self.kernel_1d = (g / g.sum()).float()
        self._kernels: dict[tuple, torch.Tensor] = {}  # per (device, dtype): no host copy every step

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in self._kernels:
            self._kernels[key] = self.kernel_1d.to(device=x.device, dtype=x.dtype)
        return self._kernels[key]

    def _draw(self, x, generator):
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return {"noise": noise * self.noise_std}

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_1d is None:
            return x
        c, k = x.shape[1], self._kernel(x)
        # Separable depthwise blur. Replicate padding keeps the shape for any map size (reflect
        # fails once the kernel outgrows a 7x7 feature map) and keeps a constant image constant.
        x = F.pad(x, (self.half,) * 4, mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def measure(self, x, theta):
        return self.blur(x) + theta["noise"]


class Cascade(Measurement):
    """Several measurements applied in order, e.g. Block-Pixel then Block-Patch; output shapes chain."""

    name = "cascade"

    def __init__(self, steps: list[Measurement], *, key: str | None = None):
        self.key = key or self.name
        if not steps:
            raise MeasurementError(f"{self.key}.name=cascade needs a non-empty {self.key}.steps list")
        self.steps = list(steps)
        self.changes_shape = any(step.changes_shape for step in self.steps)

    def validate(self, shape):
        self.output_shape(shape)

    def output_shape(self, shape):
        for step in self.steps:
            shape = step.output_shape(tuple(shape))
        return tuple(shape)

    def sample_theta(self, x, generator):
        """{"steps": [theta of each step]}; each step's theta is drawn on that step's input."""
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
        # One pass (sample_theta already applies each step); same draws, same output.
        for step in self.steps:
            x = step(x, generator)
        return x


def _cascade_steps(steps, key: str) -> list[Measurement]:
    built = []
    for i, step in enumerate(steps or []):
        step_key = f"{key}.steps[{i}]"
        if not isinstance(step, Mapping):
            raise MeasurementError(f"{step_key} must be a mapping such as {{name: block_pixel, p: 0.5}}")
        measurement = build_measurement(step, step_key)
        if measurement is None:
            raise MeasurementError(f"{step_key}: a cascade step needs a measurement name, not none")
        built.append(measurement)
    return built


# The measurement names: "none" and these.
REGISTRY = {
    cls.name: cls
    for cls in (BlockPixel, BlockPatch, KeepPatch, ExtractPatch, GaussianProjection, ConvolveNoise, Cascade)
}
# Every parameter's default (the shared "patch" and "unit" are declared once, by _Patch): the config's defaults
# too. The config is flat (one "unit" key for all measurements), so a name whose measurements declare different
# defaults ("unit": Block-Pixel's "element", the patches' "sample") maps to None, which every measurement reads
# as its own default.
_DECLARED = [(param, declared.default) for cls in REGISTRY.values() for param, declared in cls.params.items()]
DEFAULTS = {param: default for param, default in _DECLARED}
DEFAULTS.update({param: None for param, default in _DECLARED if default != DEFAULTS[param]})


def build_measurement(spec: Mapping | None, key: str = "measurement") -> Measurement | None:
    """A measurement from a spec ({"name": "block_pixel", "p": 0.5, ...}); None for name "none" (or no spec).

    Parameters the spec leaves out take their declared defaults, and those of other measurements are ignored.
    KEY is the config key of the spec ("hidden.measurement", "measurement.steps[1]"), which errors name."""
    if spec is None or spec.get("name", "none") == "none":
        return None
    name = spec["name"]
    if name not in REGISTRY:
        raise MeasurementError(f"{key}.name='{name}' is not one of none, {', '.join(REGISTRY)}")
    if name == "cascade":
        return Cascade(_cascade_steps(spec.get("steps"), key), key=key)
    cls = REGISTRY[name]
    return cls(key=key, **{param: spec[param] for param in cls.params if param in spec})
