"""The evaluation protocol's data: the clean reference splits (their images, and a feature network's features of them
cached once per source, split and network) and the clean training images in batches, for the nearest-neighbour
distance.

Two reference splits. The cheap FID while training, which a search selects on (ASHA, PBT, the objective), compares
samples with the validation split: clean training images held out of training (data/validation.py), so that no choice
looks at the test split. The full evaluation's figures, the ones reported, compare them with the clean test split
(the training split for a source without one). Both compare with clean images, whatever the run trains on: the
protocol's quality is the clean generator's. With data.validation_size 0 the cheap FID falls back to the test split.

The features are computed once per (source, its resolved root, image size, split (and the validation split's size
and seed), feature network and its fingerprint: the classifier's, or the Inception file's hash) and cached as
CACHE/reference/<source>-<network>-<key>.npz (``feats``: float64 (N, F); ``key``: the JSON the key hashes), CACHE a
local folder or a URI; written whole (storage.write_bytes), so concurrent trials never read a half-written file.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gansweep import storage
from gansweep.config.schema import Config, DataConfig
from gansweep.data import cache
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import (
    describe_source,
    load_source,
    load_validation,
    read_piece,
    resolved_root,
    source_pieces,
    training_pieces,
)
from gansweep.evaluation.metrics import classifier_outputs

if TYPE_CHECKING:
    from gansweep.evaluation.classifier import ClassifierRecord

VALIDATION = "validation"  # the validation split's name in records
REFERENCE_VERSION = 1  # bump when the way the cached features are computed or stored changes
TRAIN_BATCH = 2048  # training images per batch of the nearest-neighbour distance


def reference_split(data: DataConfig) -> str:
    """"test", or "train" for an image folder or Parquet set without a test split (listed, not read)."""
    if data.name in ("image_folder", "parquet"):
        try:
            source_pieces(data.name, data.root, split="test")
        except DataSourceError:
            return "train"
    return "test"


def selection_split(data: DataConfig) -> str:
    """The cheap evaluation's reference split: "validation", or with data.validation_size 0 the full evaluation's."""
    return VALIDATION if data.validation_size else reference_split(data)


def reference_images(cfg: Config) -> tuple[np.ndarray, str]:
    """The clean test split, or for sources without one the clean training split (named as such)."""
    data = cfg.data
    split = reference_split(data)
    return load_source(data.name, data.root, split=split, image_size=data.image_size).images, split


@dataclass
class ReferenceFeatures:
    feats: np.ndarray  # float64 (N, F): a feature network's features of the reference split
    split: str  # "validation", "test", or "train" for sources without a test split
    path: str  # the cache file's location (a local path or a URI)
    computed_now: bool  # False when read back from the cache


def reference_features(data: DataConfig, classifier: ClassifierRecord, cache_dir: storage.LocationLike,
                       split: str | None = None) -> ReferenceFeatures:
    """CLASSIFIER's features of SPLIT (default: the full evaluation's reference split), from the cache at CACHE_DIR
    (its root, or data.cache_dir); computed and cached first when absent or unreadable."""
    return cached_features(data, "classifier", classifier.fingerprint, classifier.model.feature_dim,
                           lambda images: classifier_outputs(classifier.model, images)[0], cache_dir, split)


def cached_features(data: DataConfig, network: str, fingerprint: str, feature_dim: int,
                    compute: Callable[[np.ndarray], np.ndarray], cache_dir: storage.LocationLike,
                    split: str | None = None) -> ReferenceFeatures:
    """NETWORK's (classifier, inception) features of SPLIT (default: the full evaluation's reference split; or
    "validation"), COMPUTE(images) -> float64 (N, FEATURE_DIM), from the cache at CACHE_DIR, keyed by the network's
    FINGERPRINT; computed and cached first when absent or unreadable."""
    split = split or reference_split(data)
    key = {
        "version": REFERENCE_VERSION, "source": data.name, "root": resolved_root(data.name, data.root),
        "image_size": data.image_size, "split": split, network: fingerprint,
    }
    if split == VALIDATION:  # its own entry, so the keys of the test split's features (hours of Inception) stay
        key[VALIDATION] = list(data.holdout)
    key_json = json.dumps(key, sort_keys=True)
    path = cache.reference_file(data.name, network, hashlib.sha256(key_json.encode()).hexdigest()[:16], cache_dir)
    feats = _read(path, key_json, feature_dim)
    if feats is not None:
        return ReferenceFeatures(feats, split, path, computed_now=False)
    if split == VALIDATION:
        images = load_validation(data.name, data.root, data.image_size, data.holdout, cache_dir).images
    else:
        images = load_source(data.name, data.root, split=split, image_size=data.image_size).images
    print(f"[gansweep] reference features: {data.name} {split} split ({len(images)} images), {network} "
          f"[{fingerprint}] -> {storage.display(path)}", file=sys.stderr, flush=True)
    feats = compute(images)
    buffer = io.BytesIO()
    np.savez(buffer, feats=feats, key=np.array(key_json))
    storage.write_bytes(path, buffer.getvalue())  # whole: a concurrent writer's file (the same features) is replaced
    return ReferenceFeatures(feats, split, path, computed_now=True)


def _read(path: str, key_json: str, feature_dim: int) -> np.ndarray | None:
    """The cached features in PATH, or None when absent, unreadable or made for another key."""
    try:
        with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as saved:
            if str(saved["key"]) != key_json:
                return None
            feats = saved["feats"]
    except Exception:  # absent, cut off, not an .npz: recomputed
        return None
    ok = feats.dtype == np.float64 and feats.ndim == 2 and feats.shape[1] == feature_dim
    return feats if ok and np.isfinite(feats).all() else None


def training_batches(data: DataConfig, cache_dir: storage.LocationLike,
                     batch: int = TRAIN_BATCH) -> Iterator[np.ndarray]:
    """The clean training images (the first data.limit of the training split less the validation split: those a run
    trains on, at data.image_size) as uint8 (n, C, H, W) batches of BATCH to 2 x BATCH images, read piece by piece (IDX
    sets through their Parquet conversion in the cache): never held whole. In piece order, which is not index order
    for an image folder."""
    info = describe_source(data.name, data.root, data.image_size, data.limit, data.holdout)
    channels = info.clean_shape[0]
    # The listing describe_source made (image folders, Parquet), not a second one; IDX sets through their Parquet.
    pieces = training_pieces(data.name, data.root, info, rows_per_piece=batch, cache_dir=cache_dir).pieces
    held, count = [], 0
    for piece in pieces:
        held.append(read_piece(piece, data.image_size, channels).images)
        count += len(held[-1])
        if count >= batch:
            yield np.concatenate(held)
            held, count = [], 0
    if held:
        yield np.concatenate(held)

