"""The training stream: every image once per epoch, in an order that is a function of (seed, rank, rows consumed),
read by Ray Data tasks from generated Parquet files and image folders."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import load_source, source_pieces
from gansweep.data.stream import (
    StreamSpec,
    epoch_windows,
    pieces_per_window,
    rank_batches,
    rank_items,
    read_window,
)
from gansweep.nets.measurements import BlockPixel
from PIL import Image

N = 300


def _numbered(n: int = N) -> np.ndarray:
    """n 8x8 grayscale images whose first two pixels spell their index."""
    images = np.random.default_rng(0).integers(0, 256, (n, 8, 8), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return images


def _index_of(images: np.ndarray) -> np.ndarray:
    """The index spelled in the first pixels of uint8 images (N, 1, 8, 8)."""
    return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 0, 1].astype(np.int64)


@pytest.fixture
def parquet_set(tmp_path):
    """Three Parquet files with row groups of 40 rows, labels i % 7."""
    images = _numbered()
    for part, (lo, hi) in enumerate([(0, 100), (100, 230), (230, N)]):
        pixels = pa.FixedSizeListArray.from_arrays(pa.array(images[lo:hi].reshape(-1)), 64)
        table = pa.table({"image": pixels, "label": pa.array(np.arange(lo, hi) % 7)})
        pq.write_table(table, tmp_path / f"part-{part}.parquet", row_group_size=40)
    return str(tmp_path)


def _spec(root: str, name: str = "parquet", rows_per_piece: int = 25, seed: int = 0, window: int = 3,
          measurement=None) -> StreamSpec:
    pieces = source_pieces(name, root, rows_per_piece=rows_per_piece).pieces
    return StreamSpec(pieces, channels=1, image_size=None, measurement=measurement, data_seed=0, shuffle_seed=seed,
                      pieces_per_window=window, task_cpus=0.25)


def _rows(spec: StreamSpec, items: list[dict]) -> dict[str, np.ndarray]:
    blocks = [block for item in items for block in read_window(spec, **item)]
    return {key: np.concatenate([block[key] for block in blocks]) for key in ("image", "label", "index")}


def test_pieces_cut_row_groups_and_files_and_cover_the_set_in_index_order(parquet_set):
    split = source_pieces("parquet", parquet_set, rows_per_piece=25)
    assert [piece.indices.start for piece in split.pieces] == sorted(piece.indices.start for piece in split.pieces)
    assert sum(len(piece.indices) for piece in split.pieces) == N
    assert max(len(piece.indices) for piece in split.pieces) == 25  # row groups of 40: a piece of 25, one of 15
    assert split.num_classes == 7 and list(split.labels[:8]) == [0, 1, 2, 3, 4, 5, 6, 0]
    assert sum(len(p.indices) for p in source_pieces("parquet", parquet_set, limit=111).pieces) == 111


def test_an_epoch_holds_every_image_once_with_its_own_label_and_pixels(parquet_set):
    spec = _spec(parquet_set)
    rows = _rows(spec, rank_items(spec, 0, 1, 0, N))
    assert sorted(rows["index"][:N]) == list(range(N))  # one epoch: each image once
    assert np.array_equal(_index_of(rows["image"]), rows["index"])  # the pixels are the index's image
    assert np.array_equal(rows["label"], rows["index"] % 7)
    assert rows["image"].dtype == np.uint8  # uint8 up to the worker
    assert not np.array_equal(rows["index"][:N], np.arange(N))  # shuffled


def test_the_order_is_a_function_of_the_seed_and_differs_between_epochs(parquet_set):
    spec = _spec(parquet_set)
    first = _rows(spec, rank_items(spec, 0, 1, 0, 2 * N))["index"]
    assert np.array_equal(first, _rows(spec, rank_items(spec, 0, 1, 0, 2 * N))["index"])
    assert not np.array_equal(first[:N], first[N : 2 * N])  # epoch 2 in another order
    other = _rows(_spec(parquet_set, seed=1), rank_items(_spec(parquet_set, seed=1), 0, 1, 0, N))["index"]
    assert not np.array_equal(first[:N], other[:N])


def test_ranks_share_out_the_windows_of_an_epoch(parquet_set):
    spec = _spec(parquet_set)
    windows_per_epoch = len(epoch_windows(spec, 0))
    assert (len(spec.pieces), windows_per_epoch) == (16, 6)  # pieces of 25 and the row groups' rests; 3 a window
    ranks = [rank_items(spec, rank, 2, 0, N // 2) for rank in (0, 1)]
    epoch0 = [item for items in ranks for item in items if item["epoch"] == 0]
    assert sorted(item["window"] for item in epoch0) == list(range(windows_per_epoch))
    seen = np.concatenate([_rows(spec, [item])["index"] for item in epoch0])
    assert sorted(seen) == list(range(N))


@pytest.mark.parametrize("world, rank", [(1, 0), (2, 1)])
def test_a_stream_started_at_row_k_continues_the_uninterrupted_order(parquet_set, world, rank):
    spec = _spec(parquet_set)
    whole = _rows(spec, rank_items(spec, rank, world, 0, 700))["index"]
    for start in (0, 1, 24, 75, 299, 301, 450):
        resumed = _rows(spec, rank_items(spec, rank, world, start, 200))["index"]
        assert np.array_equal(resumed[:200], whole[start : start + 200]), start


def test_measured_stream_applies_each_image_s_keyed_theta(parquet_set):
    measurement = BlockPixel(p=0.8)
    spec = _spec(parquet_set, measurement=measurement)
    rows = _rows(spec, rank_items(spec, 0, 1, 0, N))
    clean = load_source("parquet", parquet_set).images.astype(np.float32) / 255
    assert rows["image"].dtype == np.float32
    lost = (rows["image"] == 0) & (clean[rows["index"]] > 0)
    assert lost.sum() / (clean > 0).sum() == pytest.approx(0.8, abs=0.02)
    # Epoch 2 measures each image the same way (theta is keyed by the image, not drawn in order).
    again = _rows(spec, rank_items(spec, 0, 1, N, N))
    order = np.argsort(rows["index"][:N])
    assert np.array_equal(rows["image"][:N][order], again["image"][:N][np.argsort(again["index"][:N])])


def test_a_corrupt_image_fails_its_window_naming_the_file_and_the_file_s_row(tmp_path):
    png = io.BytesIO()
    Image.fromarray(_numbered(1)[0]).save(png, format="PNG")
    encoded = [png.getvalue()] * 400
    encoded[300] = b"not a png"  # in the second row group (of 256 rows), in its second piece (of 30)
    pq.write_table(pa.table({"image": encoded}), tmp_path / "corrupt.parquet", row_group_size=256)
    spec = _spec(str(tmp_path), rows_per_piece=30)
    with pytest.raises(DataSourceError, match=r"corrupt.parquet row 300: cannot decode the image"):
        for window in range(len(epoch_windows(spec, 0))):
            list(read_window(spec, 0, window))


def test_image_folder_pieces_are_strided_across_the_classes(tmp_path):
    images = _numbered(60)
    for i, image in enumerate(images):
        folder = tmp_path / f"class{i // 20}"  # sorted by class, as folders list
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    split = source_pieces("image_folder", str(tmp_path), rows_per_piece=10)
    assert len(split.pieces) == 6 and all(len(set(piece.labels)) == 3 for piece in split.pieces)
    spec = _spec(str(tmp_path), "image_folder", rows_per_piece=10, window=2)
    rows = _rows(spec, rank_items(spec, 0, 1, 0, 60))
    assert np.array_equal(_index_of(rows["image"]), rows["index"]) and np.array_equal(rows["label"], rows["index"] // 20)
    assert np.array_equal(load_source("image_folder", str(tmp_path)).images[rows["index"]], rows["image"])


def test_ray_streams_the_batches_in_order_from_any_row(parquet_set):
    import ray

    spec = _spec(parquet_set)
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        def indices(start_row, n):
            batches = rank_batches(spec, 0, 1, 16, start_row, torch.device("cpu"), rows_per_pass=64)
            return [next(batches) for _ in range(n)]

        whole, resumed = indices(0, 12), indices(5 * 16, 7)
    finally:
        ray.shutdown()
    images, labels, index = whole[0]
    assert images.dtype == torch.float32 and images.shape == (16, 1, 8, 8) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(labels, index % 7)
    # Twelve batches across passes of 64 rows and an epoch's end: the same rows as the items say, in order.
    expected = _rows(spec, rank_items(spec, 0, 1, 0, 12 * 16))["index"][: 12 * 16]
    assert torch.equal(torch.cat([b[2] for b in whole]), torch.from_numpy(expected))
    assert all(torch.equal(a[2], b[2]) for a, b in zip(whole[5:], resumed))


def test_a_set_larger_than_the_object_store_streams_through_it_twice(tmp_path):
    """6,400 RGB 64x64 images (79 MB of pixels, as noise: the files are as large) through a 75 MB object store."""
    import ray

    n, pixels, store = 6400, 3 * 64 * 64, 75 * 2**20
    rng = np.random.default_rng(0)
    for part in range(4):
        values = rng.integers(0, 256, n // 4 * pixels, dtype=np.uint8)
        pq.write_table(pa.table({"image": pa.FixedSizeListArray.from_arrays(pa.array(values), pixels)}),
                       tmp_path / f"part-{part}.parquet", row_group_size=800)
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) > store
    pieces = source_pieces("parquet", str(tmp_path)).pieces
    spec = StreamSpec(pieces, channels=3, image_size=None, measurement=None, data_seed=0, shuffle_seed=0,
                      pieces_per_window=pieces_per_window(pieces, pixels), task_cpus=0.25)
    ray.init(address="local", num_cpus=2, object_store_memory=store, include_dashboard=False)
    try:
        batches = rank_batches(spec, 0, 1, 256, 0, torch.device("cpu"), rows_per_pass=2 * n)
        seen = torch.cat([next(batches)[2] for _ in range(2 * n // 256)])
    finally:
        ray.shutdown()
    assert torch.equal(torch.bincount(seen, minlength=n), torch.full((n,), 2))  # every image, once an epoch
