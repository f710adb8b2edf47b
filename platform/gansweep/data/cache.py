"""gansweep's cache: its root and where each cached thing lies in it. Every module that reads or writes the cache
asks here, so the layout is written once.

The root is a local folder or a URI (s3://bucket/cache: one cache for a cluster): data.cache_dir when a config sets
it, else $GANSWEEP_CACHE, else ~/.cache/gansweep. Below it:

    prepared/<source>-<key>/<split>.parquet    an IDX split converted once to the Parquet that training streams
    torchvision/<Name>/raw/                    IDX files in torchvision's layout (`gansweep prepare`)
    restored/<source>-<fingerprint>/           mode unmeasure's restored training set (Parquet parts, a marker)
    classifiers/<source>-<fingerprint>/        a domain classifier (record.json, model.pt)
    reference/<source>-<network>-<key>.npz     a feature network's (classifier, inception) features of a
                                               reference split

Functions that take CACHE_DIR take data.cache_dir (None: not set in the config).
"""

from __future__ import annotations

import os
from pathlib import Path

from gansweep import storage

ENV = "GANSWEEP_CACHE"


def is_set(cache_dir: storage.LocationLike | None = None) -> bool:
    """Whether the user chose the cache (data.cache_dir or $GANSWEEP_CACHE), rather than the default folder."""
    return bool(cache_dir or os.environ.get(ENV))


def root(cache_dir: storage.LocationLike | None = None) -> str:
    """The cache's root location: CACHE_DIR, else $GANSWEEP_CACHE, else ~/.cache/gansweep."""
    if cache_dir:
        return storage.normalize(cache_dir)
    return storage.normalize(os.environ.get(ENV) or Path.home() / ".cache" / "gansweep")


def prepared_file(source: str, key: str, split: str, cache_dir: storage.LocationLike | None = None) -> str:
    """An IDX source's split converted to Parquet; KEY identifies the source's root."""
    return storage.join(root(cache_dir), "prepared", f"{source}-{key}", f"{split}.parquet")


def torchvision_folder(cache_dir: storage.LocationLike | None = None) -> str:
    """The root torchvision.datasets reads IDX sources from (a location: staged locally when it is a URI)."""
    return storage.join(root(cache_dir), "torchvision")


def restored_folder(source: str, fingerprint: str, cache_dir: storage.LocationLike | None = None) -> str:
    """Mode unmeasure's restored training set, FINGERPRINT the training set's."""
    return storage.join(root(cache_dir), "restored", f"{source}-{fingerprint}")


def classifier_folder(source: str, fingerprint: str, cache_dir: storage.LocationLike | None = None) -> str:
    """A domain classifier, FINGERPRINT the classifier's."""
    return storage.join(root(cache_dir), "classifiers", f"{source}-{fingerprint}")


def reference_file(source: str, network: str, key: str, cache_dir: storage.LocationLike | None = None) -> str:
    """NETWORK's (classifier, inception) features of a reference split, KEY the hash of what they are computed from
    (the network's fingerprint among it)."""
    return storage.join(root(cache_dir), "reference", f"{source}-{network}-{key}.npz")
