"""The cache's root (data.cache_dir, else $GANSWEEP_CACHE, else ~/.cache/gansweep; a folder or a URI) and where each
cached thing lies in it."""

from pathlib import Path

from gansweep.data import cache


def test_the_root_is_data_cache_dir_else_the_environment_else_the_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.root() == str(tmp_path / "home" / ".cache" / "gansweep")
    assert not cache.is_set() and not cache.is_set("")

    monkeypatch.setenv(cache.ENV, str(tmp_path / "env"))
    assert cache.root() == cache.root(None) == cache.root("") == str(tmp_path / "env")
    assert cache.is_set()

    assert cache.root(tmp_path / "configured") == str(tmp_path / "configured")  # data.cache_dir wins
    assert cache.is_set(tmp_path / "configured")


def test_the_root_may_be_a_uri_or_a_relative_or_file_path(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, "s3://bucket/cache/")
    assert cache.root() == "s3://bucket/cache"  # normalized as storage does: a URI without its trailing slash
    assert cache.root("gs://other/c") == "gs://other/c"
    monkeypatch.chdir(tmp_path)
    assert cache.root("relative") == str(tmp_path / "relative")
    assert cache.root(f"file://{tmp_path}/c") == str(tmp_path / "c")


def test_each_cached_thing_has_its_place_below_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "env"))
    local = tmp_path / "configured"
    assert cache.prepared_file("mnist", "abc", "test", local) == str(local / "prepared" / "mnist-abc" / "test.parquet")
    assert cache.torchvision_folder(local) == str(local / "torchvision")
    assert cache.restored_folder("parquet", "f1", local) == str(local / "restored" / "parquet-f1")
    assert cache.classifier_folder("fashion_mnist", "f2", local) == str(local / "classifiers" / "fashion_mnist-f2")
    assert cache.reference_file("image_folder", "inception", "k", local) == str(
        local / "reference" / "image_folder-inception-k.npz")
    # Without data.cache_dir: under $GANSWEEP_CACHE; on object storage: URIs joined with '/'.
    assert Path(cache.restored_folder("mnist", "f")) == tmp_path / "env" / "restored" / "mnist-f"
    monkeypatch.setenv(cache.ENV, "s3://bucket/cache")
    assert cache.classifier_folder("mnist", "f") == "s3://bucket/cache/classifiers/mnist-f"
    assert cache.prepared_file("mnist", "k", "train") == "s3://bucket/cache/prepared/mnist-k/train.parquet"
