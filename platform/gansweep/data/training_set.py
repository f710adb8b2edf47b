"""The training set a run sees: clean images, or the lossy y_real = f_theta(x_real), cached by fingerprint.

Pixel convention: measurements act on intensities in [0, 1] (zero is black, as in AmbientGAN), so the
lossy set and the discriminator's inputs live in [0, 1]; the generator outputs [-1, 1] (tanh) and
``nets.pixels.to_unit`` maps it before it is measured or shown to D.

The lossy set is made once, with ``data.seed``, and cached under a fingerprint of (source, root,
limit, image size, measurement spec, seed): every trial of a sweep trains on the same lossy data.
In mode ``unmeasure`` the cached set is the restoration of that same lossy set (restoration.py). KDE-GAN in
mode ambient also needs each image's theta: it is kept beside the cache, in a theta store (thetas.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gansweep.config import Config, DataConfig, build_measurements
from gansweep.data.restoration import restore
from gansweep.data.sources import DataSourceError, cache_dir, load_source, resolved_root
from gansweep.data.thetas import concat_thetas, save_store
from gansweep.nets.measurements import Measurement

CACHE_VERSION = 1  # bump when the way the lossy set is made changes
MEASURE_BATCH = 1024


@dataclass
class TrainingSet:
    images: np.ndarray  # float32 (N, *sample_shape): clean in [0, 1], or the measured y_real
    labels: np.ndarray  # int64 (N,), -1 where unlabelled
    clean_shape: tuple[int, int, int]  # (C, H, W) of the clean images the generator must produce
    num_classes: int
    fingerprint: str  # identifies the data and its measurement; recorded with every run
    cache_path: str | None  # where the lossy set is cached (None for clean data)
    theta_path: str | None = None  # the theta store of the lossy set, when the run needs it (Config.needs_theta)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


def cache_root(data: DataConfig) -> Path:
    return Path(data.cache_dir).expanduser() if data.cache_dir else cache_dir()


def _restoration(cfg: Config) -> dict | None:
    """How mode unmeasure restores the lossy set (measure_dataset's `restoration`); None in other modes."""
    if not (cfg.measures_reals and cfg.mode == "unmeasure"):
        return None
    return {"inpaint": cfg.unmeasure.inpaint, "radius": cfg.unmeasure.inpaint_radius}


def fingerprint(cfg: Config) -> str:
    """Identifies the training set: the source and, when the reals are measured, the measurement and its seed."""
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
    if (restoration := _restoration(cfg)) is not None:  # added only here, so the other modes' caches stay valid
        key["restoration"] = restoration
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def measure_dataset(
    clean: np.ndarray, measurement: Measurement, seed: int, restoration: dict | None = None, keep_theta: bool = False
) -> tuple[np.ndarray, dict | None]:
    """y = f_theta(x) over the whole set, in batches, theta drawn from one generator seeded with `seed`;
    with `restoration` ({"inpaint": ..., "radius": ...}) each batch is restored from y and its theta.
    Returns the set and, with `keep_theta`, every image's theta (rows in order, on the CPU), else None."""
    generator = torch.Generator().manual_seed(seed)
    starts = range(0, len(clean), MEASURE_BATCH)
    if restoration is not None:
        starts = tqdm(starts, desc=f"restoring {measurement.name} ({len(clean)} images)", unit="batch", file=sys.stderr)
    out, thetas = [], []
    with torch.no_grad():
        for start in starts:
            batch = torch.from_numpy(clean[start : start + MEASURE_BATCH])
            theta = measurement.sample_theta(batch, generator)
            y = measurement.measure(batch, theta)
            out.append(y.numpy() if restoration is None else restore(measurement, y, theta, **restoration))
            if keep_theta:
                thetas.append(theta)
    return np.concatenate(out).astype(np.float32), concat_thetas(thetas) if keep_theta else None


def load_training_set(cfg: Config, measurement: Measurement | None = None) -> TrainingSet:
    """The clean or lossy training set of a run; the lossy one comes from the cache when it is there, with its
    theta store when the run needs one. MEASUREMENT: the run's image measurement, when already built."""
    data = cfg.data
    arrays = load_source(data.name, data.root, split="train", limit=data.limit, image_size=data.image_size)
    clean = arrays.images.astype(np.float32) / 255.0
    clean_shape = tuple(clean.shape[1:])
    fp = fingerprint(cfg)
    if not cfg.measures_reals:
        return TrainingSet(clean, arrays.labels, clean_shape, arrays.num_classes, fp, None)

    path = cache_root(data) / "lossy" / f"{data.name}-{fp}.npy"
    theta_path = path.with_suffix(".theta") if cfg.needs_theta else None
    measurement = measurement or build_measurements(cfg).image
    if path.is_file():
        images = np.load(path)
        if theta_path is not None and not theta_path.is_dir():  # a cache made before its run needed theta
            _remake_theta(clean, measurement, data.seed, images, path, theta_path)
    else:
        images, theta = measure_dataset(clean, measurement, data.seed, _restoration(cfg),
                                        keep_theta=theta_path is not None)
        path.parent.mkdir(parents=True, exist_ok=True)
        if theta is not None:  # first: a crash before y is written leaves no y, and the next run makes both
            save_store(theta_path, theta)
        # Write then rename, so concurrent trials never read a half-written cache.
        tmp = path.with_suffix(f".{socket.gethostname()}.{os.getpid()}.tmp.npy")  # unique on a shared cache too
        np.save(tmp, images)
        tmp.replace(path)
    return TrainingSet(images, arrays.labels, clean_shape, arrays.num_classes, fp, str(path),
                       str(theta_path) if theta_path is not None else None)


def _remake_theta(clean: np.ndarray, measurement: Measurement, seed: int, cached: np.ndarray, path: Path,
                  theta_path: Path) -> None:
    """The theta store of an existing lossy cache, from the seed that made it: measure_dataset is deterministic,
    so the y it makes again must be the cached y, else the theta would not be the one that measured it."""
    images, theta = measure_dataset(clean, measurement, seed, keep_theta=True)
    if not np.array_equal(images, cached):
        raise DataSourceError(
            f"the lossy cache {path} is not what data.seed={seed} makes now, so the theta that measured it cannot "
            f"be recovered (prior.name=kde in mode ambient needs it); delete {path} to remake it with its theta"
        )
    save_store(theta_path, theta)


def to_ray_dataset(training_set: TrainingSet, num_blocks: int = 8):
    """The training set as a Ray Dataset with columns `image` (tensor), `label` and `index` (the image's
    position in the set: KDE-GAN's warm start keeps each image's last reversed code under it).

    Built from in-memory Arrow blocks: no read tasks, so Train workers holding every CPU cannot
    starve the stream.
    """
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    # Progress bars of a stream that only splits in-memory blocks are noise in the training log.
    ray.data.DataContext.get_current().enable_progress_bars = False
    n = len(training_set.images)
    bounds = np.linspace(0, n, min(num_blocks, n) + 1, dtype=int)
    tables = [
        pa.table(
            {
                "image": ArrowTensorArray.from_numpy(training_set.images[lo:hi]),
                "label": pa.array(training_set.labels[lo:hi]),
                "index": pa.array(np.arange(lo, hi, dtype=np.int64)),
            }
        )
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
    return ray.data.from_arrow(tables)
