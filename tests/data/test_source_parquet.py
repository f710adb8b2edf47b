"""Parquet sources (data/source_parquet.py): encoded images and pixel lists, bad columns, a corrupt image named by
its row."""


import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import load_source, prepare_source
from source_files import png_bytes


def test_parquet_encoded_images(tmp_path):
    pq.write_table(pa.table({"image": [png_bytes(10), png_bytes(20)], "label": [3, 1]}), tmp_path / "png.parquet")
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
        structs = [{"bytes": png_bytes(v, mode="RGB" if v == 60 else "L"), "path": f"{v}.png"} for v in values]
        pq.write_table(pa.table({"image": structs}), folder / f"part-{i}.parquet")
    pq.write_table(pa.table({"image": [{"bytes": png_bytes(70), "path": "t.png"}]}), folder / "test" / "t.parquet")
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
    images = [png_bytes(i % 256) for i in range(400)]
    images[300] = b"not a png"  # row 44 of the second row group
    pq.write_table(pa.table({"image": images}), tmp_path / "corrupt.parquet", row_group_size=256)
    with pytest.raises(DataSourceError, match=r"corrupt.parquet row 300: cannot decode the image"):
        load_source("parquet", str(tmp_path))

