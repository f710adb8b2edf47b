"""A run directory, its one owner: run.json, the checkpoints (G, D, optimisers, G's moving average with train.ema,
step, every rank's random streams and the best cheap evaluation figures so far), and opening a run's sampler. A run
directory is a local folder or a folder on object storage (gansweep.storage); its TensorBoard files are
run.summaries'."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.parsing import from_dict
from gansweep.config.schema import Config
from gansweep.gan.sampler import Sampler, checkpoint_sampler
from gansweep.storage import write_json

RUN_FILE = "run.json"  # written when a run starts: what rebuilding its generator needs
RESULT_FILE = "result.json"  # written once the run has trained all its steps (and evaluated)
EVALUATION_FILE = "evaluation.json"  # the full evaluation protocol's figures
ERROR_FILE = "error.txt"  # a failed run's error in one line (a sweep's trials.json and report show it)
DIVERGED_FILE = "diverged.json"  # the step and losses at which the losses turned non-finite
FAILED_FOR_GOOD_FILE = "failed_for_good.txt"  # a sweep trial's error no retry can help, in one line
CHECKPOINTS_DIR = "checkpoints"  # Ray Train's run name: its checkpoint_* folders land here
TENSORBOARD_DIR = "tensorboard"
STATE_FILE = "state.pt"  # in a checkpoint: every part's state, the step, the ranks' random streams
STEP_FILE = "step.json"  # written after STATE_FILE: its presence marks a complete checkpoint
OWN_CHECKPOINT_PREFIX = "checkpoint_"  # + the zero-padded step: the checkpoints a run writes itself
# The newest grid of samples from the run's fixed z (G's moving average's with train.ema), rewritten at every image
# step, so a run stopped early has its last: what a sweep's report shows of each trial (no generator to load).
SAMPLES_FILE = "samples.png"
SAMPLES_STEP_KEY = "step"  # the PNG's text field holding the training step of its samples


@dataclass
class RunRecord:
    """run.json: the resolved config, the clean image shape and the training set's classes."""

    config: Config
    clean_shape: tuple[int, int, int]
    num_classes: int = 0


def write_run_record(run_dir: str, record: RunRecord) -> None:
    write_json(storage.join(run_dir, RUN_FILE), {"config": record.config.to_dict(),
                                                 "clean_shape": list(record.clean_shape),
                                                 "num_classes": record.num_classes})


def read_run_record(run_dir: str) -> RunRecord:
    path = storage.join(run_dir, RUN_FILE)
    data = _read_json(path)
    if data is None:
        raise ConfigError(f"{storage.display(path)} is missing: {storage.display(run_dir)} is not a gansweep run "
                          "directory")
    return RunRecord(from_dict(data["config"]), tuple(data["clean_shape"]), int(data.get("num_classes", 0)))


def _read_json(location: str) -> dict | None:
    text = _read_text(location)
    return None if text is None else json.loads(text)


def _read_text(location: str) -> str | None:
    """The file's text, or None when there is none (asked in one read, not a lookup and then a read)."""
    try:
        return storage.read_text(location)
    except FileNotFoundError:
        return None


def write_result(run_dir: str, summary: dict) -> None:
    write_json(storage.join(run_dir, RESULT_FILE), summary)


def read_result(run_dir: str) -> dict | None:
    """result.json, or None for a run that has not finished (or was stopped early)."""
    return _read_json(storage.join(run_dir, RESULT_FILE))


def write_evaluation(run_dir: str, figures: dict) -> None:
    write_json(storage.join(run_dir, EVALUATION_FILE), figures)


def read_evaluation(run_dir: str) -> dict | None:
    return _read_json(storage.join(run_dir, EVALUATION_FILE))


