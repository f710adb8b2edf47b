"""Parquet files as sources keep them: a .parquet file or a folder of them (ROOT/test: the test split), on a local
disk or any filesystem pyarrow serves (s3://, gs://), listed in pieces of a row group's rows. What Parquet sources
and IDX sets (converted to Parquet in the cache) share."""

from __future__ import annotations

import numpy as np

from gansweep import storage
from gansweep.data.source_base import DataSourceError, Piece, SplitPieces


def parquet_files(root: str, split: str) -> list[str]:
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


def open_parquet(location: str):
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


def parquet_labels(parquet, where: str) -> np.ndarray:
    """A Parquet file's 'label' column, -1 where missing (every row, without the column)."""
    import pyarrow as pa

    if "label" not in parquet.schema_arrow.names:
        return np.full(parquet.metadata.num_rows, -1)
    label_type = parquet.schema_arrow.field("label").type
    if not pa.types.is_integer(label_type):
        raise DataSourceError(f"{where}: the 'label' column holds {label_type}, expected integers")
    return parquet.read(columns=["label"]).column("label").fill_null(-1).to_numpy()


def parquet_pieces(root: str, split: str, limit: int | None, rows_per_piece: int) -> SplitPieces:
    """Every row group's rows in pieces of at most ROWS_PER_PIECE rows, the first LIMIT rows of the split."""
    pieces, labels, num_classes, n = [], [], 0, 0
    for path in parquet_files(root, split):
        parquet = open_parquet(path)
        # The whole label column (cheap: one int column) so num_classes does not depend on limit.
        file_labels = parquet_labels(parquet, f"parquet: {storage.display(path)}")
        num_classes = max(num_classes, int(file_labels.max(initial=-1)) + 1)
        file_start = n
        for group in range(parquet.num_row_groups):
            group_rows = parquet.metadata.row_group(group).num_rows
            for first in range(0, group_rows, rows_per_piece):
                take = min(rows_per_piece, group_rows - first, (limit - n) if limit is not None else group_rows)
                if take <= 0:
                    break
                pieces.append(Piece("parquet", root, range(n, n + take), path, group, first))
                n += take
        labels.append(file_labels[: n - file_start])
    if n == 0:
        raise DataSourceError(f"parquet: {storage.display(root)}: no rows in the {split} split")
    return SplitPieces(pieces, np.concatenate(labels).astype(np.int64), num_classes)

