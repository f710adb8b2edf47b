"""Image sources read into memory as uint8 arrays: IDX (Fashion-MNIST, MNIST), image folders, Parquet.

Nothing here downloads: Fashion-MNIST comes from Debian's package dataset-fashion-mnist.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOURCES = ("fashion_mnist", "mnist", "image_folder", "parquet")
DEFAULT_ROOTS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TORCHVISION_DIRS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049


class DataSourceError(ValueError):
    """A data source that cannot be read; the message names the source, the path and the problem."""


@dataclass
class ImageArrays:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,); -1 where unlabelled
    num_classes: int  # 0 when unlabelled


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise DataSourceError(f"data.limit={limit} must be >= 1")


# --- IDX (Fashion-MNIST, MNIST) ------------------------------------------------------------------


def _find_idx(root: Path, stem: str, name: str) -> Path:
    """The IDX file `stem` (gzipped or not) in root or in torchvision's ROOT/<Name>/raw/ layout."""
    for folder in (root, root / TORCHVISION_DIRS.get(name, "") / "raw"):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise DataSourceError(f"{name}: no {stem}[.gz] in {root} (nor in {root}/{TORCHVISION_DIRS.get(name)}/raw/)")


def read_idx(path: Path, expected_magic: int, limit: int | None = None) -> np.ndarray:
    """An IDX array (big-endian header: magic, then one uint32 per dimension), first `limit` items only."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            header = f.read(8)
            if len(header) < 8:
                raise DataSourceError(f"{path}: truncated IDX header")
            magic, count = np.frombuffer(header, dtype=">u4")
            if magic != expected_magic:
                raise DataSourceError(f"{path}: IDX magic number {magic}, expected {expected_magic}")
            ndim = int(magic) & 0xFF
            dim_bytes = f.read(4 * (ndim - 1))
            if len(dim_bytes) < 4 * (ndim - 1):
                raise DataSourceError(f"{path}: truncated IDX header")
            dims = [int(count)] + [int(d) for d in np.frombuffer(dim_bytes, dtype=">u4")]
            n = min(dims[0], limit) if limit else dims[0]
            item = int(np.prod(dims[1:], dtype=np.int64)) if ndim > 1 else 1
            data = f.read(n * item)
    except (EOFError, OSError) as error:  # a cut-off or corrupt .gz (gzip.BadGzipFile is an OSError)
        raise DataSourceError(f"{path}: unreadable IDX file ({error})") from error
    if len(data) < n * item:
        raise DataSourceError(f"{path}: truncated IDX data ({len(data)} of {n * item} bytes)")
    return np.frombuffer(data, dtype=np.uint8).reshape([n] + dims[1:])


def _load_idx(name: str, root: Path, split: str, limit: int | None) -> ImageArrays:
    image_stem, label_stem = IDX_FILES[split]
    images = read_idx(_find_idx(root, image_stem, name), IDX_IMAGES_MAGIC, limit)
    labels = read_idx(_find_idx(root, label_stem, name), IDX_LABELS_MAGIC, limit).astype(np.int64)
    if len(images) != len(labels):
        raise DataSourceError(f"{name}: {len(images)} images but {len(labels)} labels in {root}")
    return ImageArrays(images[:, None].copy(), labels, 10)


# --- image folders -------------------------------------------------------------------------------


def _to_array(image, image_size: int | None, grayscale: bool) -> np.ndarray:
    from PIL import ImageOps

    image = image.convert("L" if grayscale else "RGB")
    if image_size is not None:
        image = ImageOps.fit(image, (image_size, image_size))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if grayscale else array.transpose(2, 0, 1)


def _stack(arrays: list[np.ndarray], where: str) -> np.ndarray:
    if len({a.shape for a in arrays}) > 1:
        raise DataSourceError(f"{where}: images of different sizes; set data.image_size to resize them")
    return np.stack(arrays)


def _load_image_folder(root: Path, split: str, limit: int | None, image_size: int | None) -> ImageArrays:
    from PIL import Image

    if split == "test":
        root = root / "test"
    if not root.is_dir():
        raise DataSourceError(f"image_folder: {root} is not a directory")
    # The training split is everything but a `test` subfolder, which holds the test split.
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and (split == "test" or p.relative_to(root).parts[0] != "test")
    )
    if not files:
        raise DataSourceError(f"image_folder: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    files = files[:limit] if limit else files
    opened = []
    for p in files:
        try:
            image = Image.open(p)
            image.load()  # reads the pixels and closes the file: not one open file per image
        except OSError as error:  # PIL.UnidentifiedImageError, a cut-off file
            raise DataSourceError(f"image_folder: cannot read {p} ({error})") from error
        opened.append(image)
    grayscale = all(image.mode in ("L", "1", "I;16") for image in opened)
    images = _stack([_to_array(image, image_size, grayscale) for image in opened], f"image_folder {root}")
    if classes:
        index = {name: i for i, name in enumerate(classes)}
        labels = np.array([index.get(p.relative_to(root).parts[0], -1) for p in files], dtype=np.int64)
    else:
        labels = np.full(len(files), -1, dtype=np.int64)
    return ImageArrays(images, labels, len(classes))


# --- Parquet -------------------------------------------------------------------------------------


def _load_parquet(root: Path, limit: int | None, image_size: int | None) -> ImageArrays:
    import pyarrow.parquet as pq
    from PIL import Image

    if not root.exists():
        raise DataSourceError(f"parquet: {root} does not exist")
    files = sorted(root.glob("*.parquet")) if root.is_dir() else [root]
    if not files:
        raise DataSourceError(f"parquet: no .parquet files in {root}")
    table_rows, labels = [], []
    for path in files:
        table = pq.read_table(path)
        if "image" not in table.column_names:
            raise DataSourceError(f"parquet: {path} has no 'image' column (columns: {', '.join(table.column_names)})")
        if limit:
            table = table.slice(0, limit - len(table_rows))
        table_rows += table.column("image").to_pylist()
        labels += table.column("label").to_pylist() if "label" in table.column_names else [-1] * table.num_rows
        if limit and len(table_rows) >= limit:
            break

    def decode(value) -> np.ndarray:
        if isinstance(value, dict):  # HuggingFace writes {"bytes": ..., "path": ...}
            value = value.get("bytes")
        if isinstance(value, (bytes, bytearray)):
            return np.asarray(Image.open(io.BytesIO(value)))
        pixels = np.asarray(value, dtype=np.uint8)
        if pixels.ndim == 1:  # flat pixels: square, one channel if that works, else three
            side = int(round(np.sqrt(pixels.size)))
            if side * side == pixels.size:
                return pixels.reshape(side, side)
            side = int(round(np.sqrt(pixels.size / 3)))
            return pixels.reshape(3, side, side).transpose(1, 2, 0)
        return pixels

    decoded = [decode(v) for v in table_rows]
    grayscale = all(a.ndim == 2 for a in decoded)
    images = _stack(
        [_to_array(Image.fromarray(a), image_size, grayscale) for a in decoded], f"parquet {root}"
    )
    labels = np.asarray(labels, dtype=np.int64)
    return ImageArrays(images, labels, int(labels.max()) + 1 if (labels >= 0).any() else 0)


# --- entry points --------------------------------------------------------------------------------


def _root(name: str, root: str | None) -> Path:
    if name not in SOURCES:
        raise DataSourceError(f"unknown data source '{name}'; choose one of {', '.join(SOURCES)}")
    root = root or DEFAULT_ROOTS.get(name)
    if root is None:
        raise DataSourceError(f"{name}: set data.root (the source has no default location)")
    path = Path(root).expanduser()
    if not path.exists():
        hint = " (apt-get install -y dataset-fashion-mnist)" if name == "fashion_mnist" else ""
        raise DataSourceError(f"{name}: {path} does not exist{hint}")
    return path


def load_source(
    name: str, root: str | None, split: str = "train", limit: int | None = None, image_size: int | None = None
) -> ImageArrays:
    """The first `limit` images of a source's split, as uint8 (N, C, H, W) with their labels."""
    _check_limit(limit)
    if split not in IDX_FILES:
        raise DataSourceError(f"split '{split}' must be 'train' or 'test'")
    path = _root(name, root)
    if name in ("fashion_mnist", "mnist"):
        if image_size not in (None, 28):
            raise DataSourceError(f"{name} images are 28x28; data.image_size={image_size} is not supported for it")
        return _load_idx(name, path, split, limit)
    if name == "image_folder":
        return _load_image_folder(path, split, limit, image_size)
    if split == "test":
        raise DataSourceError("parquet: only a training split is read")
    return _load_parquet(path, limit, image_size)


def cache_dir() -> Path:
    return Path(os.environ.get("GANSWEEP_CACHE") or Path.home() / ".cache" / "gansweep").expanduser()


def prepare_source(name: str, root: str | None) -> str:
    """Ready a source and describe it. IDX sources are also decompressed into torchvision's layout
    (CACHE/torchvision/<Name>/raw/) so torchvision.datasets can read them offline."""
    path = _root(name, root)
    if name not in TORCHVISION_DIRS:
        arrays = load_source(name, root, limit=None)
        return f"{name}: {len(arrays.images)} images of shape {arrays.images.shape[1:]} in {path}"
    raw = cache_dir() / "torchvision" / TORCHVISION_DIRS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in IDX_FILES.values():
        for stem in stems:
            source = _find_idx(path, stem, name)
            target = raw / stem
            if not target.is_file():
                opener = gzip.open if source.suffix == ".gz" else open
                with opener(source, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    counts = {split: len(read_idx(raw / stems[1], IDX_LABELS_MAGIC)) for split, stems in IDX_FILES.items()}
    return (
        f"{name}: {counts['train']} train and {counts['test']} test images from {path}; "
        f"torchvision root: {raw.parent.parent}"
    )
