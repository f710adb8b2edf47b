"""IDX sources (Fashion-MNIST, MNIST): the train and test files, gzipped or not, directly in ROOT or in
torchvision's ROOT/<Name>/raw/. Each split is converted once into Parquet in the cache, which the training stream reads
in pieces like any Parquet source; a small split is read directly, and a split is described from the files' headers.

Nothing here downloads: Fashion-MNIST comes from Debian's package dataset-fashion-mnist.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gansweep import storage
from gansweep.data import cache
from gansweep.data.source_base import SPLITS, DataSourceError, ImageArrays, Source, SourceInfo, SplitPieces
from gansweep.data.parquet_files import parquet_pieces

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049  # 0x0803: uint8, 3 dims; 0x0801: uint8, 1 dim
IDX_NUM_CLASSES = 10
IDX_SIZE = 28  # IDX images are 28x28
DEBIAN_HINT = "apt-get install -y dataset-fashion-mnist"


@dataclass(frozen=True)
class IdxSource(Source):
    """An IDX set. Its pieces are those of its Parquet conversion, which the parquet kind reads (Piece.source)."""

    name: str
    torchvision_dir: str  # the torchvision.datasets class, and its folder: ROOT/<torchvision_dir>/raw/
    default_root: str | None = None
    hint: str = ""

    def check_request(self, where: str, image_size: int | None) -> None:
        if image_size not in (None, IDX_SIZE):
            raise DataSourceError(f"{where}: images are 28x28; data.image_size={image_size} is not supported")

    def pieces(self, root: str, split: str, limit: int | None, rows_per_piece: int,
               cache_dir: str | None) -> SplitPieces:
        """The split's pieces in its Parquet conversion (made in the cache on first use)."""
        split_pieces = parquet_pieces(prepared_idx(self, Path(root), split, cache_dir), "train", limit, rows_per_piece)
        split_pieces.num_classes = IDX_NUM_CLASSES
        return split_pieces

    def load(self, root: str, split: str, limit: int | None, image_size: int | None) -> ImageArrays:
        return _load_idx(self, Path(root), split, limit)[0]

    def describe(self, root: str, limit: int | None, image_size: int | None) -> SourceInfo:
        """From the files' headers alone."""
        headers, count = _load_idx(self, Path(root), "train", 0)
        n_images = count if limit is None else min(count, limit)
        return SourceInfo(headers.images.shape[1:], IDX_NUM_CLASSES, n_images, unlabelled=False)

    def prepare(self, root: str) -> str:
        """Decompressed into torchvision's layout under the cache's torchvision/ too, so torchvision.datasets reads
        them offline, and converted to the Parquet that training streams."""
        return _prepare_torchvision(self, Path(root))


FASHION_MNIST = IdxSource("fashion_mnist", "FashionMNIST", "/usr/share/datasets/fashion-mnist", DEBIAN_HINT)
MNIST = IdxSource("mnist", "MNIST")


def _find_idx(source: IdxSource, root: Path, stem: str) -> Path:
    """The IDX file `stem`, gzipped or not, directly in root or in torchvision's ROOT/<Name>/raw/."""
    folders = (root, root / source.torchvision_dir / "raw")
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    hint = f" ({source.hint})" if source.hint else ""
    raise DataSourceError(f"{source.name}: no {stem} or {stem}.gz in {folders[0]} nor in {folders[1]}{hint}")


