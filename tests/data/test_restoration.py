"""The unmeasure baseline: restored lossy data is closer to the clean data than the lossy data is."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import needs_fashion
from gansweep.config.checks import validate
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.data.restoration import restore
from gansweep.data.sources import describe_source, load_source
from gansweep.run.training_set import (
    RESTORED_MARKER,
    fingerprint,
    prepare_training_set,
    read_training_set,
    restore_training_set,
    restored_folder,
)
from gansweep.nets.measurements import (
    BlockPatch,
    BlockPixel,
    ConvolveNoise,
    ExtractPatch,
    KeepPatch,
    MeasurementError,
)

pytestmark = needs_fashion


@pytest.fixture(scope="module")
def clean():
    return torch.from_numpy(load_source("fashion_mnist", None, split="train", limit=64).images).float() / 255


def _mse(a, b) -> float:
    return float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))


@pytest.mark.parametrize("inpaint", ["telea", "navier_stokes"])
@pytest.mark.parametrize("measurement", [BlockPatch(14), BlockPixel(0.5)], ids=["block_patch", "block_pixel"])
def test_inpainting_restores_closer_than_the_lossy_images(clean, measurement, inpaint):
    theta = measurement.sample_theta(clean, torch.Generator().manual_seed(0))
    lossy = measurement.measure(clean, theta)
    restored = restore(measurement, lossy, theta, inpaint=inpaint)
    assert restored.shape == clean.shape and restored.dtype == np.float32
    assert 0 <= restored.min() and restored.max() <= 1
    assert _mse(restored, clean) < 0.6 * _mse(lossy, clean)
    # Known pixels are kept (up to the 8-bit round trip OpenCV works in).
    kept = ~measurement.lost_mask(lossy, theta).expand_as(lossy).bool().numpy()
    assert np.abs(restored[kept] - lossy.numpy()[kept]).max() <= 0.5 / 255 + 1e-6


def test_wiener_deconvolution_restores_closer_than_the_blurred_noisy_images(clean):
    measurement = ConvolveNoise(blur_radius=1.0, noise_std=0.1)
    theta = measurement.sample_theta(clean, torch.Generator().manual_seed(0))
    lossy = measurement.measure(clean, theta)
    restored = restore(measurement, lossy, theta)
    assert restored.shape == clean.shape and 0 <= restored.min() and restored.max() <= 1
    assert _mse(restored, clean) < 0.9 * _mse(lossy.clamp(0, 1), clean)


def test_keep_patch_inpaints_everything_outside_the_patch(clean):
    measurement = KeepPatch(14)
    theta = measurement.sample_theta(clean, torch.Generator().manual_seed(0))
    restored = restore(measurement, measurement.measure(clean, theta), theta)
    outside = measurement.lost_mask(clean, theta).expand_as(clean).bool().numpy()
    assert restored[outside].mean() > 0.05  # filled from the patch's border, no longer black


def test_measurements_without_restoration_are_refused(clean):
    measurement = ExtractPatch(7)
    theta = measurement.sample_theta(clean, torch.Generator().manual_seed(0))
    with pytest.raises(MeasurementError, match="block_pixel, block_patch, keep_patch, convolve_noise"):
        restore(measurement, measurement.measure(clean, theta), theta)


def _prepared(cfg):
    source = describe_source(cfg.data.name, cfg.data.root, cfg.data.image_size, cfg.data.limit)
    return prepare_training_set(cfg, validate(cfg), source)


def test_unmeasure_training_set_is_the_restored_lossy_set_cached_apart(tmp_path):
    import ray

    common = [f"data.cache_dir={tmp_path}", "data.limit=300", "measurement.name=block_patch", "measurement.patch=10"]
    ignore = _prepared(load_config(None, ["mode=ignore", *common]))
    unmeasure_cfg = load_config(None, ["mode=unmeasure", *common])
    pending = _prepared(unmeasure_cfg)
    assert pending.restoration == {"inpaint": "telea", "radius": 3} and pending.restored_path is None
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        restored = restore_training_set(unmeasure_cfg, pending)
        folder = Path(restored.restored_path)
        parts = sorted(folder.glob("part-*.parquet"))
        mtimes = [part.stat().st_mtime_ns for part in parts]
        again = restore_training_set(unmeasure_cfg, _prepared(unmeasure_cfg))  # found restored: no Ray job
        same = restore_training_set(unmeasure_cfg, restored)
    finally:
        ray.shutdown()
    assert str(folder) == restored_folder(unmeasure_cfg) and parts and (folder / RESTORED_MARKER).is_file()
    assert restored.fingerprint != ignore.fingerprint and restored.restoration is None
    assert restored.n_images == ignore.n_images == 300 and restored.sample_shape == restored.clean_shape
    assert restored.stream.measurement is None  # streamed as read: measured and restored once, not per step

    images, labels = read_training_set(restored)
    lossy, lossy_labels = read_training_set(ignore)
    clean, clean_labels = read_training_set(_prepared(load_config(None, ["mode=clean", *common])))
    assert images.shape == clean.shape == lossy.shape == (300, 1, 28, 28) and images.dtype == np.float32
    assert np.array_equal(labels, clean_labels) and np.array_equal(lossy_labels, clean_labels)
    assert 0 <= images.min() and images.max() <= 1
    assert _mse(images, clean) < _mse(lossy, clean)
    # The same lossy set underneath: where nothing was lost, restored and lossy images agree, up to the 8-bit
    # round trip of inpainting and the restored set's uint8 pixels.
    kept = lossy > 0
    assert np.abs(images[kept] - lossy[kept]).max() <= 0.5 / 255 + 1e-6

    # Restored once: found again (the same folder, its files untouched) by a new run's prepare_training_set.
    for training_set in (again, same, _prepared(unmeasure_cfg)):
        assert training_set.restored_path == str(folder) and training_set.restoration is None
    assert [part.stat().st_mtime_ns for part in sorted(folder.glob("part-*.parquet"))] == mtimes
    assert np.array_equal(read_training_set(again)[0], images)
    other = load_config(None, ["mode=unmeasure", "unmeasure.inpaint=navier_stokes", *common])
    assert fingerprint(other) != restored.fingerprint and restored_folder(other) != str(folder)
    assert _prepared(other).restoration is not None  # not restored yet: its own set


def test_unmeasure_with_a_measurement_that_has_no_restoration_is_rejected():
    with pytest.raises(ConfigError, match="extract_patch has no restoration"):  # as the config loads
        load_config(None, ["mode=unmeasure", "measurement.name=extract_patch"])


@pytest.mark.parametrize("override, message", [
    ("unmeasure.inpaint=foo", "unmeasure.inpaint='foo' is not one of telea, navier_stokes"),
    ("unmeasure.inpaint_radius=0", "unmeasure.inpaint_radius=0 must be >= 1"),
])
def test_bad_restoration_settings_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, ["mode=unmeasure", "measurement.name=block_pixel", override])


def test_unmeasure_needs_a_measurement():
    with pytest.raises(ConfigError, match="mode=unmeasure trains on lossy data"):
        load_config(None, ["mode=unmeasure", "measurement.name=none"])
