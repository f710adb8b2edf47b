"""Image sources: IDX (Fashion-MNIST, MNIST), image folders, Parquet (local, or on s3:// / gs:// through pyarrow's
filesystems), as uint8 (N, C, H, W) arrays. A split is read in pieces (`source_pieces`, `read_piece`: a row group's
rows, or some image files), which the training stream reads task by task (stream.py); `load_source` reads a
small split whole. IDX sets are converted once into Parquet in the cache (a local folder or a URI) for the stream.

Nothing here downloads: Fashion-MNIST comes from Debian's package dataset-fashion-mnist.

Splits: IDX sources have "train" and "test" files. An image_folder or parquet directory ROOT holds the
training split; its subdirectory ROOT/test, when there is one, holds the test split ("test" is therefore
never a class name). A single .parquet file has only a training split.
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

SOURCES = ("fashion_mnist", "mnist", "image_folder", "parquet")
DEFAULT_ROOTS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
SPLITS = ("train", "test")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049  # 0x0803: uint8, 3 dims; 0x0801: uint8, 1 dim
IDX_NUM_CLASSES = 10
TORCHVISION_DIRS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
DEBIAN_HINT = "apt-get install -y dataset-fashion-mnist"
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
GRAYSCALE_MODES = ("1", "L")


class DataSourceError(ValueError):
    """A data source that cannot be read; the message names the source, the path and the problem."""


@dataclass
class ImageArrays:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,); -1 where unlabelled
    num_classes: int  # 0 when unlabelled


# --- IDX (Fashion-MNIST, MNIST) ------------------------------------------------------------------


def _find_idx(name: str, root: Path, stem: str) -> Path:
    """The IDX file `stem`, gzipped or not, directly in root or in torchvision's ROOT/<Name>/raw/."""
    folders = (root, root / TORCHVISION_DIRS[name] / "raw")
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    hint = f" ({DEBIAN_HINT})" if name == "fashion_mnist" else ""
    raise DataSourceError(f"{name}: no {stem} or {stem}.gz in {folders[0]} nor in {folders[1]}{hint}")


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


def _load_idx(name: str, root: Path, split: str, limit: int | None) -> tuple[ImageArrays, int]:
    """The first `limit` images of a split (0: the headers only) and the number of images it holds."""
    image_stem, label_stem = IDX_FILES[split]
    images, image_count = _read_idx(name, _find_idx(name, root, image_stem), IDX_IMAGES_MAGIC, limit)
    labels, label_count = _read_idx(name, _find_idx(name, root, label_stem), IDX_LABELS_MAGIC, limit)
    if image_count != label_count:
        raise DataSourceError(f"{name}: {root}: {image_count} images but {label_count} labels in the {split} split")
    return ImageArrays(images[:, None], labels.astype(np.int64), IDX_NUM_CLASSES), image_count


# --- decoded images to (N, C, H, W) --------------------------------------------------------------


def _open_image(source: Path | bytes, where: str):
    from PIL import Image

    try:
        image = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
        image.load()  # decodes now and closes the file: not one open file per image
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError, a cut-off file
        raise DataSourceError(f"{where}: cannot decode the image ({error})") from error
    return image


def _channels_of(image) -> int:
    return 1 if image.mode in GRAYSCALE_MODES else 3


def _stack_images(images: list, image_size: int | None, where: str, channels: int) -> np.ndarray:
    """PIL images to uint8 (N, C, H, W) with CHANNELS (1: grayscale, 3: RGB); resized and center-cropped to
    image_size x image_size when it is given."""
    from PIL import ImageOps

    arrays = []
    for image in images:
        image = image.convert("L" if channels == 1 else "RGB")
        if image_size is not None:
            image = ImageOps.fit(image, (image_size, image_size))
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise DataSourceError(
            f"{where}: images of different sizes ({', '.join(map(str, shapes[:3]))}"
            f"{', ...' if len(shapes) > 3 else ''}); set data.image_size to resize them to one square size"
        )
    return np.stack(arrays) if arrays else np.zeros((0, channels, image_size or 0, image_size or 0), np.uint8)


