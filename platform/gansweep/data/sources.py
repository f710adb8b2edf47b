"""Image sources read into memory as uint8 arrays: IDX (Fashion-MNIST, MNIST), image folders, Parquet.

Nothing here downloads: Fashion-MNIST comes from Debian's package dataset-fashion-mnist.

Splits: IDX sources have "train" and "test" files. An image_folder or parquet directory ROOT holds the
training split; its subdirectory ROOT/test, when there is one, holds the test split ("test" is therefore
never a class name). A single .parquet file has only a training split.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def cache_dir() -> Path:
    """gansweep's cache root: $GANSWEEP_CACHE, else ~/.cache/gansweep."""
    return Path(os.environ.get("GANSWEEP_CACHE") or Path.home() / ".cache" / "gansweep").expanduser()


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


# --- decoded images to one array -----------------------------------------------------------------


def _open_image(source: Path | bytes, where: str):
    from PIL import Image

    try:
        image = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
        image.load()  # decodes now and closes the file: not one open file per image
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError, a cut-off file
        raise DataSourceError(f"{where}: cannot decode the image ({error})") from error
    return image


def _stack_images(images: list, image_size: int | None, where: str) -> np.ndarray:
    """PIL images to uint8 (N, C, H, W): one channel if every image is grayscale, else RGB;
    resized and center-cropped to image_size x image_size when it is given."""
    from PIL import ImageOps

    grayscale = all(image.mode in GRAYSCALE_MODES for image in images)
    arrays = []
    for image in images:
        image = image.convert("L" if grayscale else "RGB")
        if image_size is not None:
            image = ImageOps.fit(image, (image_size, image_size))
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if grayscale else array.transpose(2, 0, 1))
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise DataSourceError(
            f"{where}: images of different sizes ({', '.join(map(str, shapes[:3]))}"
            f"{', ...' if len(shapes) > 3 else ''}); set data.image_size to resize them to one square size"
        )
    return np.stack(arrays)


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


def _load_image_folder(root: Path, split: str, limit: int | None, image_size: int | None) -> ImageArrays:
    paths, labels, num_classes = _image_files(root, split)
    paths, labels = paths[:limit], labels[:limit]  # slice before decoding: only `limit` images are opened
    images = [_open_image(p, f"image_folder: {p}") for p in paths]
    stacked = _stack_images(images, image_size, f"image_folder: {root}")
    return ImageArrays(stacked, np.array(labels, dtype=np.int64), num_classes)


# --- Parquet -------------------------------------------------------------------------------------


def _parquet_files(root: Path, split: str) -> list[Path]:
    if root.is_file():
        if split == "test":
            raise DataSourceError(
                f"parquet: {root} is one file, so it has no test split (use DIR/*.parquet and DIR/test/*.parquet)"
            )
        return [root]
    folder = root / "test" if split == "test" else root
    if not folder.is_dir():
        raise DataSourceError(f"parquet: {root} has no test split (no {folder} folder)")
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise DataSourceError(f"parquet: no .parquet files in {folder}")
    return files


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


def _decode_column(column, where: str, first_row: int) -> list:
    """One batch of the 'image' column, starting at row `first_row` of its file, to PIL images."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from PIL import Image

    if len(column) == 0:  # an empty file or row group: nothing to decode, nor any list length to read
        return []
    if pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
        column = pc.struct_field(column, "bytes")  # HuggingFace writes {"bytes": ..., "path": ...}
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        if column.null_count:
            raise DataSourceError(f"{where}: the 'image' column has missing values")
        return [_open_image(value, f"{where} row {first_row + i}") for i, value in enumerate(column.to_pylist())]
    if _is_list(column.type):
        return [Image.fromarray(np.ascontiguousarray(a)) for a in _pixel_rows(column, where)]
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


def _load_parquet(root: Path, split: str, limit: int | None, image_size: int | None) -> ImageArrays:
    import pyarrow as pa
    import pyarrow.parquet as pq

    images, labels, num_classes = [], [], 0
    for path in _parquet_files(root, split):
        where = f"parquet: {path}"
        try:
            parquet = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as error:
            raise DataSourceError(f"{where}: not a readable Parquet file ({error})") from error
        schema = parquet.schema_arrow
        if "image" not in schema.names:
            raise DataSourceError(f"{where}: no 'image' column (columns: {', '.join(schema.names)})")
        # The whole label column (cheap: one int column) so num_classes does not depend on limit.
        file_labels = _parquet_labels(parquet, where)
        num_classes = max(num_classes, int(file_labels.max(initial=-1)) + 1)
        if limit is not None and len(images) >= limit:
            continue
        start = len(images)
        # Batch by batch, so a small limit decodes only the rows it keeps.
        for batch in parquet.iter_batches(batch_size=1024, columns=["image"]):
            if limit is not None:
                batch = batch.slice(0, limit - len(images))
            images += _decode_column(batch.column("image"), where, len(images) - start)
            if limit is not None and len(images) >= limit:
                break
        labels.append(file_labels[: len(images) - start])
    if not images:
        raise DataSourceError(f"parquet: {root}: no rows in the {split} split")
    labels = np.concatenate(labels).astype(np.int64)
    return ImageArrays(_stack_images(images, image_size, f"parquet: {root}"), labels, num_classes)


# --- entry points --------------------------------------------------------------------------------


def resolved_root(name: str, root: str | None) -> str | None:
    """The absolute path a source reads (its default location when root is None), for fingerprints."""
    root = root or DEFAULT_ROOTS.get(name)
    return str(Path(root).expanduser().resolve()) if root else None


def _resolve_root(name: str, root: str | None) -> Path:
    if name not in SOURCES:
        raise DataSourceError(f"unknown data source '{name}'; choose one of {', '.join(SOURCES)}")
    root = root or DEFAULT_ROOTS.get(name)
    if root is None:
        raise DataSourceError(
            f"{name}: no root given and the source has no default location; set data.root (or --root)"
        )
    path = Path(root).expanduser()
    if not path.exists():
        hint = f" ({DEBIAN_HINT})" if name == "fashion_mnist" else ""
        raise DataSourceError(f"{name}: {path} does not exist{hint}")
    return path


def _checked_root(name: str, root: str | None, split: str, limit: int | None, image_size: int | None) -> Path:
    """The path a source reads, once the request is one it can serve."""
    path = _resolve_root(name, root)
    if limit is not None and limit < 1:
        raise DataSourceError(f"{name}: {path}: data.limit={limit} must be >= 1")
    if split not in SPLITS:
        raise DataSourceError(f"{name}: {path}: split '{split}' must be one of {', '.join(SPLITS)}")
    if name in TORCHVISION_DIRS and image_size not in (None, 28):
        raise DataSourceError(f"{name}: {path}: images are 28x28; data.image_size={image_size} is not supported")
    return path


def load_source(
    name: str, root: str | None, split: str = "train", limit: int | None = None, image_size: int | None = None
) -> ImageArrays:
    """The first `limit` images of a source's split (in file order, so deterministic), as uint8
    (N, C, H, W) with int64 labels (-1 where unlabelled). `image_size` resizes and center-crops
    image_folder and parquet images to a square; IDX images are 28x28 only."""
    path = _checked_root(name, root, split, limit, image_size)
    if name in TORCHVISION_DIRS:
        return _load_idx(name, path, split, limit)[0]
    if name == "image_folder":
        return _load_image_folder(path, split, limit, image_size)
    return _load_parquet(path, split, limit, image_size)


@dataclass
class SourceInfo:
    """A source's training split as the checks before a run need it (config.check_shapes), without loading it."""

    clean_shape: tuple[int, int, int]  # (C, H, W) of the images, as load_source returns them
    num_classes: int
    n_images: int  # in the training split, at most `limit`
    unlabelled: bool  # whether one of those images has no label


