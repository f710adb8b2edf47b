"""IDX sources (data/source_idx.py): Debian's Fashion-MNIST, IDX files flat or in torchvision's layout, gzipped or
not; prepared for torchvision; clear errors for broken files."""

import gzip

import numpy as np
import pytest
from conftest import needs_fashion
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import load_source, prepare_source
from source_files import fake_mnist, write_idx


@needs_fashion
def test_fashion_mnist_from_debian():
    arrays = load_source("fashion_mnist", None, limit=300)
    assert arrays.images.shape == (300, 1, 28, 28) and arrays.images.dtype == np.uint8
    assert arrays.labels.dtype == np.int64 and arrays.labels.min() >= 0 and arrays.labels.max() <= 9
    assert arrays.num_classes == 10
    assert arrays.labels[0] == 9  # the first training image is an ankle boot
    assert arrays.images.max() > 0
    assert len(load_source("fashion_mnist", None, split="test").images) == 10000


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_round_trip(tmp_path, gz, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    images, labels = fake_mnist(folder, gz=gz)
    test_images, _ = fake_mnist(folder, n=4, gz=gz, prefix="t10k")
    arrays = load_source("mnist", str(tmp_path), limit=5)
    assert arrays.images.shape == (5, 1, 28, 28) and arrays.images.dtype == np.uint8
    assert np.array_equal(arrays.images[:, 0], images[:5])
    assert np.array_equal(arrays.labels, labels[:5]) and arrays.labels.dtype == np.int64
    assert np.array_equal(load_source("mnist", str(tmp_path)).images[:, 0], images)
    assert np.array_equal(load_source("mnist", str(tmp_path), split="test").images[:, 0], test_images)


def test_idx_errors(tmp_path):
    images_file = tmp_path / "train-images-idx3-ubyte"
    fake_mnist(tmp_path)
    images_file.write_bytes(np.array([1234, 1, 28, 28], dtype=">u4").tobytes())
    with pytest.raises(DataSourceError, match="mnist: .*train-images-idx3-ubyte: IDX magic number 1234, expected 2051"):
        load_source("mnist", str(tmp_path))

    fake_mnist(tmp_path)
    images_file.write_bytes(images_file.read_bytes()[:1000])
    with pytest.raises(DataSourceError, match="truncated IDX data"):
        load_source("mnist", str(tmp_path))
    assert len(load_source("mnist", str(tmp_path), limit=1).images) == 1  # 1000 bytes hold the header and one image

    gz_dir = tmp_path / "gz"
    fake_mnist(gz_dir, gz=True)
    gz_file = gz_dir / "train-images-idx3-ubyte.gz"
    gz_file.write_bytes(gz_file.read_bytes()[:200])
    with pytest.raises(DataSourceError, match="unreadable IDX file|truncated IDX"):
        load_source("mnist", str(gz_dir))

    fake_mnist(gz_dir, gz=True)
    write_idx(gz_dir / "train-labels-idx1-ubyte", np.zeros(11), 2049, gz=True)
    with pytest.raises(DataSourceError, match="12 images but 11 labels"):
        load_source("mnist", str(gz_dir))
    with pytest.raises(DataSourceError, match="no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz"):
        load_source("mnist", str(gz_dir), split="test")


def test_fashion_mnist_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(DataSourceError, match=f"{tmp_path}.*apt-get install -y dataset-fashion-mnist"):
        load_source("fashion_mnist", str(tmp_path))
    with pytest.raises(DataSourceError, match="apt-get install -y dataset-fashion-mnist"):
        prepare_source("fashion_mnist", str(tmp_path / "absent"))


@needs_fashion
def test_prepare_makes_torchvision_read_fashion_mnist_offline(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path))
    description = prepare_source("fashion_mnist", None)
    assert "60000 train and 10000 test" in description and str(tmp_path / "torchvision") in description
    dataset = torchvision.datasets.FashionMNIST(str(tmp_path / "torchvision"), train=True, download=False)
    assert len(dataset) == 60000
    assert dataset[0][1] == load_source("fashion_mnist", None, limit=1).labels[0]


def test_prepare_mnist_writes_torchvision_layout(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    images, labels = fake_mnist(tmp_path / "idx", gz=True)
    fake_mnist(tmp_path / "idx", n=4, gz=True, prefix="t10k")
    assert "12 train and 4 test" in prepare_source("mnist", str(tmp_path / "idx"))
    dataset = torchvision.datasets.MNIST(str(tmp_path / "cache" / "torchvision"), train=True, download=False)
    assert len(dataset) == 12 and dataset[3][1] == labels[3]
    assert np.array_equal(np.asarray(dataset[3][0]), images[3])


def test_idx_num_classes_is_ten_whatever_the_limit_keeps(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 28, 28)), 2051, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 0, 1, 9]), 2049, gz=False)
    arrays = load_source("mnist", str(tmp_path), limit=5)  # labels 0..2 only
    assert list(arrays.labels) == [0, 1, 2, 0, 1] and arrays.num_classes == 10


def _idx_bytes(n: int = 12) -> bytes:
    images = np.random.default_rng(1).integers(0, 256, (n, 28, 28), dtype=np.uint8)  # incompressible
    return np.array([2051, n, 28, 28], dtype=">u4").tobytes() + images.tobytes()


@pytest.mark.parametrize(
    "file_name, payload",
    [
        ("train-images-idx3-ubyte", _idx_bytes()[:10]),  # cut inside the dimensions of the header
        ("train-images-idx3-ubyte", _idx_bytes()[:3]),  # cut inside the magic number
        ("train-images-idx3-ubyte.gz", gzip.compress(_idx_bytes())[:1000]),  # a cut-off download
        ("train-images-idx3-ubyte.gz", b"this is not gzip data"),
    ],
)
def test_broken_idx_files_raise_data_source_errors_naming_the_file(tmp_path, file_name, payload):
    fake_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / file_name).write_bytes(payload)
    with pytest.raises(DataSourceError) as err:
        load_source("mnist", str(tmp_path))
    assert file_name in str(err.value)

