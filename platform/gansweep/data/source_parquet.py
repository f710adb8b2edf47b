"""Parquet sources: a .parquet file (a training split only) or a folder of them, its subfolder ROOT/test the test
split when there is one; on a local disk or any filesystem pyarrow serves (s3://, gs://). An 'image' column of encoded
images (PNG, JPEG; HuggingFace's {"bytes", "path"} struct) or uint8 pixel lists, an optional integer 'label' column.
Read in pieces of a row group's rows (parquet_files.py)."""

from __future__ import annotations

import math

import numpy as np

from gansweep import storage
from gansweep.data.decode import channels_of, open_image, pixels_to_chw, stack_images
from gansweep.data.parquet_files import open_parquet, parquet_pieces
from gansweep.data.piece_source import PieceSource
from gansweep.data.source_base import DataSourceError, ImageArrays, Piece, SplitPieces


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
        images = [open_image(value, f"{where} row {first_row + i}") for i, value in enumerate(column.to_pylist())]
        return stack_images(images, image_size, where, channels or channels_of(images[0]))
    if _is_list(column.type):
        pixels = _pixel_rows(column, where)
        return pixels_to_chw(pixels, image_size, where, channels or (1 if pixels.ndim == 3 else 3))
    raise DataSourceError(
        f"{where}: the 'image' column holds {column.type}; expected encoded image bytes (PNG/JPEG), "
        "a struct with 'bytes' as HuggingFace writes it, or lists of uint8 pixels"
    )


def _parquet_labels_of(table, where: str) -> np.ndarray:
    import pyarrow as pa

    column = table.column("label")
    if not pa.types.is_integer(column.type):
        raise DataSourceError(f"{where}: the 'label' column holds {column.type}, expected integers")
    return column.fill_null(-1).to_numpy()


class ParquetSource(PieceSource):
    name = "parquet"
    reads_uri = True

    def pieces(self, root: str, split: str, limit: int | None, rows_per_piece: int,
               cache_dir: str | None) -> SplitPieces:
        return parquet_pieces(root, split, limit, rows_per_piece)

    def read(self, piece: Piece, image_size: int | None, channels: int | None) -> ImageArrays:
        parquet = open_parquet(piece.path)
        where = f"parquet: {storage.display(piece.path)}"
        has_labels = "label" in parquet.schema_arrow.names
        table = parquet.read_row_group(piece.row_group, columns=["image", "label"] if has_labels else ["image"])
        table = table.slice(piece.first_row, len(piece.indices))
        # Errors name the file's row, which a user can look up (piece.first_row counts from its row group's start).
        file_row = sum(parquet.metadata.row_group(g).num_rows for g in range(piece.row_group)) + piece.first_row
        images = _decode_column(table.column("image").combine_chunks(), where, file_row, image_size, channels)
        labels = (_parquet_labels_of(table, where) if has_labels else np.full(len(piece.indices), -1)).astype(np.int64)
        return ImageArrays(images, labels, 0)



PARQUET = ParquetSource()
