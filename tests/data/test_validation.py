"""The validation split: a seeded set of training images that no training stream reads (for every kind of source),
each image keeping its index (so its theta), data.limit the first N images of what remains, and a clear error for a
split that leaves nothing to train on."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import describe_source, load_source, load_validation, training_pieces
from gansweep.data.stream import StreamSpec, epoch_windows, read_window
from gansweep.data.validation import Holdout, held_out_indices
from gansweep.nets.measurements import BlockPixel
from PIL import Image
from source_files import write_idx

N, HOLDOUT = 60, Holdout(15, 3)


def _numbered(n: int, side: int) -> np.ndarray:
    """n grayscale images whose first two pixels spell a number of their own (0 to n - 1), in a shuffled order."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    ids = rng.permutation(n)
    images[:, 0, 0], images[:, 0, 1] = ids % 256, ids // 256
    return images


def _id_of(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 0, 1].astype(np.int64)


def _write(kind: str, root) -> str:
    """A training split of N numbered images of KIND; returns its root."""
    root.mkdir(parents=True)
    if kind == "parquet":
        images = _numbered(N, 8)
        for part, (lo, hi) in enumerate([(0, 25), (25, N)]):
            pixels = pa.FixedSizeListArray.from_arrays(pa.array(images[lo:hi].reshape(-1)), 64)
            pq.write_table(pa.table({"image": pixels, "label": pa.array(np.arange(lo, hi) % 3)}),
                           root / f"part-{part}.parquet", row_group_size=10)
    elif kind == "image_folder":  # two classes: listed class by class, so index order is not file-number order
        for i, image in enumerate(_numbered(N, 8)):
            folder = root / "ab"[i % 2]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{i:03d}.png")
    else:  # mnist: IDX files, streamed through their Parquet conversion
        write_idx(root / "train-images-idx3-ubyte", _numbered(N, 28), 2051, False)
        write_idx(root / "train-labels-idx1-ubyte", np.arange(N) % 10, 2049, False)
    return str(root)


def _streamed(kind: str, root: str, limit, holdout: Holdout, cache) -> dict[str, np.ndarray]:
    """Every row of an epoch of the training stream, measured with Block-Pixel (each image with its keyed theta)."""
    info = describe_source(kind, root, None, limit, holdout)
    pieces = training_pieces(kind, root, info, rows_per_piece=7, cache_dir=cache).pieces
    spec = StreamSpec(pieces, channels=1, image_size=None, measurement=BlockPixel(p=0.5), data_seed=0,
                      shuffle_seed=0, pieces_per_window=2, task_cpus=0.25)
    assert spec.n_images == info.n_images
    blocks = [block for window in range(len(epoch_windows(spec, 0))) for block in read_window(spec, 0, window)]
    return {key: np.concatenate([block[key] for block in blocks]) for key in ("image", "index")}


@pytest.mark.parametrize("kind", ["parquet", "image_folder", "mnist"])
@pytest.mark.parametrize("limit", [None, 20])
def test_no_training_stream_reads_the_validation_images(tmp_path, kind, limit):
    root, cache = _write(kind, tmp_path / "data"), tmp_path / "cache"
    split = load_source(kind, root, "train").images  # index order
    held = held_out_indices(N, HOLDOUT, kind)
    kept = np.setdiff1d(np.arange(N), held)[:limit]  # data.limit: the first N images of what remains
    rows = _streamed(kind, root, limit, HOLDOUT, cache)

    # By index and by content: every training image once, none of the validation split.
    assert sorted(rows["index"]) == list(kept) and not set(rows["index"]) & set(held)
    validation = load_validation(kind, root, None, HOLDOUT, cache).images
    np.testing.assert_array_equal(validation, split[held])
    assert not set(_id_of(validation)) & set(_id_of(split[rows["index"]]))
    # Image i keeps its index, so its theta: the same y as in a stream without a validation split.
    whole = _streamed(kind, root, None, Holdout(0, 0), cache)
    y_whole = dict(zip(whole["index"], whole["image"]))
    for index, y in zip(rows["index"], rows["image"]):
        np.testing.assert_array_equal(y, y_whole[index])


def test_the_split_is_a_function_of_its_seed_and_size():
    first = held_out_indices(1000, Holdout(50, 0), "x")
    assert len(set(first)) == 50 and np.array_equal(first, held_out_indices(1000, Holdout(50, 0), "x"))
    assert not np.array_equal(first, held_out_indices(1000, Holdout(50, 1), "x"))
    assert first.min() < 500 < first.max()  # drawn over the whole split, not its end


def test_a_split_that_leaves_nothing_to_train_on_is_refused(tmp_path):
    root = _write("parquet", tmp_path / "data")
    with pytest.raises(DataSourceError, match=rf"data.validation_size={N} holds out the whole training split \({N} "):
        describe_source("parquet", root, None, None, Holdout(N, 0))
    info = describe_source("parquet", root, None, 1000, Holdout(N - 5, 0))
    assert info.n_images == 5 and not info.unlabelled
