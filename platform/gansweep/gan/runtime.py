"""Where nets run: the device a command asks for, past the DDP wrapper, under autocast (or in full precision), and
a trainer rank's random streams."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from gansweep.config.errors import ConfigError, quoted


DEVICES = ("auto", "cpu", "cuda")  # what evaluate, invert and holdout take as --device


def resolve_device(name: str) -> torch.device:
    """The device a command runs on: "auto" is the GPU where there is one, else the CPU; "cuda" without a GPU is
    refused."""
    if name not in DEVICES:
        raise ConfigError(f"--device {quoted(name)}: one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this machine has no CUDA GPU (torch.cuda.is_available() is False)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module behind a DDP wrapper (single-rank forward passes must bypass DDP)."""
    return getattr(module, "module", module)


def autocast(device: torch.device):
    """bfloat16 autocast on a GPU; nothing on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """fp32 convolutions and matrix products on a GPU: TF32 off (cuDNN allows it for convolutions by default), so an
    evaluation's figures on a GPU are the CPU's up to rounding. Restores the settings after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class Keyed:
    """Nets and optimisers saved under their own checkpoint keys ({key: part}; None for one a trainer lacks, saved as
    an empty dict): the state of a part made of several."""

    def __init__(self, parts: dict[str, nn.Module | torch.optim.Optimizer | None]):
        self.parts = parts

    def state_dict(self) -> dict:
        return {key: {} if part is None else unwrap(part).state_dict() for key, part in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        """Each part's state; an optimiser keeps the settings its run's config gave it (learning rate, betas): the
        checkpoint brings its moments and step counts. A PBT trial goes on from another trial's checkpoint with its
        own, perturbed, learning rates; any other resume has the same config, so the same settings."""
        for key, part in self.parts.items():
            if part is None:
                continue
            part = unwrap(part)
            if not isinstance(part, torch.optim.Optimizer):
                part.load_state_dict(state[key])
                continue
            configured = [{k: v for k, v in group.items() if k != "params"} for group in part.param_groups]
            part.load_state_dict(state[key])
            for group, settings in zip(part.param_groups, configured):
                group.update(settings)


CPU_STATE_BYTES = 5056  # a CPU generator's state (Mersenne Twister); a CUDA one's (Philox) is 16 bytes


class RandomStreams:
    """This rank's two random streams, the only ones a trainer draws from after its nets are built: z (G's codes,
    the reversal's initial codes) and theta (the measurements, the gradient penalty's mixing weights). Each rank
    has its own, so that a checkpoint keeps every rank's and a resumed run continues them exactly.

    A CPU generator's state cannot become a CUDA one's (different algorithms): a run resumed on another device
    type goes on from streams seeded by a hash of the checkpoint's states, the same on every resume of that
    checkpoint, with a warning that its draws are not those of an uninterrupted run."""

    def __init__(self, seed: int, rank: int, device: torch.device):
        self.z = torch.Generator(device).manual_seed(seed * 1000 + 2 * rank)
        self.theta = torch.Generator(device).manual_seed(seed * 1000 + 2 * rank + 1)

    @property
    def device_type(self) -> str:
        return self.z.device.type

    def state_dict(self) -> dict:
        return {"z": self.z.get_state(), "theta": self.theta.get_state(), "device_type": self.device_type}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("device_type") or _device_type_of(state["z"])  # older checkpoints: told by the size
        if saved == self.device_type:
            self.z.set_state(state["z"].cpu())
            self.theta.set_state(state["theta"].cpu())
            return
        warnings.warn(f"the checkpoint's random streams were drawn on {saved}, this run is on {self.device_type}: z "
                      "and theta go on from new streams seeded by the checkpoint's (the same on every such resume), "
                      "not the draws an uninterrupted run would make", stacklevel=2)
        for name, stream in (("z", self.z), ("theta", self.theta)):
            digest = hashlib.sha256(state[name].cpu().numpy().tobytes()).digest()
            stream.manual_seed(int.from_bytes(digest[:8], "little"))


def _device_type_of(generator_state: torch.Tensor) -> str:
    return "cpu" if generator_state.numel() == CPU_STATE_BYTES else "cuda"
