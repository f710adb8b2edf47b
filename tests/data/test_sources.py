"""Data sources: Debian's Fashion-MNIST, IDX files, image folders, Parquet; clear errors for bad input."""

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import needs_fashion
from gansweep.data.source_base import SOURCES, DataSourceError
from gansweep.data.sources import (
    REGISTRY,
    describe_source,
    load_source,
    prepare_source,
)
from PIL import Image


def _write_idx(path: Path, array: np.ndarray, magic: int, gz: bool) -> None:
    data = np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _fake_mnist(folder: Path, n: int = 12, gz: bool = False, prefix: str = "train") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(prefix))
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    _write_idx(folder / f"{prefix}-images-idx3-ubyte", images, 2051, gz)
    _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, 2049, gz)
    return images, labels


# --- IDX -----------------------------------------------------------------------------------------


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
    images, labels = _fake_mnist(folder, gz=gz)
    test_images, _ = _fake_mnist(folder, n=4, gz=gz, prefix="t10k")
    arrays = load_source("mnist", str(tmp_path), limit=5)
    assert arrays.images.shape == (5, 1, 28, 28) and arrays.images.dtype == np.uint8
    assert np.array_equal(arrays.images[:, 0], images[:5])
    assert np.array_equal(arrays.labels, labels[:5]) and arrays.labels.dtype == np.int64
    assert np.array_equal(load_source("mnist", str(tmp_path)).images[:, 0], images)
    assert np.array_equal(load_source("mnist", str(tmp_path), split="test").images[:, 0], test_images)


def test_idx_errors(tmp_path):
    images_file = tmp_path / "train-images-idx3-ubyte"
    _fake_mnist(tmp_path)
    images_file.write_bytes(np.array([1234, 1, 28, 28], dtype=">u4").tobytes())
    with pytest.raises(DataSourceError, match="mnist: .*train-images-idx3-ubyte: IDX magic number 1234, expected 2051"):
        load_source("mnist", str(tmp_path))

    _fake_mnist(tmp_path)
    images_file.write_bytes(images_file.read_bytes()[:1000])
    with pytest.raises(DataSourceError, match="truncated IDX data"):
        load_source("mnist", str(tmp_path))
    assert len(load_source("mnist", str(tmp_path), limit=1).images) == 1  # 1000 bytes hold the header and one image

    gz_dir = tmp_path / "gz"
    _fake_mnist(gz_dir, gz=True)
    gz_file = gz_dir / "train-images-idx3-ubyte.gz"
    gz_file.write_bytes(gz_file.read_bytes()[:200])
    with pytest.raises(DataSourceError, match="unreadable IDX file|truncated IDX"):
        load_source("mnist", str(gz_dir))

    _fake_mnist(gz_dir, gz=True)
    _write_idx(gz_dir / "train-labels-idx1-ubyte", np.zeros(11), 2049, gz=True)
    with pytest.raises(DataSourceError, match="12 images but 11 labels"):
        load_source("mnist", str(gz_dir))
    with pytest.raises(DataSourceError, match="no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz"):
        load_source("mnist", str(gz_dir), split="test")


def test_source_argument_errors(tmp_path):
    _fake_mnist(tmp_path)
    with pytest.raises(DataSourceError, match="mnist: /no/such/dir does not exist"):
        load_source("mnist", "/no/such/dir")
    with pytest.raises(DataSourceError, match="mnist: no root given"):
        load_source("mnist", None)
    sources = "fashion_mnist, mnist, image_folder, parquet"
    with pytest.raises(DataSourceError, match=f"unknown data source 'cifar'; choose one of {sources}"):
        load_source("cifar", None)
    with pytest.raises(DataSourceError, match="data.limit=0 must be >= 1"):
        load_source("mnist", str(tmp_path), limit=0)
    with pytest.raises(DataSourceError, match="split 'val'"):
        load_source("mnist", str(tmp_path), split="val")
    with pytest.raises(DataSourceError, match="data.image_size=32"):
        load_source("mnist", str(tmp_path), image_size=32)


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
    images, labels = _fake_mnist(tmp_path / "idx", gz=True)
    _fake_mnist(tmp_path / "idx", n=4, gz=True, prefix="t10k")
    assert "12 train and 4 test" in prepare_source("mnist", str(tmp_path / "idx"))
    dataset = torchvision.datasets.MNIST(str(tmp_path / "cache" / "torchvision"), train=True, download=False)
    assert len(dataset) == 12 and dataset[3][1] == labels[3]
    assert np.array_equal(np.asarray(dataset[3][0]), images[3])


