"""Decoded images to uint8 (N, C, H, W): from PIL images (files, encoded bytes) or from pixel arrays, resized and
center-cropped to a square when data.image_size asks, in the colour the set takes (its first image's)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gansweep.data.source_base import DataSourceError

GRAYSCALE_MODES = ("1", "L")


def open_image(source: Path | bytes, where: str):
    from PIL import Image

    try:
        image = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
        image.load()  # decodes now and closes the file: not one open file per image
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError, a cut-off file
        raise DataSourceError(f"{where}: cannot decode the image ({error})") from error
    return image


def channels_of(image) -> int:
    return 1 if image.mode in GRAYSCALE_MODES else 3


def stack_images(images: list, image_size: int | None, where: str, channels: int) -> np.ndarray:
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


def pixels_to_chw(pixels: np.ndarray, image_size: int | None, where: str, channels: int) -> np.ndarray:
    """Decoded pixel rows (N, H, W) or (N, H, W, C) to uint8 (N, CHANNELS, H, W): directly when they already
    have the channels and size, else through PIL like encoded images (the same resizing and colour conversion)."""
    from PIL import Image

    have = 1 if pixels.ndim == 3 else pixels.shape[3]
    size_ok = image_size is None or pixels.shape[1] == pixels.shape[2] == image_size
    if have == channels and size_ok:
        return pixels[:, None] if channels == 1 else pixels.transpose(0, 3, 1, 2)
    return stack_images([Image.fromarray(np.ascontiguousarray(a)) for a in pixels], image_size, where, channels)
