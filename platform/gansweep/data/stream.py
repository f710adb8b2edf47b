"""The training stream: each Train worker's batches, read piece by piece by Ray Data tasks, never held whole.

Order. Each epoch the pieces (source_base.Piece: a row group's rows, some image files) are permuted with
(shuffle seed, epoch) and grouped into windows of `pieces_per_window` pieces; one Ray Data task reads a window,
shuffles its rows with (shuffle seed, epoch, window), measures them (each image with its keyed theta,
thetas.py) and emits them in blocks. The windows of all epochs form one sequence, dealt to the ranks in turn
(window g to rank g mod world), and a rank's batches are consecutive rows of its windows. So the data order is a
pure function of (seed, rank, world, rows consumed): a resumed run starts its stream at the row it stopped at
(skipping whole windows unread, and rows of the first one) and sees the order an uninterrupted run would have.

Each worker runs its own stream (not Ray Train's dataset split, whose dynamic split gives no rank a fixed order);
the reading, decoding and measuring runs in Ray tasks of `task_cpus` CPUs, which the resource plan reserves next
to the workers (run/plan.py), so the stream never waits behind Train workers that hold every CPU. Images stay
uint8 up to the worker's device (a measured set arrives as float32: y is not on the uint8 grid).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from gansweep.data.sources import Piece, read_piece
from gansweep.data.thetas import measure_keyed
from gansweep.nets.measurements import Measurement

BLOCK_ROWS = 1024  # rows per block a window task emits
WINDOW_BYTES = 64 * 2**20  # at most this many bytes of images per window (its task's memory)
MAX_PIECES_PER_WINDOW = 8
# How far a rank's stream reads ahead of its training (its share of the object store): a few windows. Unbounded,
# Ray Data reads ahead until its object store budget is full, at full speed, taking CPU from the workers.
READ_AHEAD_BYTES = 4 * WINDOW_BYTES


@dataclass
class StreamSpec:
    """What a worker's stream reads and how; made by the driver (run/training_set.py), shipped in the RunPlan."""

    pieces: list[Piece]  # the set in index order (a validation split's images held out of them)
    channels: int  # 1 or 3, the first image's (sources.describe_source)
    image_size: int | None  # data.image_size
    measurement: Measurement | None  # each clean image is measured with its keyed theta; None: used as read
    data_seed: int  # keys the thetas
    shuffle_seed: int  # keys the order
    pieces_per_window: int
    task_cpus: float  # of each reading task
    max_tasks: int = 1  # reading tasks at once per rank (run/plan.py's stream_tasks: the CPUs left beside it)

    @property
    def n_images(self) -> int:
        return sum(piece.n_images for piece in self.pieces)