# --- image folders -------------------------------------------------------------------------------


def _image(color, size=(20, 20), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def test_image_folder_classes_and_test_split(tmp_path):
    for name, color in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / name).mkdir()
        for i in range(3):
            _image(color).save(tmp_path / name / f"{i}.png")
    (tmp_path / "test" / "dogs").mkdir(parents=True)
    _image((0, 0, 255)).save(tmp_path / "test" / "dogs" / "0.jpg")

    train = load_source("image_folder", str(tmp_path))
    assert train.images.shape == (6, 3, 20, 20) and train.images.dtype == np.uint8 and train.num_classes == 2
    assert list(train.labels) == [0, 0, 0, 1, 1, 1]
    assert (train.images[0, 0] == 255).all() and (train.images[3, 2] == 255).all()
    assert list(load_source("image_folder", str(tmp_path), limit=2).labels) == [0, 0]  # first in sorted order
    test = load_source("image_folder", str(tmp_path), split="test")
    assert len(test.images) == 1 and list(test.labels) == [1] and test.num_classes == 2  # dogs is 1 in both
    assert "6 train and 1 test images" in prepare_source("image_folder", str(tmp_path))


def test_image_folder_unlabelled_grayscale_resizing_and_errors(tmp_path):
    _image(128, (20, 20), "L").save(tmp_path / "a.png")
    _image(64, (30, 24), "L").save(tmp_path / "b.png")
    with pytest.raises(DataSourceError, match=f"image_folder: {tmp_path}: images of different sizes.*data.image_size"):
        load_source("image_folder", str(tmp_path))
    arrays = load_source("image_folder", str(tmp_path), image_size=16)
    assert arrays.images.shape == (2, 1, 16, 16) and arrays.images[1].max() == 64
    assert list(arrays.labels) == [-1, -1] and arrays.num_classes == 0
    with pytest.raises(DataSourceError, match="has no test split"):
        load_source("image_folder", str(tmp_path), split="test")

    # The first image decides the colour (a streamed set cannot look at every image first).
    _image((0, 255, 0), (20, 20)).save(tmp_path / "c.png")
    assert load_source("image_folder", str(tmp_path), image_size=16).images.shape == (3, 1, 16, 16)
    _image((0, 255, 0), (20, 20)).save(tmp_path / "0.png")
    assert load_source("image_folder", str(tmp_path), image_size=16).images.shape == (4, 3, 16, 16)
    (tmp_path / "0.png").unlink()

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="no images"):
        load_source("image_folder", str(tmp_path / "empty"))
    with pytest.raises(DataSourceError, match="missing does not exist"):
        load_source("image_folder", str(tmp_path / "missing"))
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataSourceError, match="broken.png: cannot decode"):
        load_source("image_folder", str(tmp_path / "empty"))


# --- Parquet -------------------------------------------------------------------------------------


