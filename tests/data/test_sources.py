"""The sources' one entry (data/sources.py): requests checked the same for every kind, describe_source as load_source
would read, bad sources refused before Ray starts, and the registry's names; each kind's own tests are in
test_source_<kind>.py."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import needs_fashion
from gansweep.data.source_base import SOURCES, DataSourceError
from gansweep.data.sources import (
    REGISTRY,
    describe_source,
    load_source,
)
from source_files import fake_mnist, png_bytes, solid_image


def test_source_argument_errors(tmp_path):
    fake_mnist(tmp_path)
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
    fake_mnist(tmp_path / "idx")
    assert _described_as_loaded("mnist", str(tmp_path / "idx"), limit=5).n_images == 5
    assert _described_as_loaded("mnist", str(tmp_path / "idx"), limit=50).n_images == 12

    folder = tmp_path / "folder"
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            solid_image((i, 0, 0), (20, 30)).save(folder / name / f"{i}.png")
    solid_image((9, 0, 0), (20, 30)).save(folder / "zz_unlabelled.png")  # after the classes in sorted order
    info = _described_as_loaded("image_folder", str(folder))
    assert (info.clean_shape, info.num_classes, info.n_images, info.unlabelled) == ((3, 30, 20), 2, 7, True)
    assert not _described_as_loaded("image_folder", str(folder), image_size=16, limit=6).unlabelled

    pq.write_table(pa.table({"image": [png_bytes(v) for v in (1, 2, 3)], "label": [0, 4, None]}),
                   tmp_path / "labels.parquet")
    info = _described_as_loaded("parquet", str(tmp_path / "labels.parquet"))
    assert (info.clean_shape, info.num_classes, info.n_images, info.unlabelled) == ((1, 8, 8), 5, 3, True)
    assert not _described_as_loaded("parquet", str(tmp_path / "labels.parquet"), image_size=4, limit=2).unlabelled
    (tmp_path / "parts").mkdir()
    for i in range(2):
        pq.write_table(pa.table({"image": [list(range(16))] * 3}), tmp_path / "parts" / f"{i}.parquet")
    assert _described_as_loaded("parquet", str(tmp_path / "parts"), limit=4).n_images == 4


def test_describe_refuses_what_load_source_refuses(tmp_path):
    fake_mnist(tmp_path)
    for kwargs, message in [
        ({"name": "mnist", "root": "/no/such/dir"}, "/no/such/dir does not exist"),
        ({"name": "cifar", "root": None}, "unknown data source 'cifar'"),
        ({"name": "mnist", "root": str(tmp_path), "image_size": 32}, "data.image_size=32"),
        ({"name": "mnist", "root": str(tmp_path), "limit": 0}, "data.limit=0 must be >= 1"),
        ({"name": "image_folder", "root": str(tmp_path)}, "no images"),
    ]:
        with pytest.raises(DataSourceError, match=re.escape(message)):
            describe_source(**kwargs)


def _bad_column(tmp_path):
    pq.write_table(pa.table({"image": ["not", "images"]}), tmp_path / "strings.parquet")
    return "parquet", str(tmp_path / "strings.parquet"), r"strings.parquet: the 'image' column holds string", {}


def _bad_labels(tmp_path):
    pq.write_table(pa.table({"image": [png_bytes(1)], "label": [0.5]}), tmp_path / "floats.parquet")
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