def pieces_per_window(pieces: list[Piece], image_bytes: int) -> int:
    """Up to MAX_PIECES_PER_WINDOW pieces (more pieces mixed per window), within WINDOW_BYTES."""
    largest = max(piece.n_images for piece in pieces) * image_bytes
    return int(max(1, min(MAX_PIECES_PER_WINDOW, WINDOW_BYTES // max(1, largest), len(pieces))))


def epoch_windows(spec: StreamSpec, epoch: int) -> list[np.ndarray]:
    """The piece numbers of each window of EPOCH."""
    order = np.random.default_rng([spec.shuffle_seed, epoch]).permutation(len(spec.pieces))
    return [order[lo : lo + spec.pieces_per_window] for lo in range(0, len(order), spec.pieces_per_window)]


def _window_rows(spec: StreamSpec, epoch: int) -> list[int]:
    return [sum(spec.pieces[k].n_images for k in window) for window in epoch_windows(spec, epoch)]


def rank_items(spec: StreamSpec, rank: int, world: int, start_row: int, rows: int) -> list[dict]:
    """The windows of RANK's stream (as {"epoch", "window", "skip"}) that hold its rows START_ROW to at least
    START_ROW + ROWS; "skip": the first window's rows already consumed."""
    items, position, global_window, epoch = [], 0, 0, 0
    while position < start_row + rows:
        for window, size in enumerate(_window_rows(spec, epoch)):
            mine = global_window % world == rank
            global_window += 1
            if not mine:
                continue
            if position + size > start_row:
                items.append({"epoch": epoch, "window": window, "skip": max(0, start_row - position)})
            position += size
            if position >= start_row + rows:
                break
        epoch += 1
    return items


def read_window(spec: StreamSpec, epoch: int, window: int, skip: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """A window's rows in their shuffled order from row SKIP on, measured, in blocks of BLOCK_ROWS: {"image": uint8
    clean or float32 measured, "label", "index"}."""
    pieces = [spec.pieces[k] for k in epoch_windows(spec, epoch)[window]]
    read = [read_piece(piece, spec.image_size, spec.channels) for piece in pieces]
    images = np.concatenate([arrays.images for arrays in read])
    labels = np.concatenate([arrays.labels for arrays in read])
    indices = np.concatenate([piece.kept for piece in pieces])  # a validation split's images are not read
    order = np.random.default_rng([spec.shuffle_seed, epoch, window]).permutation(len(images))[skip:]
    for lo in range(0, len(order), BLOCK_ROWS):
        rows = order[lo : lo + BLOCK_ROWS]
        block = images[rows] if spec.measurement is None else measured(spec, images[rows], indices[rows])
        yield {"image": block, "label": labels[rows], "index": indices[rows]}


def measured(spec: StreamSpec, images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """uint8 clean IMAGES at INDICES measured with their keyed thetas: float32 y in the measurement's space."""
    with torch.no_grad():
        clean = torch.from_numpy(images).float() / 255.0
        return measure_keyed(spec.measurement, clean, indices, spec.data_seed)[0].numpy()


def _read_items(batch: dict[str, np.ndarray], spec: StreamSpec) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data's map_batches function over a batch of window items."""
    for epoch, window, skip in zip(batch["epoch"], batch["window"], batch["skip"]):
        yield from read_window(spec, int(epoch), int(window), int(skip))


def window_dataset(spec: StreamSpec, items: list[dict]):
    """The Ray Dataset of ITEMS' windows, in order."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the order is the point: see the module's docstring
    context.enable_progress_bars = False  # a progress bar per window is noise in the training log
    context.execution_options.resource_limits = context.execution_options.resource_limits.copy(
        object_store_memory=READ_AHEAD_BYTES)
    items_ds = ray.data.from_items(items, override_num_blocks=len(items))
    # At most spec.max_tasks tasks at once: Ray Data would start a task process (torch imported anew) for every
    # fraction of a CPU it finds, and a few of those starting at once take the workers' CPUs for a minute.
    return items_ds.map_batches(_read_items, fn_kwargs={"spec": spec}, batch_size=1, num_cpus=spec.task_cpus,
                                 compute=ray.data.TaskPoolStrategy(size=spec.max_tasks))


def rank_batches(
    spec: StreamSpec, rank: int, world: int, batch_size: int, start_row: int, device: torch.device,
    rows_per_pass: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """RANK's (images in [0, 1] or measured, labels) on DEVICE and their indices on the CPU (KDE-GAN's prior reads
    them on the host), BATCH_SIZE rows each, from its row START_ROW on, forever (a Ray Dataset of about
    ROWS_PER_PASS rows at a time)."""
    pin = device.type == "cuda"  # a copy from pinned memory overlaps the GPU's work; from pageable memory it waits
    position = start_row
    while True:
        items = rank_items(spec, rank, world, position, rows_per_pass)
        rows = 0
        for batch in window_dataset(spec, items).iter_batches(
            batch_size=batch_size, batch_format="numpy", prefetch_batches=2, drop_last=True
        ):
            # Ray hands out read-only arrays; torch wants writable ones (a copy of a batch only where needed).
            images, labels, indices = (torch.from_numpy(np.require(batch[key], requirements="W"))
                                       for key in ("image", "label", "index"))
            if pin:
                images, labels = images.pin_memory(), labels.pin_memory()
            images = images.to(device, non_blocking=True)
            if images.dtype == torch.uint8:  # converted on the device: a quarter of the bytes to move
                images = images.float().div_(255.0)
            rows += len(images)
            yield images, labels.to(device, non_blocking=True), indices
        position += rows
        if rows == 0:
            raise RuntimeError(f"the training stream of rank {rank} yielded no batch of {batch_size} from row "
                               f"{position}: the set has {spec.n_images} images")


def rows_per_rank(steps: int, d_steps: int, batch_size: int) -> int:
    """Rows a rank consumes in STEPS generator steps."""
    return steps * d_steps * batch_size

