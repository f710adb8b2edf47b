"""What every image source shares: the uint8 arrays a source gives, the pieces of a split (what one reader task
reads), a source's description for the checks before a run, the error that names what cannot be read, and what every
kind of source (sources.REGISTRY names them) answers. Imports nothing of gansweep: every source module sits on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "test")
# data.name's values: sources.REGISTRY's names (a test asserts it). config checks data.name against this list, not the
# registry: the worker's train loop validates its config (gan/build), and importing every reader from there would
# make the import chain from the CLI longer than the architecture allows.
SOURCES = ("fashion_mnist", "mnist", "image_folder", "parquet")


class DataSourceError(ValueError):
    """A data source that cannot be read; the message names the source, the path and the problem."""


@dataclass
class ImageArrays:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,); -1 where unlabelled
    num_classes: int  # 0 when unlabelled


@dataclass(frozen=True)
class Piece:
    """A part of a split that one task reads on its own: rows of one Parquet row group, or some image files.
    INDICES are the images' positions in the split (image i of the set is the same image in every run); those in
    HELD_OUT are not read (the validation split's, data/validation.py): read_piece gives the rest."""

    source: str  # the kind that reads it (its name in sources.REGISTRY)
    root: str  # the source's root as resolved (a local path or a URI)
    indices: range
    path: str = ""  # parquet: the file's location (a local path or a URI)
    row_group: int = 0  # parquet
    first_row: int = 0  # parquet: the piece's first row in its row group
    files: tuple[str, ...] = ()  # image_folder: the image files
    labels: tuple[int, ...] = ()  # image_folder: their labels
    held_out: frozenset[int] = frozenset()  # of INDICES: images skipped when read

    @property
    def kept(self) -> np.ndarray:
        """The indices of the images read (INDICES less HELD_OUT), in order, int64."""
        index = np.asarray(self.indices, dtype=np.int64)
        return index[~np.isin(index, list(self.held_out))] if self.held_out else index

    @property
    def n_images(self) -> int:
        return len(self.indices) - len(self.held_out)


@dataclass
class SplitPieces:
    pieces: list[Piece]  # in index order
    labels: np.ndarray  # int64, every image's label in index order (-1: none)
    num_classes: int


@dataclass
class SourceInfo:
    """A source's training images (its training split less a validation split) as the checks before a run need them
    (config.check_shapes), without loading them."""

    clean_shape: tuple[int, int, int]  # (C, H, W) of the images, as load_source returns them
    num_classes: int
    n_images: int  # training images: at most `limit`, none held out
    unlabelled: bool  # whether one of those images has no label
    pieces: SplitPieces | None = None  # the split's pieces as listed to describe it (None for IDX: headers only)
    held_out: np.ndarray | None = None  # the validation split's indices, out of the training images (None: none)
    listed_rows: int | None = None  # rows of the split to list for them: the limit, moved past held-out images


class Source:
    """A kind of image source (data.name): where it is, what it serves, how its splits are listed in pieces and
    read, loaded whole, described and prepared. The kinds that do everything through their pieces (image folders,
    Parquet) are piece_source.PieceSource's."""

    name: str  # data.name
    default_root: str | None = None  # read when data.root is not given
    reads_uri = False  # whether data.root may be object storage (s3://, gs://); else a local path only
    hint = ""  # appended to a missing root's message: where the data comes from

    def check_request(self, where: str, image_size: int | None) -> None:
        """Refuse a request this kind cannot serve (the limit and the split are checked for every kind)."""

    def pieces(self, root: str, split: str, limit: int | None, rows_per_piece: int,
               cache_dir: str | None) -> SplitPieces:
        """The first LIMIT images of a split as pieces of at most ROWS_PER_PIECE images; CACHE_DIR: data.cache_dir,
        for a kind that converts its files in the cache."""
        raise NotImplementedError

    def read(self, piece: Piece, image_size: int | None, channels: int | None) -> ImageArrays:
        """A piece's images as uint8 (N, C, H, W) in index order, and their labels; CHANNELS 1 or 3 (None: the first
        image's). num_classes is not known to a piece: 0."""
        raise NotImplementedError

    def load(self, root: str, split: str, limit: int | None, image_size: int | None) -> ImageArrays:
        """The first LIMIT images of a split in index order (sources.load_source)."""
        raise NotImplementedError

    def describe(self, root: str, limit: int | None, image_size: int | None) -> SourceInfo:
        """The training split as the checks before a run need it, without reading it (sources.describe_source)."""
        raise NotImplementedError

    def prepare(self, root: str) -> str:
        """Ready the source and describe it (sources.prepare_source)."""
        raise NotImplementedError
