"""Where a trainer's nets run: past the DDP wrapper, under autocast, and this rank's random streams. Plain torch."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module behind a DDP wrapper (single-rank forward passes must bypass DDP)."""
    return getattr(module, "module", module)


def autocast(device: torch.device):
    """bfloat16 autocast on a GPU; nothing on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


class Keyed:
    """Nets and optimisers saved under their own checkpoint keys ({key: part}; None for one a trainer lacks, saved as
    an empty dict): the state of a part made of several."""

    def __init__(self, parts: dict[str, nn.Module | torch.optim.Optimizer | None]):
        self.parts = parts

    def state_dict(self) -> dict:
        return {key: {} if part is None else unwrap(part).state_dict() for key, part in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        for key, part in self.parts.items():
            if part is not None:
                unwrap(part).load_state_dict(state[key])


class RandomStreams:
    """This rank's two random streams, the only ones a trainer draws from after its nets are built: z (G's codes,
    the reversal's initial codes) and theta (the measurements, the gradient penalty's mixing weights). Each rank
    has its own, so that a checkpoint keeps every rank's and a resumed run continues them exactly."""

    def __init__(self, seed: int, rank: int, device: torch.device):
        self.z = torch.Generator(device).manual_seed(seed * 1000 + 2 * rank)
        self.theta = torch.Generator(device).manual_seed(seed * 1000 + 2 * rank + 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"z": self.z.get_state(), "theta": self.theta.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.z.set_state(state["z"].cpu())
        self.theta.set_state(state["theta"].cpu())