def _png_bytes(value, size=(8, 8), mode="L") -> bytes:
    buffer = io.BytesIO()
    _image(value, size, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_parquet_encoded_images(tmp_path):
    pq.write_table(pa.table({"image": [_png_bytes(10), _png_bytes(20)], "label": [3, 1]}), tmp_path / "png.parquet")
    arrays = load_source("parquet", str(tmp_path / "png.parquet"))
    assert arrays.images.shape == (2, 1, 8, 8) and arrays.images.dtype == np.uint8
    assert arrays.images[1].max() == 20 and list(arrays.labels) == [3, 1] and arrays.num_classes == 4
    assert load_source("parquet", str(tmp_path / "png.parquet"), limit=1).num_classes == 4  # from the whole column
    with pytest.raises(DataSourceError, match="one file, so it has no test split"):
        load_source("parquet", str(tmp_path / "png.parquet"), split="test")

    # A directory of HuggingFace-style files: {"bytes", "path"} structs; limit spans files in sorted order.
    folder = tmp_path / "hf"
    (folder / "test").mkdir(parents=True)
    for i, values in enumerate(([30, 40], [50, 60])):
        structs = [{"bytes": _png_bytes(v, mode="RGB" if v == 60 else "L"), "path": f"{v}.png"} for v in values]
        pq.write_table(pa.table({"image": structs}), folder / f"part-{i}.parquet")
    pq.write_table(pa.table({"image": [{"bytes": _png_bytes(70), "path": "t.png"}]}), folder / "test" / "t.parquet")
    arrays = load_source("parquet", str(folder), limit=3)
    assert arrays.images.shape == (3, 1, 8, 8) and [a.max() for a in arrays.images] == [30, 40, 50]
    assert list(arrays.labels) == [-1, -1, -1] and arrays.num_classes == 0
    assert load_source("parquet", str(folder)).images.shape == (4, 1, 8, 8)  # the first image's colour
    assert load_source("parquet", str(folder), split="test").images.max() == 70
    assert load_source("parquet", str(folder), image_size=4).images.shape == (4, 1, 4, 4)
    assert "4 train and 1 test images" in prepare_source("parquet", str(folder))


def test_parquet_pixel_lists(tmp_path):
    gray = [list(range(16)), list(range(16, 32))]
    pq.write_table(pa.table({"image": gray, "label": [0, None]}), tmp_path / "gray.parquet")
    arrays = load_source("parquet", str(tmp_path / "gray.parquet"))
    assert arrays.images.shape == (2, 1, 4, 4) and arrays.images[1, 0, 0, 0] == 16 and arrays.images[0, 0, 1, 0] == 4
    assert list(arrays.labels) == [0, -1] and arrays.num_classes == 1

    rgb = np.arange(2 * 48).reshape(2, 48) % 256  # flat C*H*W, channels first
    pq.write_table(pa.table({"image": rgb.tolist()}), tmp_path / "rgb.parquet")
    arrays = load_source("parquet", str(tmp_path / "rgb.parquet"))
    assert arrays.images.shape == (2, 3, 4, 4) and np.array_equal(arrays.images.reshape(2, 48), rgb)

    nested = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3) % 256  # (H, W, C) rows
    pq.write_table(pa.table({"image": nested.tolist()}), tmp_path / "nested.parquet")
    arrays = load_source("parquet", str(tmp_path / "nested.parquet"))
    assert np.array_equal(arrays.images, nested.transpose(0, 3, 1, 2))

    pq.write_table(pa.table({"image": [list(range(10))]}), tmp_path / "odd.parquet")
    with pytest.raises(DataSourceError, match="cannot infer the image shape of flat pixel lists of length 10"):
        load_source("parquet", str(tmp_path / "odd.parquet"))


def test_parquet_bad_columns(tmp_path):
    pixels = [list(range(16))]
    pq.write_table(pa.table({"pixels": pixels, "target": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(DataSourceError, match=r"bad.parquet: no 'image' column \(columns: pixels, target\)"):
        load_source("parquet", str(tmp_path / "bad.parquet"))
    pq.write_table(pa.table({"image": pixels, "label": ["cat"]}), tmp_path / "strlabel.parquet")
    with pytest.raises(DataSourceError, match="'label' column holds string"):
        load_source("parquet", str(tmp_path / "strlabel.parquet"))
    pq.write_table(pa.table({"image": ["a.png"]}), tmp_path / "paths.parquet")
    with pytest.raises(DataSourceError, match="'image' column holds string"):
        load_source("parquet", str(tmp_path / "paths.parquet"))
    pq.write_table(pa.table({"image": [b"not a png"]}), tmp_path / "broken.parquet")
    with pytest.raises(DataSourceError, match="broken.parquet row 0: cannot decode"):
        load_source("parquet", str(tmp_path / "broken.parquet"))
    (tmp_path / "none").mkdir()
    with pytest.raises(DataSourceError, match="no .parquet files in"):
        load_source("parquet", str(tmp_path / "none"))


def test_a_corrupt_image_is_named_by_its_file_and_the_file_s_row(tmp_path):
    images = [_png_bytes(i % 256) for i in range(400)]
    images[300] = b"not a png"  # row 44 of the second row group
    pq.write_table(pa.table({"image": images}), tmp_path / "corrupt.parquet", row_group_size=256)
    with pytest.raises(DataSourceError, match=r"corrupt.parquet row 300: cannot decode the image"):
        load_source("parquet", str(tmp_path))


# --- further checks ------------------------------------------------------------------------------


def test_idx_num_classes_is_ten_whatever_the_limit_keeps(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 28, 28)), 2051, gz=False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 0, 1, 9]), 2049, gz=False)
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
    _fake_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / file_name).write_bytes(payload)
    with pytest.raises(DataSourceError) as err:
        load_source("mnist", str(tmp_path))
    assert file_name in str(err.value)


