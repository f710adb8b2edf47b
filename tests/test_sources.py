"""Data sources: Debian's Fashion-MNIST, IDX files, image folders, Parquet; clear errors for bad input."""

import gzip
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gansweep.sources import DataSourceError, load_source, prepare_source

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="needs apt-get install -y dataset-fashion-mnist")


def _write_idx(path: Path, array: np.ndarray, magic: int, gz: bool) -> None:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _fake_mnist(root: Path, n: int = 12, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    _write_idx(root / "train-images-idx3-ubyte", images, 2051, gz)
    _write_idx(root / "train-labels-idx1-ubyte", labels, 2049, gz)
    return images, labels


@needs_fashion
def test_fashion_mnist_from_debian():
    arrays = load_source("fashion_mnist", None, limit=300)
    assert arrays.images.shape == (300, 1, 28, 28) and arrays.images.dtype == np.uint8
    assert arrays.labels.min() >= 0 and arrays.labels.max() <= 9 and arrays.num_classes == 10
    assert arrays.labels[0] == 9  # the first training image is an ankle boot
    assert len(load_source("fashion_mnist", None, split="test").images) == 10000


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_round_trip(tmp_path, gz, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    images, labels = _fake_mnist(folder, gz=gz)
    arrays = load_source("mnist", str(tmp_path), limit=5)
    assert np.array_equal(arrays.images[:, 0], images[:5])
    assert np.array_equal(arrays.labels, labels[:5])


def test_idx_errors(tmp_path):
    _fake_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(np.array([1234, 1], dtype=">u4").tobytes())
    with pytest.raises(DataSourceError, match="magic number 1234"):
        load_source("mnist", str(tmp_path))
    _fake_mnist(tmp_path)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:500])
    with pytest.raises(DataSourceError, match="truncated"):
        load_source("mnist", str(tmp_path))
    with pytest.raises(DataSourceError, match="/no/such/dir"):
        load_source("mnist", "/no/such/dir")
    with pytest.raises(DataSourceError, match="unknown data source 'cifar'"):
        load_source("cifar", None)
    with pytest.raises(DataSourceError, match="data.limit=0"):
        load_source("mnist", str(tmp_path), limit=0)


@needs_fashion
def test_prepare_makes_torchvision_read_it_offline(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path))
    description = prepare_source("fashion_mnist", None)
    assert "60000 train and 10000 test" in description
    dataset = torchvision.datasets.FashionMNIST(str(tmp_path / "torchvision"), train=True, download=False)
    assert len(dataset) == 60000 and dataset[0][1] == load_source("fashion_mnist", None, limit=1).labels[0]


def _png(color, size=(20, 20), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def test_image_folder_with_classes_and_test_split(tmp_path):
    for name, color in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / name).mkdir()
        for i in range(3):
            _png(color).save(tmp_path / name / f"{i}.png")
    (tmp_path / "test" / "cats").mkdir(parents=True)
    _png((255, 0, 0)).save(tmp_path / "test" / "cats" / "0.png")

    train = load_source("image_folder", str(tmp_path))
    assert train.images.shape == (6, 3, 20, 20) and train.num_classes == 2
    assert list(train.labels) == [0, 0, 0, 1, 1, 1]
    assert (train.images[0, 0] == 255).all() and (train.images[3, 2] == 255).all()
    test = load_source("image_folder", str(tmp_path), split="test")
    assert len(test.images) == 1


def test_image_folder_unlabelled_grayscale_and_resizing(tmp_path):
    _png(128, (20, 20), "L").save(tmp_path / "a.png")
    _png(64, (30, 24), "L").save(tmp_path / "b.png")
    with pytest.raises(DataSourceError, match="data.image_size"):
        load_source("image_folder", str(tmp_path))
    arrays = load_source("image_folder", str(tmp_path), image_size=16)
    assert arrays.images.shape == (2, 1, 16, 16)
    assert list(arrays.labels) == [-1, -1] and arrays.num_classes == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="no images"):
        load_source("image_folder", str(tmp_path / "empty"))
    with pytest.raises(DataSourceError, match="missing does not exist"):
        load_source("image_folder", str(tmp_path / "missing"))


def test_parquet_encoded_structs_and_raw_pixels(tmp_path):
    def encoded(value):
        buffer = io.BytesIO()
        _png(value, (8, 8), "L").save(buffer, format="PNG")
        return buffer.getvalue()

    pq.write_table(pa.table({"image": [encoded(10), encoded(20)], "label": [3, 1]}), tmp_path / "png.parquet")
    arrays = load_source("parquet", str(tmp_path / "png.parquet"))
    assert arrays.images.shape == (2, 1, 8, 8) and list(arrays.labels) == [3, 1]
    assert arrays.images[1].max() == 20 and arrays.num_classes == 4

    structs = [{"bytes": encoded(30), "path": "x.png"}, {"bytes": encoded(40), "path": "y.png"}]
    pq.write_table(pa.table({"image": structs}), tmp_path / "hf.parquet")
    arrays = load_source("parquet", str(tmp_path / "hf.parquet"), limit=1)
    assert arrays.images.shape == (1, 1, 8, 8) and arrays.images.max() == 30 and arrays.labels[0] == -1

    pixels = [list(range(16)), list(range(16, 32))]
    pq.write_table(pa.table({"image": pixels, "label": [0, 1]}), tmp_path / "raw.parquet")
    arrays = load_source("parquet", str(tmp_path / "raw.parquet"))
    assert arrays.images.shape == (2, 1, 4, 4) and arrays.images[1, 0, 0, 0] == 16

    pq.write_table(pa.table({"pixels": pixels}), tmp_path / "bad.parquet")
    with pytest.raises(DataSourceError, match="no 'image' column.*pixels"):
        load_source("parquet", str(tmp_path / "bad.parquet"))
