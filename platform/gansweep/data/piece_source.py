"""The kinds of source that do everything through their pieces (image folders, Parquet): a split loaded whole is its
pieces read and put back in index order; a source is described from its listing and one decoded image."""

from __future__ import annotations

import dataclasses

import numpy as np

from gansweep import storage
from gansweep.data.source_base import DataSourceError, ImageArrays, Source, SourceInfo


class PieceSource(Source):
    """A kind of source whose load, describe and prepare go through its pieces and read."""

    def load(self, root: str, split: str, limit: int | None, image_size: int | None) -> ImageArrays:
        """The first LIMIT images of a split in index order (sources.load_source)."""
        pieces = self.pieces(root, split, limit, 1024, None)
        first = self.read(pieces.pieces[0], image_size, None)
        rest = [self.read(piece, image_size, first.images.shape[1]) for piece in pieces.pieces[1:]]
        shapes = sorted({arrays.images.shape[1:] for arrays in [first, *rest]})
        if len(shapes) > 1:
            raise DataSourceError(f"{self.name}: {storage.display(root)}: images of different sizes "
                                  f"({', '.join(map(str, shapes[:3]))}); "
                                  "set data.image_size to resize them to one square size")
        images = np.concatenate([first.images, *(arrays.images for arrays in rest)])
        labels = np.concatenate([first.labels, *(arrays.labels for arrays in rest)])
        # Rows back in index order (an image folder's pieces are strided).
        order = np.argsort(np.concatenate([np.array(piece.indices) for piece in pieces.pieces]), kind="stable")
        return ImageArrays(images[order], labels[order], pieces.num_classes)

    def describe(self, root: str, limit: int | None, image_size: int | None) -> SourceInfo:
        """The training split, from its listing and one decoded image (sources.describe_source)."""
        split = self.pieces(root, "train", limit, 1024, None)
        first_piece = split.pieces[0]
        first_image = dataclasses.replace(first_piece, indices=range(0, 1), files=first_piece.files[:1],
                                          labels=first_piece.labels[:1])
        first = self.read(first_image, image_size, None)
        return SourceInfo(first.images.shape[1:], split.num_classes, len(split.labels),
                          unlabelled=bool((split.labels < 0).any()), pieces=split)

    def prepare(self, root: str) -> str:
        """Ready the source and describe it (sources.prepare_source)."""
        with storage.probing():  # lists files or reads Parquet metadata; decodes the first image only
            info = self.describe(root, None, None)
        splits = ["train", "test"]
        try:
            self.pieces(root, "test", None, 1024, None)
        except DataSourceError:
            splits = ["train"]
        counts = {split: len(self.pieces(root, split, None, 1024, None).labels) for split in splits}
        return (
            f"{self.name}: {' and '.join(f'{n} {split}' for split, n in counts.items())} images in "
            f"{storage.display(root)}; first image (C, H, W) {info.clean_shape}, {info.num_classes} classes"
        )