# Created in this (unsorted) order; the red channel tells which folder an image came from.
CLASS_COLOURS = {"zebra": 50, "ant": 10, "moose": 40, "cat": 20, "dog": 30}


def test_image_folder_labels_are_sorted_folder_indices(tmp_path):
    for name, red in CLASS_COLOURS.items():
        (tmp_path / name).mkdir()
        for i in range(2):
            _image((red, i, 0)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "test" / "zebra").mkdir(parents=True)  # only the last class in the test split
    _image((CLASS_COLOURS["zebra"], 100, 0)).save(tmp_path / "test" / "zebra" / "0.png")

    train = load_source("image_folder", str(tmp_path))
    assert train.images.shape == (10, 3, 20, 20) and train.num_classes == 5  # "test" is no class
    names = sorted(CLASS_COLOURS)  # ant, cat, dog, moose, zebra -> 0..4
    for image, label in zip(train.images, train.labels):
        assert CLASS_COLOURS[names[label]] == image[0, 0, 0]
    assert (train.images[:, 1, 0, 0] < 100).all()  # the test image stays out of the training split
    test = load_source("image_folder", str(tmp_path), split="test")
    assert test.images.shape == (1, 3, 20, 20) and test.images[0, 1, 0, 0] == 100
    assert list(test.labels) == [4] and test.num_classes == 5  # zebra is 4 in both splits


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc/self/fd")
def test_image_folder_does_not_hold_a_file_open_per_image(tmp_path):
    import os
    import resource

    for i in range(120):
        _image(i, (4, 4), "L").save(tmp_path / f"{i:03d}.png")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = len(os.listdir("/proc/self/fd")) + 40  # far fewer open files than the 120 images
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(allowed, hard), hard))
    try:
        arrays = load_source("image_folder", str(tmp_path))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert arrays.images.shape == (120, 1, 4, 4) and arrays.images[119, 0, 0, 0] == 119


# --- describe_source: what load_source would return, without loading it -------------------------


def _described_as_loaded(name: str, root, image_size=None, limit=None):
    """describe_source agrees with load_source on the same arguments; returns the description."""
    info = describe_source(name, root, image_size=image_size, limit=limit)
    arrays = load_source(name, root, limit=limit, image_size=image_size)
    assert info.clean_shape == arrays.images.shape[1:] and isinstance(info.clean_shape, tuple)
    assert info.num_classes == arrays.num_classes and info.n_images == len(arrays.images)
    assert info.unlabelled == bool((arrays.labels < 0).any())
    return info


@needs_fashion
def test_describe_fashion_mnist_reads_the_headers_only(monkeypatch):
    import gansweep.data.source_idx as source_idx

    read = []
    original = source_idx._read_idx
    monkeypatch.setattr(source_idx, "_read_idx", lambda *args: read.append(args[-1]) or original(*args))
    info = describe_source("fashion_mnist", None)
    assert (info.clean_shape, info.num_classes, info.n_images, info.unlabelled) == ((1, 28, 28), 10, 60000, False)
    assert read == [0, 0]  # no image nor label is read, only the two headers
    monkeypatch.undo()
    assert _described_as_loaded("fashion_mnist", None, limit=300).n_images == 300


