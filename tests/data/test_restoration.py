"""The unmeasure baseline: restored lossy data is closer to the clean data than the lossy data is."""

import numpy as np
import pytest
import torch
from conftest import needs_fashion
from gansweep.config import ConfigError, load_config
from gansweep.data.restoration import restore
from gansweep.data.sources import load_source
from gansweep.data.training_set import load_training_set
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


def test_unmeasure_training_set_is_the_restored_lossy_set_cached_apart(tmp_path):
    common = [f"data.cache_dir={tmp_path}", "data.limit=300", "measurement.name=block_patch", "measurement.patch=10"]
    ignore = load_training_set(load_config(None, ["mode=ignore", *common]))
    unmeasure_cfg = load_config(None, ["mode=unmeasure", *common])
    restored = load_training_set(unmeasure_cfg)
    clean = load_training_set(load_config(None, ["mode=clean", *common])).images
    assert restored.fingerprint != ignore.fingerprint and restored.cache_path != ignore.cache_path
    assert restored.images.shape == clean.shape == ignore.images.shape
    assert 0 <= restored.images.min() and restored.images.max() <= 1
    assert _mse(restored.images, clean) < _mse(ignore.images, clean)
    # The same lossy set underneath: where nothing was lost, restored and lossy images agree.
    kept = ignore.images > 0
    assert np.abs(restored.images[kept] - ignore.images[kept]).max() <= 0.5 / 255 + 1e-6

    again = load_training_set(unmeasure_cfg)
    assert again.cache_path == restored.cache_path and np.array_equal(again.images, restored.images)
    other = load_config(None, ["mode=unmeasure", "unmeasure.inpaint=navier_stokes", *common])
    assert load_training_set(other).fingerprint != restored.fingerprint


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
