"""Image folders: a folder of images (PNG, JPEG, ...), one subfolder per class (images directly in it are
unlabelled), its subfolder ROOT/test the test split when there is one ("test" is therefore never a class name). Read
from a local disk, in pieces of strided files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gansweep.data.decode import channels_of, open_image, stack_images
from gansweep.data.piece_source import PieceSource
from gansweep.data.source_base import DataSourceError, ImageArrays, Piece, SplitPieces

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".webp")


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


def _image_folder_pieces(root: str, split: str, limit: int | None, rows_per_piece: int) -> SplitPieces:
    """Pieces of strided files (piece k: files k, k + K, k + 2K ...): a folder lists its files class by class, and
    a piece then holds images of every class."""
    paths, labels, num_classes = _image_files(Path(root), split)
    paths, labels = paths[:limit], labels[:limit]
    count = math.ceil(len(paths) / rows_per_piece)
    pieces = [Piece("image_folder", root, range(k, len(paths), count), files=tuple(str(p) for p in paths[k::count]),
                    labels=tuple(labels[k::count])) for k in range(count)]
    return SplitPieces(pieces, np.array(labels, dtype=np.int64), num_classes)


class ImageFolderSource(PieceSource):
    name = "image_folder"

    def pieces(self, root: str, split: str, limit: int | None, rows_per_piece: int,
               cache_dir: str | None) -> SplitPieces:
        return _image_folder_pieces(root, split, limit, rows_per_piece)

    def read(self, piece: Piece, image_size: int | None, channels: int | None) -> ImageArrays:
        images = [open_image(Path(f), f"image_folder: {f}") for f in piece.files]
        stacked = stack_images(images, image_size, f"image_folder: {piece.root}", channels or channels_of(images[0]))
        return ImageArrays(stacked, np.array(piece.labels, dtype=np.int64), 0)


IMAGE_FOLDER = ImageFolderSource()
