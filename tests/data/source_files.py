"""Source files written for the tests of data/: IDX files, solid-colour images, PNG bytes."""

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool) -> None:
    data = np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def fake_mnist(folder: Path, n: int = 12, gz: bool = False, prefix: str = "train") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(prefix))
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte", images, 2051, gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, 2049, gz)
    return images, labels


def solid_image(color, size=(20, 20), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def png_bytes(value, size=(8, 8), mode="L") -> bytes:
    buffer = io.BytesIO()
    solid_image(value, size, mode).save(buffer, format="PNG")
    return buffer.getvalue()