def describe_source(name: str, root: str | None, image_size: int | None = None, limit: int | None = None) -> SourceInfo:
    """The training split load_source(name, root, "train", limit, image_size) would return, described from the IDX
    headers, or the file listing or Parquet metadata and labels, and one decoded image: never the whole split.

    The channels are the first image's: a set that mixes grayscale and colour images loads as RGB, though its first
    image may be grayscale."""
    path = _checked_root(name, root, "train", limit, image_size)
    if name in TORCHVISION_DIRS:
        headers, count = _load_idx(name, path, "train", 0)
        n_images = count if limit is None else min(count, limit)
        return SourceInfo(headers.images.shape[1:], IDX_NUM_CLASSES, n_images, unlabelled=False)
    if name == "image_folder":  # the folder listed once (a large set's listing takes seconds), one image decoded
        paths, labels, num_classes = _image_files(path, "train")
        first = _stack_images([_open_image(paths[0], f"image_folder: {paths[0]}")], image_size, f"image_folder: {path}")
        labels = np.array(labels)
    else:
        import pyarrow.parquet as pq

        loaded = load_source(name, str(path), limit=1, image_size=image_size)
        first, num_classes = loaded.images, loaded.num_classes
        labels = np.concatenate([_parquet_labels(pq.ParquetFile(file), f"parquet: {file}")
                                 for file in _parquet_files(path, "train")])
    labels = labels[:limit]
    return SourceInfo(first.shape[1:], num_classes, len(labels), unlabelled=bool((labels < 0).any()))


def _prepare_torchvision(name: str, path: Path) -> str:
    """Decompress a source's IDX files into CACHE/torchvision/<Name>/raw/ and check torchvision opens them."""
    import torchvision

    tv_root = cache_dir() / "torchvision"
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
    return (
        f"{name}: {counts['train']} train and {counts['test']} test images from {path}\n"
        f"torchvision: torchvision.datasets.{TORCHVISION_DIRS[name]}(root='{tv_root}', download=False)"
    )


def prepare_source(name: str, root: str | None) -> str:
    """Ready a source and describe it (path, counts). IDX sources are also decompressed into
    torchvision's layout under CACHE/torchvision so torchvision.datasets can read them offline."""
    path = _resolve_root(name, root)
    if name in TORCHVISION_DIRS:
        return _prepare_torchvision(name, path)
    # Counting lists files or reads Parquet metadata; only the first image is decoded, as a check.
    first = load_source(name, str(path), limit=1)
    splits = ["train", "test"] if path.is_dir() and (path / "test").is_dir() else ["train"]
    if name == "image_folder":
        counts = {split: len(_image_files(path, split)[0]) for split in splits}
    else:
        import pyarrow.parquet as pq

        counts = {
            split: sum(pq.ParquetFile(p).metadata.num_rows for p in _parquet_files(path, split)) for split in splits
        }
    return (
        f"{name}: {' and '.join(f'{n} {split}' for split, n in counts.items())} images in {path}; "
        f"first image (C, H, W) {first.images.shape[1:]}, {first.num_classes} classes"
    )
