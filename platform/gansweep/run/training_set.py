"""The training set a run streams: its source's pieces, measured in the stream, or restored once (mode unmeasure).

Pixel convention: measurements act on intensities in [0, 1] (zero is black, as in AmbientGAN), so the
lossy set and the discriminator's inputs live in [0, 1]; the generator outputs [-1, 1] (tanh) and
``nets.pixels.to_unit`` maps it before it is measured or shown to D.

Nothing is loaded whole. The lossy y_real = f_theta(x_real) is made in the stream (data/stream.py) with each image's
theta a function of (data.seed, its index) (data/thetas.py): every trial of a sweep trains on the same lossy data with
nothing cached. Mode ``unmeasure`` restores that same lossy set once, as a Ray Data job across the cluster,
into Parquet in the cache (keyed by the fingerprint of source, limit, image size, measurement, seed and
restoration), which the run then streams like any source. The cache may be a URI (s3://bucket/cache: restored once
for a whole cluster); a restored folder counts once its completion marker, written after every part, is there.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from math import prod

import numpy as np
import torch

from gansweep import storage
from gansweep.config.checks import Measurements
from gansweep.config.schema import Config
from gansweep.data import cache
from gansweep.data.restoration import restore
from gansweep.data.source_base import SourceInfo
from gansweep.data.sources import read_piece, resolved_root, source_pieces, training_pieces
from gansweep.data.stream import StreamSpec, measured, pieces_per_window
from gansweep.data.thetas import measure_keyed
from gansweep.nets.measurements import Measurement
from gansweep.run.plan import STREAM_TASK_CPUS

CACHE_VERSION = 2  # bump when the way the lossy set is made changes (2: thetas keyed by index)
RESTORED_MARKER = "_SUCCESS"  # written last into a restored folder: without it the folder is absent (half-written)


@dataclass
class TrainingSet:
    stream: StreamSpec  # what the workers stream
    clean_shape: tuple[int, int, int]  # (C, H, W) of the clean images the generator must produce
    sample_shape: tuple[int, ...]  # of what D sees: clean, or the measured y_real
    num_classes: int
    fingerprint: str  # identifies the data and its measurement; recorded with every run
    restoration: dict | None = None  # mode unmeasure: how to restore the lossy set, until it is (restore_training_set)
    restored_path: str | None = None  # mode unmeasure: the restored set's Parquet folder in the cache (a location)

    @property
    def n_images(self) -> int:
        return self.stream.n_images


def _restoration(cfg: Config) -> dict | None:
    """How mode unmeasure restores the lossy set (restore's keyword arguments); None in other modes."""
    if not (cfg.measures_reals and cfg.mode == "unmeasure"):
        return None
    return {"inpaint": cfg.unmeasure.inpaint, "radius": cfg.unmeasure.inpaint_radius}


def fingerprint(cfg: Config) -> str:
    """Identifies the training set: the source, the validation split held out of it and, when the reals are measured,
    the measurement and its seed."""
    data = cfg.data
    key = {
        "version": CACHE_VERSION,
        "source": data.name,
        "root": resolved_root(data.name, data.root),
        "limit": data.limit,
        "image_size": data.image_size,
        "measurement": asdict(cfg.measurement) if cfg.measures_reals else None,
        "seed": data.seed if cfg.measures_reals else None,
    }
    if data.validation_size:  # added only with a validation split, so the keys of sets without one stay valid
        key["validation"] = list(data.holdout)
    if (restoration := _restoration(cfg)) is not None:  # added only here, so the other modes' keys stay valid
        key["restoration"] = restoration
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def prepare_training_set(cfg: Config, measurements: Measurements, source: SourceInfo) -> TrainingSet:
    """The training set of a run whose source SOURCE describes: its pieces listed (IDX sets converted to Parquet in
    the cache once), nothing decoded. No Ray: mode unmeasure's restoration runs later (restore_training_set)."""
    data = cfg.data
    # Listed once: describe_source's listing, or the IDX set's Parquet conversion; the validation split held out.
    pieces = training_pieces(data.name, data.root, source, cache_dir=data.cache_dir).pieces
    measurement = measurements.image if cfg.measures_reals else None
    clean_shape = tuple(source.clean_shape)
    sample_shape = measurement.output_shape(clean_shape) if measurement is not None and cfg.mode != "unmeasure" \
        else clean_shape
    fp = fingerprint(cfg)
    stream = _spec(cfg, pieces, clean_shape, measurement)
    training_set = TrainingSet(stream, clean_shape, sample_shape, source.num_classes, fp)
    restoration = _restoration(cfg)
    if restoration is None:
        return training_set
    restored = restored_folder(cfg)
    if _is_restored(restored):
        return _restored(cfg, training_set, restored)
    return replace(training_set, restoration=restoration)


def _spec(cfg: Config, pieces: list, clean_shape: tuple[int, ...], measurement: Measurement | None) -> StreamSpec:
    image_bytes = prod(clean_shape) * (4 if measurement is not None else 1)  # uint8, or float32 once measured
    return StreamSpec(pieces, channels=clean_shape[0], image_size=cfg.data.image_size, measurement=measurement,
                      data_seed=cfg.data.seed, shuffle_seed=cfg.train.seed,
                      pieces_per_window=pieces_per_window(pieces, image_bytes), task_cpus=STREAM_TASK_CPUS)


def restored_folder(cfg: Config) -> str:
    return cache.restored_folder(cfg.data.name, fingerprint(cfg), cfg.data.cache_dir)


def _is_restored(folder: str) -> bool:
    return storage.is_file(storage.join(folder, RESTORED_MARKER))


def _restored(cfg: Config, training_set: TrainingSet, folder: str) -> TrainingSet:
    """TRAINING_SET streaming the restored set in FOLDER (clean-like images, nothing measured in the stream)."""
    pieces = source_pieces("parquet", folder).pieces
    return replace(training_set, stream=_spec(cfg, pieces, training_set.clean_shape, None), restoration=None,
                   restored_path=folder)


def restore_training_set(cfg: Config, training_set: TrainingSet) -> TrainingSet:
    """Mode unmeasure: the lossy set restored once (a Ray Data job, a task per piece, across the cluster) into
    Parquet in the cache, then streamed; a set restored already is reused. Needs Ray."""
    if training_set.restoration is None:
        return training_set
    import ray.data

    folder = restored_folder(cfg)
    if not _is_restored(folder):
        # Object storage has no rename, so the parts go into the folder itself, each written whole, and the marker
        # last: readers never take a half-written set, and concurrent trials write the same parts (the same seed).
        spec = training_set.stream
        print(f"[gansweep] restoring the lossy set ({spec.n_images} images, {len(spec.pieces)} tasks) into "
              f"{storage.display(folder)}", flush=True)
        items = ray.data.from_items([{"piece": k} for k in range(len(spec.pieces))], override_num_blocks=len(spec.pieces))
        items.map_batches(_restore_pieces, batch_size=1, num_cpus=spec.task_cpus,
                          fn_kwargs={"spec": spec, "restoration": training_set.restoration, "folder": folder}
                          ).materialize()
        storage.write_bytes(storage.join(folder, RESTORED_MARKER), b"")
    return _restored(cfg, training_set, folder)


def _restore_pieces(batch: dict[str, np.ndarray], spec: StreamSpec, restoration: dict,
                    folder: str) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data's map_batches function: each piece measured with its keyed theta, restored, and written as
    FOLDER/part-K.parquet (uint8 pixel lists, rounded: the restored set is a source like any other)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for k in batch["piece"]:
        piece = spec.pieces[int(k)]
        arrays = read_piece(piece, spec.image_size, spec.channels)
        with torch.no_grad():
            y, theta = measure_keyed(spec.measurement, torch.from_numpy(arrays.images).float() / 255.0,
                                     piece.kept, spec.data_seed)
        restored = restore(spec.measurement, y, theta, **restoration)
        pixels = np.clip(np.rint(restored * 255), 0, 255).astype(np.uint8).reshape(len(restored), -1)
        images = pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1), pa.uint8()), pixels.shape[1])
        buffer = io.BytesIO()
        pq.write_table(pa.table({"image": images, "label": pa.array(arrays.labels)}), buffer)
        storage.write_bytes(storage.join(folder, f"part-{int(k):06d}.parquet"), buffer.getvalue())
        yield {"piece": np.array([k]), "rows": np.array([len(pixels)])}


def read_training_set(training_set: TrainingSet, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first LIMIT images of TRAINING_SET in index order, as the stream gives them (float32: clean in [0, 1],
    or the measured y_real), and their labels: to look at a set, test it and run small studies in memory. Training
    streams. Mode unmeasure gives the restored set once restore_training_set has made it."""
    spec = training_set.stream
    images, labels, indices = [], [], []
    for piece in sorted(spec.pieces, key=lambda p: p.indices.start):
        arrays = read_piece(piece, spec.image_size, spec.channels)
        indices.append(piece.kept)
        images.append(arrays.images.astype(np.float32) / 255.0 if spec.measurement is None
                      else measured(spec, arrays.images, indices[-1]))
        labels.append(arrays.labels)
        if limit is not None and piece.indices.step == 1 and sum(map(len, indices)) >= limit:
            break  # contiguous pieces in order: the first LIMIT images are read (an image folder's are strided)
    order = np.argsort(np.concatenate(indices), kind="stable")[:limit]
    return np.concatenate(images)[order], np.concatenate(labels)[order]
