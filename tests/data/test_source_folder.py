"""Image folders (data/source_folder.py): classes from subfolders, the test split, grayscale and resizing, errors."""

from pathlib import Path

import numpy as np
import pytest
from gansweep.data.source_base import DataSourceError
from gansweep.data.sources import load_source, prepare_source
from source_files import solid_image

CLASS_COLOURS = {"zebra": 50, "ant": 10, "moose": 40, "cat": 20, "dog": 30}


def test_image_folder_classes_and_test_split(tmp_path):
    for name, color in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / name).mkdir()
        for i in range(3):
            solid_image(color).save(tmp_path / name / f"{i}.png")
    (tmp_path / "test" / "dogs").mkdir(parents=True)
    solid_image((0, 0, 255)).save(tmp_path / "test" / "dogs" / "0.jpg")

    train = load_source("image_folder", str(tmp_path))
    assert train.images.shape == (6, 3, 20, 20) and train.images.dtype == np.uint8 and train.num_classes == 2
    assert list(train.labels) == [0, 0, 0, 1, 1, 1]
    assert (train.images[0, 0] == 255).all() and (train.images[3, 2] == 255).all()
    assert list(load_source("image_folder", str(tmp_path), limit=2).labels) == [0, 0]  # first in sorted order
    test = load_source("image_folder", str(tmp_path), split="test")
    assert len(test.images) == 1 and list(test.labels) == [1] and test.num_classes == 2  # dogs is 1 in both
    assert "6 train and 1 test images" in prepare_source("image_folder", str(tmp_path))


def test_image_folder_unlabelled_grayscale_resizing_and_errors(tmp_path):
    solid_image(128, (20, 20), "L").save(tmp_path / "a.png")
    solid_image(64, (30, 24), "L").save(tmp_path / "b.png")
    with pytest.raises(DataSourceError, match=f"image_folder: {tmp_path}: images of different sizes.*data.image_size"):
        load_source("image_folder", str(tmp_path))
    arrays = load_source("image_folder", str(tmp_path), image_size=16)
    assert arrays.images.shape == (2, 1, 16, 16) and arrays.images[1].max() == 64
    assert list(arrays.labels) == [-1, -1] and arrays.num_classes == 0
    with pytest.raises(DataSourceError, match="has no test split"):
        load_source("image_folder", str(tmp_path), split="test")

    # The first image decides the colour (a streamed set cannot look at every image first).
    solid_image((0, 255, 0), (20, 20)).save(tmp_path / "c.png")
    assert load_source("image_folder", str(tmp_path), image_size=16).images.shape == (3, 1, 16, 16)
    solid_image((0, 255, 0), (20, 20)).save(tmp_path / "0.png")
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


def test_image_folder_labels_are_sorted_folder_indices(tmp_path):
    for name, red in CLASS_COLOURS.items():
        (tmp_path / name).mkdir()
        for i in range(2):
            solid_image((red, i, 0)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "test" / "zebra").mkdir(parents=True)  # only the last class in the test split
    solid_image((CLASS_COLOURS["zebra"], 100, 0)).save(tmp_path / "test" / "zebra" / "0.png")

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
        solid_image(i, (4, 4), "L").save(tmp_path / f"{i:03d}.png")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = len(os.listdir("/proc/self/fd")) + 40  # far fewer open files than the 120 images
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(allowed, hard), hard))
    try:
        arrays = load_source("image_folder", str(tmp_path))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert arrays.images.shape == (120, 1, 4, 4) and arrays.images[119, 0, 0, 0] == 119

