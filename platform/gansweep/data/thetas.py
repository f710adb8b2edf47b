"""Each lossy real's theta as a pure function of (data.seed, the image's index in the set).

Image i's theta is drawn by its measurement's own `sample_theta` from a CPU generator seeded with a mix of
(seed, i): a counter-based scheme keyed by the index, so every trial, worker, epoch and node measures image i
the same way, with nothing to cache or share, and KDE-GAN in mode ambient recomputes the theta that measured a
real from its index alone. torch's CPU generator (Mersenne Twister) gives the same draws on every machine; the
cost is one small draw per image (about 30 us; a batched draw is no cheaper for the larger measurements).
Plain torch: no Ray.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gansweep.nets.measurements import Measurement

STEPS = "steps"  # a Cascade's theta: {"steps": [theta of each step]}
MASK64 = (1 << 64) - 1


def image_seed(seed: int, index: int) -> int:
    """A 64-bit seed for image INDEX under SEED: SplitMix64's finaliser of (seed, index), so nearby seeds and
    indices give unrelated generator states."""
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def concat_thetas(thetas: list[dict]) -> dict:
    """The thetas of several batches (of one measurement) as one batch, rows in order."""
    first = thetas[0]
    if STEPS in first:
        return {STEPS: [concat_thetas([theta[STEPS][i] for theta in thetas]) for i in range(len(first[STEPS]))]}
    return {key: torch.cat([theta[key] for theta in thetas]) for key in first}


def thetas_to(theta: dict, device: torch.device | str) -> dict:
    """THETA with every tensor on DEVICE."""
    if STEPS in theta:
        return {STEPS: [thetas_to(step, device) for step in theta[STEPS]]}
    return {key: value.to(device) for key, value in theta.items()}


def keyed_theta(measurement: Measurement, sample_shape: Sequence[int], indices: Sequence[int], seed: int) -> dict:
    """The theta of the images at INDICES (positions in the training set) of shape SAMPLE_SHAPE, on the CPU."""
    # sample_theta reads only x's shape and device: one zero image stands for each.
    x = torch.zeros(1, *sample_shape)
    generator = torch.Generator()
    thetas = []
    for index in indices:
        generator.manual_seed(image_seed(seed, int(index)))
        thetas.append(measurement.sample_theta(x, generator))
    return concat_thetas(thetas)


def measure_keyed(measurement: Measurement, x: torch.Tensor, indices: Sequence[int], seed: int) -> tuple[torch.Tensor, dict]:
    """y = f_theta(x) for clean images X (in [0, 1]) at INDICES, each with its keyed theta; returns y and theta (on
    x's device)."""
    theta = thetas_to(keyed_theta(measurement, x.shape[1:], indices, seed), x.device)
    return measurement.measure(x, theta), theta