def _read_idx(name: str, path: Path, magic: int, limit: int | None) -> tuple[np.ndarray, int]:
    """The first `limit` items of an IDX file and the item count its header declares.

    Header: big-endian uint32 magic (its low byte is the number of dims), then one uint32 per dim.
    Only the bytes of the kept items are read, so a small limit does not decompress the whole file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataSourceError(f"{name}: {path}: truncated IDX header")
            found = int(np.frombuffer(head, dtype=">u4")[0])
            if found != magic:
                raise DataSourceError(f"{name}: {path}: IDX magic number {found}, expected {magic}")
            ndim = magic & 0xFF
            dim_bytes = f.read(4 * ndim)
            if len(dim_bytes) < 4 * ndim:
                raise DataSourceError(f"{name}: {path}: truncated IDX header")
            dims = [int(d) for d in np.frombuffer(dim_bytes, dtype=">u4")]
            count = dims[0]
            n = min(count, limit) if limit is not None else count
            item = math.prod(dims[1:])
            data = f.read(n * item)
    except (EOFError, OSError) as error:  # a cut-off or corrupt .gz (gzip.BadGzipFile is an OSError)
        raise DataSourceError(f"{name}: {path}: unreadable IDX file ({error})") from error
    if len(data) < n * item:
        raise DataSourceError(f"{name}: {path}: truncated IDX data ({len(data)} of {n * item} bytes)")
    # bytearray: a writable array, which torch.from_numpy wants.
    return np.frombuffer(bytearray(data), dtype=np.uint8).reshape([n, *dims[1:]]), count


def _load_idx(source: IdxSource, root: Path, split: str, limit: int | None) -> tuple[ImageArrays, int]:
    """The first `limit` images of a split (0: the headers only) and the number of images it holds."""
    image_stem, label_stem = IDX_FILES[split]
    images, image_count = _read_idx(source.name, _find_idx(source, root, image_stem), IDX_IMAGES_MAGIC, limit)
    labels, label_count = _read_idx(source.name, _find_idx(source, root, label_stem), IDX_LABELS_MAGIC, limit)
    if image_count != label_count:
        raise DataSourceError(f"{source.name}: {root}: {image_count} images but {label_count} labels in the {split} "
                              "split")
    return ImageArrays(images[:, None], labels.astype(np.int64), IDX_NUM_CLASSES), image_count


def prepared_idx(source: IdxSource, root: Path, split: str, cache_dir: storage.LocationLike | None) -> str:
    """An IDX split converted once into a Parquet file in the cache (pixel lists and labels, row groups of
    1,024 images), which the stream reads in pieces like any Parquet source; its location (the cache may be a URI)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    location = cache.prepared_file(source.name, key, split, cache_dir)
    if storage.is_file(location):
        return location
    arrays = _load_idx(source, root, split, None)[0]
    n, pixels = len(arrays.images), arrays.images.reshape(len(arrays.images), -1)
    images = pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1), pa.uint8()), pixels.shape[1])
    buffer = io.BytesIO()
    pq.write_table(pa.table({"image": images, "label": pa.array(arrays.labels[:n])}), buffer, row_group_size=1024)
    # Written whole, so an interrupted or concurrent prepare never leaves a half file (concurrent ones write the same).
    storage.write_bytes(location, buffer.getvalue())
    return location


def _prepare_torchvision(source: IdxSource, path: Path) -> str:
    """Decompress a source's IDX files into CACHE/torchvision/<Name>/raw/ and check torchvision opens them."""
    import torchvision

    # torchvision reads a local folder: a cache on object storage keeps its torchvision layout in a local staging one.
    folder = cache.torchvision_folder()
    tv_root = storage.staging_dir(folder) if storage.is_uri(folder) else Path(folder)
    raw = tv_root / source.torchvision_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in IDX_FILES.values():
        for stem, magic in zip(stems, (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC)):
            # Our own full parse first: a clear error for a bad file, and the bytes to write.
            array, _ = _read_idx(source.name, _find_idx(source, path, stem), magic, None)
            header = np.array([magic, *array.shape], dtype=">u4").tobytes()
            # Write then rename, so an interrupted or concurrent prepare never leaves a half file.
            tmp = raw / f"{stem}.{socket.gethostname()}.{os.getpid()}.tmp"  # unique on a shared cache too
            tmp.write_bytes(header + array.tobytes())
            tmp.replace(raw / stem)
    dataset = getattr(torchvision.datasets, source.torchvision_dir)
    try:
        counts = {split: len(dataset(str(tv_root), train=split == "train", download=False)) for split in SPLITS}
    except (RuntimeError, ValueError, OSError) as error:
        raise DataSourceError(f"{source.name}: torchvision cannot read {raw} ({error})") from error
    prepared = [storage.display(prepared_idx(source, path, split, None)) for split in SPLITS]
    return (
        f"{source.name}: {counts['train']} train and {counts['test']} test images from {path}\n"
        f"torchvision: torchvision.datasets.{source.torchvision_dir}(root='{tv_root}', download=False)\n"
        f"parquet (what training streams): {', '.join(prepared)}"
    )
