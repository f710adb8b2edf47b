"""Image sources, the one entry to them: data.name chooses a kind in REGISTRY (IDX Fashion-MNIST and MNIST:
source_idx.py; image folders: source_folder.py; Parquet, local or on s3:// / gs://: source_parquet.py), and the
functions here check a request and hand it to that kind. Images come as uint8 (N, C, H, W) arrays. A split is read in
pieces (`source_pieces`, `read_piece`: a row group's rows, or some image files), which the training stream reads task
by task (stream.py); `load_source` reads a small split whole.

Splits: IDX sources have "train" and "test" files. An image_folder or parquet directory ROOT holds the training split;
its subdirectory ROOT/test, when there is one, holds the test split ("test" is therefore never a class name). A single
.parquet file has only a training split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gansweep import storage
from gansweep.data.source_base import SPLITS, DataSourceError, ImageArrays, Piece, Source, SourceInfo, SplitPieces
from gansweep.data.source_folder import IMAGE_FOLDER
from gansweep.data.source_idx import FASHION_MNIST, MNIST
from gansweep.data.source_parquet import PARQUET
from gansweep.data.validation import Holdout, held_out_indices, hold_out, listed_rows, only

# data.name's values. Adding a kind: its module, its line here, and its name in source_base.SOURCES.
REGISTRY: dict[str, Source] = {source.name: source for source in (FASHION_MNIST, MNIST, IMAGE_FOLDER, PARQUET)}


def resolved_root(name: str, root: str | None) -> str | None:
    """The absolute path (or the URI, without credentials) a source reads (its default location when root is None),
    for fingerprints and records."""
    root = root or (REGISTRY[name].default_root if name in REGISTRY else None)
    return storage.display(storage.normalize(root)) if root else None


def _resolve_root(name: str, root: str | None) -> tuple[Source, str]:
    """The kind NAME chooses and the path or URI it reads."""
    if name not in REGISTRY:
        raise DataSourceError(f"unknown data source '{name}'; choose one of {', '.join(REGISTRY)}")
    source = REGISTRY[name]
    root = root or source.default_root
    if root is None:
        raise DataSourceError(
            f"{name}: no root given and the source has no default location; set data.root (or --root)"
        )
    if storage.is_uri(root):
        if not source.reads_uri:
            readers = " or ".join(f"data.name={n}" for n, s in REGISTRY.items() if s.reads_uri)
            raise DataSourceError(f"{name}: {storage.display(root)}: only {readers} reads from a URI; {name} "
                                  "reads a local folder")
        return source, root  # checked as it is listed
    path = Path(storage.normalize(root))  # absolute, file:// stripped
    if not path.exists():
        hint = f" ({source.hint})" if source.hint else ""
        raise DataSourceError(f"{name}: {path} does not exist{hint}")
    return source, str(path)


def _checked_root(name: str, root: str | None, split: str, limit: int | None,
                  image_size: int | None) -> tuple[Source, str]:
    """The kind NAME chooses and the path or URI it reads, once the request is one it can serve."""
    source, path = _resolve_root(name, root)
    where = f"{name}: {storage.display(path)}"
    if limit is not None and limit < 1:
        raise DataSourceError(f"{where}: data.limit={limit} must be >= 1")
    if split not in SPLITS:
        raise DataSourceError(f"{where}: split '{split}' must be one of {', '.join(SPLITS)}")
    source.check_request(where, image_size)
    return source, path


def source_pieces(name: str, root: str | None, split: str = "train", limit: int | None = None,
                  rows_per_piece: int = 1024, cache_dir: storage.LocationLike | None = None) -> SplitPieces:
    """The first LIMIT images of a split as pieces of at most ROWS_PER_PIECE images (IDX sources through their
    Parquet conversion in the cache, CACHE_DIR as data.cache_dir sets it)."""
    source, path = _checked_root(name, root, split, limit, None)
    return source.pieces(path, split, limit, rows_per_piece, cache_dir)


def read_piece(piece: Piece, image_size: int | None, channels: int | None) -> ImageArrays:
    """A piece's images (those of piece.kept) as uint8 (N, C, H, W) in index order, and their labels; CHANNELS 1 or 3
    (None: the first image's). num_classes is not known to a piece: 0."""
    arrays = REGISTRY[piece.source].read(piece, image_size, channels)
    if not piece.held_out:
        return arrays
    # Read whole and dropped: a Parquet piece is one row-group slice, and a validation split is a few % of the rows.
    keep = ~np.isin(np.asarray(piece.indices), list(piece.held_out))
    return ImageArrays(arrays.images[keep], arrays.labels[keep], arrays.num_classes)


def load_source(
    name: str, root: str | None, split: str = "train", limit: int | None = None, image_size: int | None = None
) -> ImageArrays:
    """The first `limit` images of a source's split (in file order, so deterministic) in memory, as uint8
    (N, C, H, W) with int64 labels (-1 where unlabelled): for small sets (a test split, a few images). Training
    streams its set in pieces instead (data/stream.py). `image_size` resizes and center-crops image_folder and
    parquet images to a square; IDX images are 28x28 only. Colour: the first image's (a grayscale first image
    makes the set grayscale)."""
    source, path = _checked_root(name, root, split, limit, image_size)
    return source.load(path, split, limit, image_size)


def describe_source(name: str, root: str | None, image_size: int | None = None, limit: int | None = None,
                    holdout: Holdout = Holdout(0, 0)) -> SourceInfo:
    """The training images: the first LIMIT of the training split less HOLDOUT's validation split (data/validation.py;
    without one, what load_source(name, root, "train", limit, image_size) would return), described from the IDX
    headers, or the file listing or Parquet metadata and labels, and one decoded image: never the whole split. A check
    before any work: object storage that does not answer is refused at once (storage.probing)."""
    with storage.probing():
        source, path = _checked_root(name, root, "train", limit, image_size)
        if holdout.size == 0:
            return dataclasses.replace(source.describe(path, limit, image_size), listed_rows=limit)
        whole = source.describe(path, None, image_size)
        held = held_out_indices(whole.n_images, holdout, f"{name}: {storage.display(path)}")
        rows = listed_rows(held, whole.n_images, limit)
        info = whole if rows is None else source.describe(path, rows, image_size)
        n_listed = info.n_images
        n_images = n_listed - int((held < n_listed).sum())
        if info.pieces is None:  # IDX: described from its headers, listed later (training_pieces)
            return dataclasses.replace(info, n_images=n_images, held_out=held, listed_rows=rows)
        pieces = hold_out(info.pieces, held)
        return dataclasses.replace(info, n_images=n_images, unlabelled=bool((pieces.labels < 0).any()), pieces=pieces,
                                   held_out=held, listed_rows=rows)


def training_pieces(name: str, root: str | None, info: SourceInfo, rows_per_piece: int = 1024,
                    cache_dir: storage.LocationLike | None = None) -> SplitPieces:
    """The training images INFO (describe_source's) describes, as pieces: its own listing, or for IDX sets their
    Parquet conversion's (in the cache, CACHE_DIR as data.cache_dir sets it) in pieces of ROWS_PER_PIECE images."""
    if info.pieces is not None:
        return info.pieces
    listed = source_pieces(name, root, "train", info.listed_rows, rows_per_piece, cache_dir)
    return listed if info.held_out is None else hold_out(listed, info.held_out)


def load_validation(name: str, root: str | None, image_size: int | None, holdout: Holdout,
                    cache_dir: storage.LocationLike | None = None) -> ImageArrays:
    """The validation split HOLDOUT draws from the training split (data/validation.py) in memory, clean, in index
    order: only the pieces that hold its images are read."""
    info = describe_source(name, root, image_size, None, holdout)
    listed = source_pieces(name, root, "train", None, cache_dir=cache_dir)
    pieces = only(listed, info.held_out)
    read = [read_piece(piece, image_size, info.clean_shape[0]) for piece in pieces]
    order = np.argsort(np.concatenate([piece.kept for piece in pieces]), kind="stable")
    return ImageArrays(np.concatenate([arrays.images for arrays in read])[order],
                       np.concatenate([arrays.labels for arrays in read])[order], listed.num_classes)


def prepare_source(name: str, root: str | None) -> str:
    """Ready a source and describe it (path, counts). IDX sources are also decompressed into
    torchvision's layout under CACHE/torchvision so torchvision.datasets can read them offline, and converted
    to the Parquet that training streams."""
    source, path = _resolve_root(name, root)
    return source.prepare(path)