def test_describe_idx_image_folder_and_parquet_as_load_source_reads_them(tmp_path):
    _fake_mnist(tmp_path / "idx")
    assert _described_as_loaded("mnist", str(tmp_path / "idx"), limit=5).n_images == 5
    assert _described_as_loaded("mnist", str(tmp_path / "idx"), limit=50).n_images == 12

    folder = tmp_path / "folder"
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            _image((i, 0, 0), (20, 30)).save(folder / name / f"{i}.png")
    _image((9, 0, 0), (20, 30)).save(folder / "zz_unlabelled.png")  # after the classes in sorted order
    info = _described_as_loaded("image_folder", str(folder))
    assert (info.clean_shape, info.num_classes, info.n_images, info.unlabelled) == ((3, 30, 20), 2, 7, True)
    assert not _described_as_loaded("image_folder", str(folder), image_size=16, limit=6).unlabelled

    pq.write_table(pa.table({"image": [_png_bytes(v) for v in (1, 2, 3)], "label": [0, 4, None]}),
                   tmp_path / "labels.parquet")
    info = _described_as_loaded("parquet", str(tmp_path / "labels.parquet"))
    assert (info.clean_shape, info.num_classes, info.n_images, info.unlabelled) == ((1, 8, 8), 5, 3, True)
    assert not _described_as_loaded("parquet", str(tmp_path / "labels.parquet"), image_size=4, limit=2).unlabelled
    (tmp_path / "parts").mkdir()
    for i in range(2):
        pq.write_table(pa.table({"image": [list(range(16))] * 3}), tmp_path / "parts" / f"{i}.parquet")
    assert _described_as_loaded("parquet", str(tmp_path / "parts"), limit=4).n_images == 4


def test_describe_refuses_what_load_source_refuses(tmp_path):
    _fake_mnist(tmp_path)
    for kwargs, message in [
        ({"name": "mnist", "root": "/no/such/dir"}, "/no/such/dir does not exist"),
        ({"name": "cifar", "root": None}, "unknown data source 'cifar'"),
        ({"name": "mnist", "root": str(tmp_path), "image_size": 32}, "data.image_size=32"),
        ({"name": "mnist", "root": str(tmp_path), "limit": 0}, "data.limit=0 must be >= 1"),
        ({"name": "image_folder", "root": str(tmp_path)}, "no images"),
    ]:
        with pytest.raises(DataSourceError, match=re.escape(message)):
            describe_source(**kwargs)


# --- bad sources, refused by `gansweep train` before Ray starts ----------------------------------------------


def _bad_column(tmp_path):
    pq.write_table(pa.table({"image": ["not", "images"]}), tmp_path / "strings.parquet")
    return "parquet", str(tmp_path / "strings.parquet"), r"strings.parquet: the 'image' column holds string", {}


def _bad_labels(tmp_path):
    pq.write_table(pa.table({"image": [_png_bytes(1)], "label": [0.5]}), tmp_path / "floats.parquet")
    return "parquet", str(tmp_path / "floats.parquet"), r"floats.parquet: the 'label' column holds double", {}


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return "image_folder", str(tmp_path / "empty"), r"image_folder: no images .* under .*empty", {}


def _unreachable_bucket(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "secret-never-shown"}
    return "parquet", "s3://training-data/celeba64", r"parquet: s3://training-data/celeba64: cannot list it", env


@pytest.mark.parametrize("make", [_bad_column, _bad_labels, _empty_folder, _unreachable_bucket])
def test_train_refuses_a_bad_source_naming_it_before_ray_starts(tmp_path, capsys, monkeypatch, make):
    import ray
    from gansweep.cli import main

    name, root, message, env = make(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(["train", "--set", f"data.name={name}", "--set", f"data.root={root}", "--output",
                 str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and re.search(message, error), error
    assert "secret-never-shown" not in error
    assert not ray.is_initialized() and not (tmp_path / "run").exists()


def test_the_source_names_config_checks_are_the_registry_s():
    # config checks data.name against source_base.SOURCES, not the registry: they must name the same kinds.
    assert SOURCES == tuple(REGISTRY)
    assert all(source.name == name for name, source in REGISTRY.items())
