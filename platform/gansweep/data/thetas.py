"""Each lossy real's theta, kept beside the lossy cache: KDE-GAN in mode ambient reverses a measured real y
through f_theta with the very theta that measured it, ||f_theta(G(z)) - y||^2.

A theta store is a directory of .npy arrays, one per theta key, row i being image i's theta; a Cascade's
thetas nest by step (steps/0/mask.npy, steps/1/corners.npy). Block-Pixel's 0/1 masks are stored as bool,
exactly, in a quarter of the space; every other array keeps its dtype, so Convolve+Noise's noise stays float32:
measure(x, stored theta) then gives the cached y bit for bit, the one invariant the store is checked against
(float16 noise would be off by up to 1e-4, harmless to a reversal but not checkable). Workers open the arrays
memory-mapped and read only their batches' rows. Plain numpy/torch: no Ray.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import torch

STEPS = "steps"  # a Cascade's theta: {"steps": [theta of each step]}


def concat_thetas(thetas: list[dict]) -> dict:
    """The thetas of several batches (of one measurement) as one batch, rows in order."""
    first = thetas[0]
    if STEPS in first:
        return {STEPS: [concat_thetas([theta[STEPS][i] for theta in thetas]) for i in range(len(first[STEPS]))]}
    return {key: torch.cat([theta[key] for theta in thetas]) for key in first}


def save_store(directory: Path, theta: dict) -> None:
    """Write THETA (one measurement's theta over the whole set, on the CPU) as the store DIRECTORY.

    Written to a temporary directory and renamed into place, so concurrent trials never read a half-written
    store; a trial that loses the race keeps the winner's (made from the same seed, so the same)."""
    tmp = directory.with_name(f"{directory.name}.{socket.gethostname()}.{os.getpid()}.tmp")  # unique on a shared cache
    _write(tmp, theta)
    try:
        tmp.rename(directory)
    except OSError:
        shutil.rmtree(tmp)
        if not directory.is_dir():
            raise


def _write(directory: Path, theta: dict) -> None:
    directory.mkdir(parents=True)
    for key, value in theta.items():
        if key == STEPS:
            for i, step in enumerate(value):
                _write(directory / STEPS / str(i), step)
            continue
        array = value.numpy()
        if array.dtype.kind == "f" and ((array == 0) | (array == 1)).all():
            array = array.astype(bool)  # a mask: lossless
        np.save(directory / f"{key}.npy", array)


class ThetaStore:
    """A theta store opened memory-mapped: ``rows`` reads only the images it is asked for."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.arrays = _open(self.directory)

    def rows(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> dict:
        """The theta of the images at INDICES (their positions in the training set), as measure() takes it."""
        return _take(self.arrays, indices.cpu().numpy(), torch.device(device))


def _open(directory: Path) -> dict:
    if (directory / STEPS).is_dir():
        steps = sorted((directory / STEPS).iterdir(), key=lambda path: int(path.name))
        return {STEPS: [_open(step) for step in steps]}
    return {path.stem: np.load(path, mmap_mode="r") for path in directory.glob("*.npy")}


def _take(arrays: dict, indices: np.ndarray, device: torch.device) -> dict:
    if STEPS in arrays:
        return {STEPS: [_take(step, indices, device) for step in arrays[STEPS]]}
    taken = {}
    for key, array in arrays.items():
        rows = array[indices]  # fancy indexing copies just these rows out of the memory map
        if rows.dtype == bool:
            rows = rows.astype(np.float32)  # masks as measure() multiplies them: the images' dtype
        taken[key] = torch.from_numpy(rows).to(device)
    return taken