def _pixels_to_chw(pixels: np.ndarray, image_size: int | None, where: str, channels: int) -> np.ndarray:
    """Decoded pixel rows (N, H, W) or (N, H, W, C) to uint8 (N, CHANNELS, H, W): directly when they already
    have the channels and size, else through PIL like encoded images (the same resizing and colour conversion)."""
    from PIL import Image

    have = 1 if pixels.ndim == 3 else pixels.shape[3]
    size_ok = image_size is None or pixels.shape[1] == pixels.shape[2] == image_size
    if have == channels and size_ok:
        return pixels[:, None] if channels == 1 else pixels.transpose(0, 3, 1, 2)
    return _stack_images([Image.fromarray(np.ascontiguousarray(a)) for a in pixels], image_size, where, channels)


# --- image folders -------------------------------------------------------------------------------


def _image_files(root: Path, split: str) -> tuple[list[Path], list[int], int]:
    """A split's image files in sorted order, their labels and the number of classes.

    Classes are the subfolders holding images, of ROOT (train) and ROOT/test together, so that one
    class has the same index in both splits; images directly in a split's folder are labelled -1.
    """
    if not root.is_dir():
        raise DataSourceError(f"image_folder: {root} is not a directory")
    if split == "test" and not (root / "test").is_dir():
        raise DataSourceError(f"image_folder: {root} has no test split (no {root / 'test'} folder)")
    files = {"train": [], "test": []}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        # Hidden files and folders (.ipynb_checkpoints, macOS ._x.png) are not data.
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not any(p.startswith(".") for p in parts):
            in_test = parts[0] == "test"
            files["test" if in_test else "train"].append(parts[1:] if in_test else parts)
    classes = sorted({parts[0] for split_files in files.values() for parts in split_files if len(parts) > 1})
    if not files[split]:
        folder = root / "test" if split == "test" else root
        raise DataSourceError(f"image_folder: no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    index = {name: i for i, name in enumerate(classes)}
    base = root / "test" if split == "test" else root
    paths = [base.joinpath(*parts) for parts in files[split]]
    labels = [index[parts[0]] if len(parts) > 1 else -1 for parts in files[split]]
    return paths, labels, len(classes)


# --- Parquet, on a local disk or any filesystem pyarrow serves (s3://, gs://) ---------------------


def _parquet_files(root: str, split: str) -> list[str]:
    """The split's .parquet files, sorted, as locations (local paths or URIs) under ROOT."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    where = f"parquet: {storage.display(root)}"
    try:
        fs, path = storage.filesystem(root)
    except storage.StorageError as error:  # a scheme no filesystem serves, an endpoint that does not answer
        raise DataSourceError(f"{where}: cannot list it ({error})") from None
    folder = storage.join(storage.normalize(root), "test") if split == "test" else storage.normalize(root)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            if split == "test":
                raise DataSourceError(f"{where} is one file, so it has no test split "
                                      "(use DIR/*.parquet and DIR/test/*.parquet)")
            return [storage.normalize(root)]
        if info.type != pafs.FileType.Directory:
            raise DataSourceError(f"{where} does not exist")
        folder_path = f"{path}/test" if split == "test" else path
        if split == "test" and fs.get_file_info(folder_path).type != pafs.FileType.Directory:
            raise DataSourceError(f"{where} has no test split (no {storage.display(folder)} folder)")
        names = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(folder_path)) if i.is_file
                       and i.base_name.endswith(".parquet"))
    except (OSError, pa.ArrowException) as error:  # an unreachable endpoint, a missing bucket, denied credentials
        raise DataSourceError(f"{where}: cannot list it ({error})") from error
    if not names:
        raise DataSourceError(f"parquet: no .parquet files in {storage.display(folder)}")
    return [storage.join(folder, name) for name in names]


def _open_parquet(location: str):
    """The Parquet file at LOCATION, through storage's filesystem for it (also in a Ray Data task: the cloud
    environment reaches the task's process)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(location)
    where = f"parquet: {storage.display(location)}"
    try:
        parquet = pq.ParquetFile(fs.open_input_file(path))
    except (OSError, pa.ArrowException) as error:
        raise DataSourceError(f"{where}: not a readable Parquet file ({error})") from error
    if "image" not in parquet.schema_arrow.names:
        raise DataSourceError(f"{where}: no 'image' column (columns: {', '.join(parquet.schema_arrow.names)})")
    return parquet


def _is_list(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type)


def _pixel_rows(column, where: str) -> np.ndarray:
    """Lists of uint8 pixels (flat, or nested as (H, W), (H, W, C) or (C, H, W)) to (N, H, W[, C])."""
    import pyarrow as pa
    import pyarrow.compute as pc

    shape, values = [], column
    while _is_list(values.type):
        lengths = pc.list_value_length(values)
        if values.null_count or pc.min(lengths).as_py() != pc.max(lengths).as_py():
            raise DataSourceError(f"{where}: the 'image' pixel lists are missing or of different lengths")
        shape.append(lengths[0].as_py())
        values = values.flatten()  # one nesting level less; respects the slice of a batch
    if not pa.types.is_integer(values.type):
        raise DataSourceError(f"{where}: the 'image' pixel lists hold {values.type}, expected uint8 integers")
    pixels = values.to_numpy(zero_copy_only=False)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DataSourceError(f"{where}: the 'image' pixel values are outside 0..255")
    pixels = pixels.astype(np.uint8).reshape(len(column), *shape)
    if len(shape) == 1:  # flat C*H*W with H == W: one channel if that is square, else three
        size = shape[0]
        side = math.isqrt(size)
        if side * side == size:
            return pixels.reshape(-1, side, side)
        side = math.isqrt(size // 3)
        if 3 * side * side == size:
            return pixels.reshape(-1, 3, side, side).transpose(0, 2, 3, 1)
        raise DataSourceError(
            f"{where}: cannot infer the image shape of flat pixel lists of length {size} (neither H*H nor 3*H*H)"
        )
    if len(shape) == 2:
        return pixels
    if len(shape) == 3:
        if shape[0] in (1, 3) and shape[2] not in (1, 3):  # channels first
            pixels = pixels.transpose(0, 2, 3, 1)
        return pixels[..., 0] if pixels.shape[3] == 1 else pixels
    raise DataSourceError(f"{where}: 'image' pixel lists nested {len(shape)} deep, expected at most 3")


def _decode_column(column, where: str, first_row: int, image_size: int | None, channels: int | None) -> np.ndarray:
    """Rows of the 'image' column (row `first_row` of its file first) to uint8 (N, C, H, W); CHANNELS None: the
    first image's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
        column = pc.struct_field(column, "bytes")  # HuggingFace writes {"bytes": ..., "path": ...}
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        if column.null_count:
            raise DataSourceError(f"{where}: the 'image' column has missing values")
        images = [_open_image(value, f"{where} row {first_row + i}") for i, value in enumerate(column.to_pylist())]
        return _stack_images(images, image_size, where, channels or _channels_of(images[0]))
    if _is_list(column.type):
        pixels = _pixel_rows(column, where)
        return _pixels_to_chw(pixels, image_size, where, channels or (1 if pixels.ndim == 3 else 3))
    raise DataSourceError(
        f"{where}: the 'image' column holds {column.type}; expected encoded image bytes (PNG/JPEG), "
        "a struct with 'bytes' as HuggingFace writes it, or lists of uint8 pixels"
    )


def _parquet_labels(parquet, where: str) -> np.ndarray:
    """A Parquet file's 'label' column, -1 where missing (every row, without the column)."""
    import pyarrow as pa

    if "label" not in parquet.schema_arrow.names:
        return np.full(parquet.metadata.num_rows, -1)
    label_type = parquet.schema_arrow.field("label").type
    if not pa.types.is_integer(label_type):
        raise DataSourceError(f"{where}: the 'label' column holds {label_type}, expected integers")
    return parquet.read(columns=["label"]).column("label").fill_null(-1).to_numpy()


# --- pieces: what one reader task reads ----------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A part of a split that one task reads on its own: rows of one Parquet row group, or some image files.
    INDICES are the images' positions in the split (image i of the set is the same image in every run)."""

    root: str  # the source's root as resolved (a local path or a URI)
    indices: range
    path: str = ""  # parquet: the file's location (a local path or a URI)
    row_group: int = 0  # parquet
    first_row: int = 0  # parquet: the piece's first row in its row group
    files: tuple[str, ...] = ()  # image_folder: the image files
    labels: tuple[int, ...] = ()  # image_folder: their labels


@dataclass
class SplitPieces:
    pieces: list[Piece]  # in index order
    labels: np.ndarray  # int64, every image's label in index order (-1: none)
    num_classes: int


def _parquet_pieces(root: str, split: str, limit: int | None, rows_per_piece: int) -> SplitPieces:
    """Every row group's rows in pieces of at most ROWS_PER_PIECE rows, the first LIMIT rows of the split."""
    pieces, labels, num_classes, n = [], [], 0, 0
    for path in _parquet_files(root, split):
        parquet = _open_parquet(path)
        # The whole label column (cheap: one int column) so num_classes does not depend on limit.
        file_labels = _parquet_labels(parquet, f"parquet: {storage.display(path)}")
        num_classes = max(num_classes, int(file_labels.max(initial=-1)) + 1)
        file_start = n
        for group in range(parquet.num_row_groups):
            group_rows = parquet.metadata.row_group(group).num_rows
            for first in range(0, group_rows, rows_per_piece):
                take = min(rows_per_piece, group_rows - first, (limit - n) if limit is not None else group_rows)
                if take <= 0:
                    break
                pieces.append(Piece(root, range(n, n + take), path, group, first))
                n += take
        labels.append(file_labels[: n - file_start])
    if n == 0:
        raise DataSourceError(f"parquet: {storage.display(root)}: no rows in the {split} split")
    return SplitPieces(pieces, np.concatenate(labels).astype(np.int64), num_classes)


def _image_folder_pieces(root: str, split: str, limit: int | None, rows_per_piece: int) -> SplitPieces:
    """Pieces of strided files (piece k: files k, k + K, k + 2K ...): a folder lists its files class by class, and
    a piece then holds images of every class."""
    paths, labels, num_classes = _image_files(Path(root), split)
    paths, labels = paths[:limit], labels[:limit]
    count = math.ceil(len(paths) / rows_per_piece)
    pieces = [Piece(root, range(k, len(paths), count), files=tuple(str(p) for p in paths[k::count]),
                    labels=tuple(labels[k::count])) for k in range(count)]
    return SplitPieces(pieces, np.array(labels, dtype=np.int64), num_classes)


def prepared_idx(name: str, root: Path, split: str, cache_dir: storage.LocationLike | None) -> str:
    """An IDX split converted once into a Parquet file in the cache (pixel lists and labels, row groups of
    1,024 images), which the stream reads in pieces like any Parquet source; its location (the cache may be a URI)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    location = cache.prepared_file(name, key, split, cache_dir)
    if storage.is_file(location):
        return location
    arrays = _load_idx(name, root, split, None)[0]
    n, pixels = len(arrays.images), arrays.images.reshape(len(arrays.images), -1)
    images = pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1), pa.uint8()), pixels.shape[1])
    buffer = io.BytesIO()
    pq.write_table(pa.table({"image": images, "label": pa.array(arrays.labels[:n])}), buffer, row_group_size=1024)
    # Written whole, so an interrupted or concurrent prepare never leaves a half file (concurrent ones write the same).
    storage.write_bytes(location, buffer.getvalue())
    return location


def source_pieces(name: str, root: str | None, split: str = "train", limit: int | None = None,
                  rows_per_piece: int = 1024, cache_dir: storage.LocationLike | None = None) -> SplitPieces:
    """The first LIMIT images of a split as pieces of at most ROWS_PER_PIECE images (IDX sources through their
    Parquet conversion in the cache, CACHE_DIR as data.cache_dir sets it)."""
    path = _checked_root(name, root, split, limit, None)
    if name in TORCHVISION_DIRS:
        prepared = prepared_idx(name, Path(path), split, cache_dir)
        split_pieces = _parquet_pieces(prepared, "train", limit, rows_per_piece)
        split_pieces.num_classes = IDX_NUM_CLASSES
        return split_pieces
    if name == "image_folder":
        return _image_folder_pieces(str(path), split, limit, rows_per_piece)
    return _parquet_pieces(str(path), split, limit, rows_per_piece)


def read_piece(piece: Piece, image_size: int | None, channels: int | None) -> ImageArrays:
    """A piece's images as uint8 (N, C, H, W) in index order, and their labels; CHANNELS 1 or 3 (None: the first
    image's). num_classes is not known to a piece: 0."""
    if piece.files:
        images = [_open_image(Path(f), f"image_folder: {f}") for f in piece.files]
        stacked = _stack_images(images, image_size, f"image_folder: {piece.root}", channels or _channels_of(images[0]))
        return ImageArrays(stacked, np.array(piece.labels, dtype=np.int64), 0)
    parquet = _open_parquet(piece.path)
    where = f"parquet: {storage.display(piece.path)}"
    has_labels = "label" in parquet.schema_arrow.names
    table = parquet.read_row_group(piece.row_group, columns=["image", "label"] if has_labels else ["image"])
    table = table.slice(piece.first_row, len(piece.indices))
    # Errors name the file's row, which a user can look up (piece.first_row counts from its row group's start).
    file_row = sum(parquet.metadata.row_group(g).num_rows for g in range(piece.row_group)) + piece.first_row
    images = _decode_column(table.column("image").combine_chunks(), where, file_row, image_size, channels)
    labels = (_parquet_labels_of(table, where) if has_labels else np.full(len(piece.indices), -1)).astype(np.int64)
    return ImageArrays(images, labels, 0)


def _parquet_labels_of(table, where: str) -> np.ndarray:
    import pyarrow as pa

    column = table.column("label")
    if not pa.types.is_integer(column.type):
        raise DataSourceError(f"{where}: the 'label' column holds {column.type}, expected integers")
    return column.fill_null(-1).to_numpy()


# --- entry points --------------------------------------------------------------------------------


def resolved_root(name: str, root: str | None) -> str | None:
    """The absolute path (or the URI, without credentials) a source reads (its default location when root is None),
    for fingerprints and records."""
    root = root or DEFAULT_ROOTS.get(name)
    return storage.display(storage.normalize(root)) if root else None


def _resolve_root(name: str, root: str | None) -> str:
    if name not in SOURCES:
        raise DataSourceError(f"unknown data source '{name}'; choose one of {', '.join(SOURCES)}")
    root = root or DEFAULT_ROOTS.get(name)
    if root is None:
        raise DataSourceError(
            f"{name}: no root given and the source has no default location; set data.root (or --root)"
        )
    if storage.is_uri(root):
        if name != "parquet":
            raise DataSourceError(f"{name}: {storage.display(root)}: only data.name=parquet reads from a URI; {name} "
                                  "reads a local folder")
        return root  # checked as it is listed: _parquet_files
    path = Path(storage.normalize(root))  # absolute, file:// stripped
    if not path.exists():
        hint = f" ({DEBIAN_HINT})" if name == "fashion_mnist" else ""
        raise DataSourceError(f"{name}: {path} does not exist{hint}")
    return str(path)


def _checked_root(name: str, root: str | None, split: str, limit: int | None, image_size: int | None) -> str:
    """The path or URI a source reads, once the request is one it can serve."""
    path = _resolve_root(name, root)
    where = f"{name}: {storage.display(path)}"
    if limit is not None and limit < 1:
        raise DataSourceError(f"{where}: data.limit={limit} must be >= 1")
    if split not in SPLITS:
        raise DataSourceError(f"{where}: split '{split}' must be one of {', '.join(SPLITS)}")
    if name in TORCHVISION_DIRS and image_size not in (None, 28):
        raise DataSourceError(f"{where}: images are 28x28; data.image_size={image_size} is not supported")
    return path


def load_source(
    name: str, root: str | None, split: str = "train", limit: int | None = None, image_size: int | None = None
) -> ImageArrays:
    """The first `limit` images of a source's split (in file order, so deterministic) in memory, as uint8
    (N, C, H, W) with int64 labels (-1 where unlabelled): for small sets (a test split, a few images). Training
    streams its set in pieces instead (data/stream.py). `image_size` resizes and center-crops image_folder and
    parquet images to a square; IDX images are 28x28 only. Colour: the first image's (a grayscale first image
    makes the set grayscale)."""
    path = _checked_root(name, root, split, limit, image_size)
    if name in TORCHVISION_DIRS:
        return _load_idx(name, Path(path), split, limit)[0]
    pieces = source_pieces(name, path, split, limit)
    first = read_piece(pieces.pieces[0], image_size, None)
    rest = [read_piece(piece, image_size, first.images.shape[1]) for piece in pieces.pieces[1:]]
    shapes = sorted({arrays.images.shape[1:] for arrays in [first, *rest]})
    if len(shapes) > 1:
        raise DataSourceError(f"{name}: {storage.display(path)}: images of different sizes "
                              f"({', '.join(map(str, shapes[:3]))}); "
                              "set data.image_size to resize them to one square size")
    images = np.concatenate([first.images, *(arrays.images for arrays in rest)])
    labels = np.concatenate([first.labels, *(arrays.labels for arrays in rest)])
    # Rows back in index order (an image folder's pieces are strided).
    order = np.argsort(np.concatenate([np.array(piece.indices) for piece in pieces.pieces]), kind="stable")
    return ImageArrays(images[order], labels[order], pieces.num_classes)


@dataclass
class SourceInfo:
    """A source's training split as the checks before a run need it (config.check_shapes), without loading it."""

    clean_shape: tuple[int, int, int]  # (C, H, W) of the images, as load_source returns them
    num_classes: int
    n_images: int  # in the training split, at most `limit`
    unlabelled: bool  # whether one of those images has no label
    pieces: SplitPieces | None = None  # the split's pieces as listed to describe it (None for IDX: headers only)


def describe_source(name: str, root: str | None, image_size: int | None = None, limit: int | None = None) -> SourceInfo:
    """The training split load_source(name, root, "train", limit, image_size) would return, described from the IDX
    headers, or the file listing or Parquet metadata and labels, and one decoded image: never the whole split. A check
    before any work: object storage that does not answer is refused at once (storage.probing)."""
    with storage.probing():
        path = _checked_root(name, root, "train", limit, image_size)
        if name in TORCHVISION_DIRS:
            headers, count = _load_idx(name, Path(path), "train", 0)
            n_images = count if limit is None else min(count, limit)
            return SourceInfo(headers.images.shape[1:], IDX_NUM_CLASSES, n_images, unlabelled=False)
        split = source_pieces(name, path, limit=limit)
        first = read_piece(_first_image(split.pieces[0]), image_size, None)
    return SourceInfo(first.images.shape[1:], split.num_classes, len(split.labels),
                      unlabelled=bool((split.labels < 0).any()), pieces=split)


def _first_image(piece: Piece) -> Piece:
    """The piece of the split's image 0 alone."""
    return Piece(piece.root, range(0, 1), piece.path, piece.row_group, piece.first_row, piece.files[:1],
                 piece.labels[:1])


def _prepare_torchvision(name: str, path: Path) -> str:
    """Decompress a source's IDX files into CACHE/torchvision/<Name>/raw/ and check torchvision opens them."""
    import torchvision

    # torchvision reads a local folder: a cache on object storage keeps its torchvision layout in a local staging one.
    folder = cache.torchvision_folder()
    tv_root = storage.staging_dir(folder) if storage.is_uri(folder) else Path(folder)
    raw = tv_root / TORCHVISION_DIRS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in IDX_FILES.values():
        for stem, magic in zip(stems, (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC)):
            # Our own full parse first: a clear error for a bad file, and the bytes to write.
            array, _ = _read_idx(name, _find_idx(name, path, stem), magic, None)
            header = np.array([magic, *array.shape], dtype=">u4").tobytes()
            # Write then rename, so an interrupted or concurrent prepare never leaves a half file.
            tmp = raw / f"{stem}.{socket.gethostname()}.{os.getpid()}.tmp"  # unique on a shared cache too
            tmp.write_bytes(header + array.tobytes())
            tmp.replace(raw / stem)
    dataset = getattr(torchvision.datasets, TORCHVISION_DIRS[name])
    try:
        counts = {split: len(dataset(str(tv_root), train=split == "train", download=False)) for split in SPLITS}
    except (RuntimeError, ValueError, OSError) as error:
        raise DataSourceError(f"{name}: torchvision cannot read {raw} ({error})") from error
    prepared = [storage.display(prepared_idx(name, path, split, None)) for split in SPLITS]
    return (
        f"{name}: {counts['train']} train and {counts['test']} test images from {path}\n"
        f"torchvision: torchvision.datasets.{TORCHVISION_DIRS[name]}(root='{tv_root}', download=False)\n"
        f"parquet (what training streams): {', '.join(prepared)}"
    )


def prepare_source(name: str, root: str | None) -> str:
    """Ready a source and describe it (path, counts). IDX sources are also decompressed into
    torchvision's layout under CACHE/torchvision so torchvision.datasets can read them offline, and converted
    to the Parquet that training streams."""
    path = _resolve_root(name, root)
    if name in TORCHVISION_DIRS:
        return _prepare_torchvision(name, Path(path))
    info = describe_source(name, path)  # lists files or reads Parquet metadata; decodes the first image only
    splits = ["train", "test"]
    try:
        source_pieces(name, path, "test")
    except DataSourceError:
        splits = ["train"]
    counts = {split: len(source_pieces(name, path, split).labels) for split in splits}
    return (
        f"{name}: {' and '.join(f'{n} {split}' for split, n in counts.items())} images in {storage.display(path)}; "
        f"first image (C, H, W) {info.clean_shape}, {info.num_classes} classes"
    )