def write_samples(run_dir: str, grid: torch.Tensor, step: int) -> None:
    """SAMPLES_FILE from GRID, a (C, H, W) image in [0, 1], with its training STEP in the PNG."""
    from PIL import Image, PngImagePlugin

    pixels = (grid.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    info = PngImagePlugin.PngInfo()
    info.add_text(SAMPLES_STEP_KEY, str(step))
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG", pnginfo=info)
    storage.write_bytes(storage.join(run_dir, SAMPLES_FILE), buffer.getvalue())


def read_samples(run_dir: str):
    """(the samples' grid as a PIL image, its training step), or None for a run that wrote none."""
    from PIL import Image

    try:
        data = storage.read_bytes(storage.join(run_dir, SAMPLES_FILE))
    except FileNotFoundError:
        return None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image, int(image.text[SAMPLES_STEP_KEY])


def write_error(run_dir: str, error: BaseException) -> None:
    storage.write_text(storage.join(run_dir, ERROR_FILE), f"{type(error).__name__}: {error}")


def read_error(run_dir: str) -> str | None:
    return _read_text(storage.join(run_dir, ERROR_FILE))


def clear_error(run_dir: str) -> None:
    """Another attempt starts: an earlier attempt's error is not this run's (it writes its own if it fails)."""
    storage.delete(storage.join(run_dir, ERROR_FILE))


def mark_failed_for_good(run_dir: str, error: BaseException) -> None:
    """ERROR, which no retry can help, recorded for a sweep trial's later attempts (Tune's restarts): they fail at once
    with it."""
    storage.write_text(storage.join(run_dir, FAILED_FOR_GOOD_FILE), f"{type(error).__name__}: {error}")


def read_failed_for_good(run_dir: str) -> str | None:
    return _read_text(storage.join(run_dir, FAILED_FOR_GOOD_FILE))


def mark_diverged(run_dir: str, step: int, losses: dict[str, float]) -> None:
    write_json(storage.join(run_dir, DIVERGED_FILE), {"step": step, "losses": losses})


def read_diverged(run_dir: str) -> dict | None:
    return _read_json(storage.join(run_dir, DIVERGED_FILE))


def clear_diverged(run_dir: str) -> None:
    """A rerun tries again, from the last checkpoint."""
    storage.delete(storage.join(run_dir, DIVERGED_FILE))


def save_checkpoint(gan, step: int, rng_states: list, location: str | Path, best_eval: dict | None = None) -> None:
    """Into LOCATION, a folder or one on object storage: a Ray Train worker's local folder (Train uploads it to the
    run's storage), or own_checkpoint's, complete once its step file is written."""
    buffer = io.BytesIO()
    torch.save({**gan.state_dict(), "step": step, "rng": rng_states, "best_eval": best_eval or {}}, buffer)
    storage.write_bytes(storage.join(location, STATE_FILE), buffer.getvalue())
    storage.write_bytes(storage.join(location, STEP_FILE), json.dumps({"step": step}).encode())


def own_checkpoint(run_dir: str, step: int) -> str:
    """Where a run with no Ray Train to keep its checkpoints (a one-worker sweep trial, which trains in its Tune
    trial's own process) writes its checkpoint of STEP."""
    return storage.join(run_dir, CHECKPOINTS_DIR, f"{OWN_CHECKPOINT_PREFIX}{step:09d}")


def prune_own_checkpoints(run_dir: str, keep: int) -> None:
    """The oldest of the run's own checkpoints (own_checkpoint) beyond KEEP deleted, as Train's
    CheckpointConfig(num_to_keep) does with its own. Other checkpoints there (a PBT exploit's copy) stay."""
    checkpoints = storage.join(run_dir, CHECKPOINTS_DIR)
    own = [name for name in storage.list_names(checkpoints)
           if name.startswith(OWN_CHECKPOINT_PREFIX) and name[len(OWN_CHECKPOINT_PREFIX):].isdigit()]
    for name in sorted(own)[:-keep]:  # zero-padded steps: sorted by name is sorted by step
        storage.delete_folder(storage.join(checkpoints, name))


class CheckpointError(ConfigError):
    """A checkpoint that cannot be read (its state file cut short or corrupt), named; it would fail alike on every
    try."""


def load_checkpoint(directory: str) -> dict:
    """A checkpoint's state on the CPU, from a local folder or object storage (weights_only: no pickle from a
    file); each part's load_state_dict puts its tensors where its parameters are. Raises CheckpointError, naming the
    file, when its bytes are not a checkpoint (a storage error is storage's)."""
    location = storage.join(directory, STATE_FILE)
    data = storage.read_bytes(location)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # the bytes are in memory: whatever torch fails on is in them (zip, pickle, EOF)
        raise CheckpointError(f"{storage.display(location)} cannot be read ({_first_sentence(error)})") from None


def _first_sentence(error: BaseException) -> str:
    """ERROR's message to its first full stop (torch's "PytorchStreamReader failed reading zip archive: failed
    finding central directory" is followed by three sentences of advice), or its type when it has none."""
    return str(error).split(". ", 1)[0] or type(error).__name__


def newest_intact_checkpoint(run_dir: str, warn: Callable[[str], None]) -> tuple[str, dict] | None:
    """The newest complete checkpoint of RUN_DIR that loads, and its state; None when the run has none. One that
    cannot be read (a state file cut short) is named through WARN and skipped for the one before it: it would fail
    alike on every try. Raises CheckpointError, naming them, when none can be read."""
    unreadable = []
    for checkpoint in complete_checkpoints(run_dir):
        try:
            return checkpoint, load_checkpoint(checkpoint)
        except CheckpointError as error:
            warn(f"warning: {error}: skipped for the checkpoint before it")
            unreadable.append(storage.display(storage.join(checkpoint, STATE_FILE)))
    if unreadable:
        raise CheckpointError(f"no checkpoint of {storage.display(run_dir)} can be read ({', '.join(unreadable)}): "
                              "remove them to train from the start, or restore the run directory from a copy")
    return None


def copy_checkpoint(source: str, target: str, keep_streams: bool = True) -> None:
    """SOURCE's checkpoint as the folder TARGET (local or on object storage), complete once its step file is written.
    Without KEEP_STREAMS it holds no random streams: a run resumed from it draws from its own seed, not in step
    with the run it was copied from."""
    if keep_streams:
        data = storage.read_bytes(storage.join(source, STATE_FILE))
    else:
        state = load_checkpoint(source)
        state["rng"] = []
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    storage.write_bytes(storage.join(target, STATE_FILE), data)
    storage.write_bytes(storage.join(target, STEP_FILE), storage.read_bytes(storage.join(source, STEP_FILE)))


def checkpoint_step(checkpoint: str) -> int | None:
    """The step of a complete checkpoint, or None when its step file is missing or unreadable."""
    try:
        return int(json.loads(storage.read_text(storage.join(checkpoint, STEP_FILE)))["step"])
    except (OSError, ValueError, KeyError):
        return None


def complete_checkpoints(run_dir: str) -> list[str]:
    """The complete checkpoints in RUN_DIR/checkpoints/ (a state file and a readable step file), newest first: Ray
    Train's, and those the run writes itself (own_checkpoint) or a PBT exploit copied. Listed from the folder, not
    from Ray Train's record of them: a checkpoint written but not yet recorded when the run was killed is here too."""
    found = []
    checkpoints = storage.join(run_dir, CHECKPOINTS_DIR)
    for name in storage.list_names(checkpoints):
        directory = storage.join(checkpoints, name)
        if not name.startswith("checkpoint_") or not storage.is_file(storage.join(directory, STATE_FILE)):
            continue
        step = checkpoint_step(directory)
        if step is not None:
            found.append((step, directory))
    return [directory for _, directory in sorted(found, reverse=True)]


def latest_checkpoint(run_dir: str) -> str | None:
    """The complete checkpoint with the highest step in RUN_DIR/checkpoints/, if any."""
    return next(iter(complete_checkpoints(run_dir)), None)


def resolve_checkpoint(path: str | Path) -> tuple[str, str]:
    """(run directory, checkpoint directory) for a run directory or one of its checkpoints, local or on object
    storage."""
    path = storage.normalize(path)
    if not storage.exists(path):
        raise ConfigError(f"{storage.display(path)} does not exist: give a run directory (gansweep train --output) "
                          "or a checkpoint")
    if storage.is_file(storage.join(path, STATE_FILE)):
        return storage.parent_of(storage.parent_of(path)), path
    checkpoint = latest_checkpoint(path)
    if checkpoint is None:
        raise ConfigError(f"{storage.display(path)} holds no checkpoint (expected "
                          f"{storage.display(path)}/{CHECKPOINTS_DIR}/checkpoint_*/{STATE_FILE})")
    return path, checkpoint


def load_sampler(run_dir: str, checkpoint: str, raw: bool = False) -> tuple[Sampler, Config, int]:
    """The sampler of the run's generator with the checkpoint's weights and prior (gan.sampler.checkpoint_sampler:
    G's moving average where the checkpoint has one, unless RAW), the run's config and the checkpoint's step."""
    record = read_run_record(run_dir)
    state = load_checkpoint(checkpoint)
    sampler = checkpoint_sampler(record.config, record.clean_shape, record.num_classes, state, raw=raw)
    return sampler, record.config, int(state["step"])
