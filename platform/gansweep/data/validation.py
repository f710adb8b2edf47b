"""The validation split: training images held out of training, for the cheap FID a search selects on.

Model selection (ASHA, PBT, the search's objective) must not look at the test split the reported figures come from, so
the cheap evaluation compares samples with clean images of the training split that no run trains on: a seeded random
subset of SIZE images of the whole split (data.validation_size, data.validation_seed), the same for every trial, worker
and data.limit. An image keeps its index in the split (so its theta, a function of data.seed and that index, is
unchanged); the training set is the split less these images, and data.limit takes the first LIMIT images of what
remains. Random rather than the last SIZE images: image folders list their files class by class.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from gansweep.data.source_base import DataSourceError, Piece, SplitPieces

SPLIT_KEY = 0x7A11D  # mixed into the seed: the split's draws are unrelated to other uses of the same seed


class Holdout(NamedTuple):
    """What a config holds out: SIZE images (0: none) drawn with SEED."""

    size: int
    seed: int


def held_out_indices(n_split: int, holdout: Holdout, where: str) -> np.ndarray:
    """The sorted indices (int64) of HOLDOUT's images among the N_SPLIT images of a training split; refuses a split
    that would leave nothing to train on."""
    if holdout.size >= n_split:
        raise DataSourceError(f"{where}: data.validation_size={holdout.size} holds out the whole training split "
                              f"({n_split} images); set it below {n_split} (0: none, selecting on the test split)")
    rng = np.random.default_rng([SPLIT_KEY, holdout.seed])
    return np.sort(rng.choice(n_split, holdout.size, replace=False)).astype(np.int64)


def listed_rows(held: np.ndarray, n_split: int, limit: int | None) -> int | None:
    """How many rows of the split to list so that LIMIT images remain once HELD are taken out (None: all of them)."""
    if limit is None:
        return None
    kept = np.setdiff1d(np.arange(n_split), held, assume_unique=True)
    return int(kept[limit - 1]) + 1 if limit <= len(kept) else None


def hold_out(split: SplitPieces, held: np.ndarray) -> SplitPieces:
    """SPLIT (its pieces in index order, every image's label) with the images at HELD marked held out of each piece
    (read_piece skips them) and dropped from the labels."""
    pieces = []
    for piece in split.pieces:
        index = np.asarray(piece.indices)
        inside = held[(held >= index.min()) & (held <= index.max())]
        pieces.append(replace(piece, held_out=frozenset(int(i) for i in inside if i in piece.indices)))
    every = np.arange(len(split.labels))
    labels = split.labels[~np.isin(every, held)]
    return SplitPieces([p for p in pieces if p.n_images], labels, split.num_classes)


def only(split: SplitPieces, wanted: np.ndarray) -> list[Piece]:
    """The pieces of SPLIT that hold images at WANTED, each marked to read those alone."""
    pieces = []
    for piece in split.pieces:
        index = np.asarray(piece.indices)
        mine = np.isin(index, wanted)
        if mine.any():
            pieces.append(replace(piece, held_out=frozenset(int(i) for i in index[~mine])))
    return pieces
