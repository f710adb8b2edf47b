"""The two pixel ranges and the one pair of conversions between them. Measurements, D's inputs, the data and
every sample shown or scored are intensities in [0, 1] (zero is black, as in AmbientGAN); the generator outputs
[-1, 1] (tanh), which is also the space generator reversal fits its targets in. Plain torch."""

from __future__ import annotations

import torch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] to intensities in [0, 1]."""
    return (x + 1) * 0.5


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """Intensities in [0, 1] to the generator's [-1, 1]."""
    return x * 2 - 1
