"""Restoring lossy data for the `unmeasure` baseline, which then trains a plain GAN on the restoration.

The blocking measurements (Block-Pixel, Block-Patch, Keep-Patch) are inpainted with OpenCV's Telea or
Navier-Stokes method over the pixels the measurement destroyed, as the AmbientGAN reproduction did;
Convolve+Noise is deconvolved with scikit-image's Wiener filter and the known blur kernel. Plain
numpy/torch: no Ray.

OpenCV and scikit-image are imported by the functions that use them: the config imports this module for its
lists, and neither the config (the CLI's first import) nor the per-worker training loop should load OpenCV.
"""

from __future__ import annotations

import numpy as np
import torch

from gansweep.nets.measurements import ConvolveNoise, Measurement, MeasurementError

RESTORABLE = ("block_pixel", "block_patch", "keep_patch", "convolve_noise")  # the measurements mode unmeasure takes
INPAINT_FLAGS = {"telea": "INPAINT_TELEA", "navier_stokes": "INPAINT_NS"}  # unmeasure.inpaint: OpenCV's flag
INPAINT_METHODS = tuple(INPAINT_FLAGS)


def check_restorable(name: str) -> None:
    if name not in RESTORABLE:
        raise MeasurementError(
            f"measurement.name={name} has no restoration: mode=unmeasure supports {', '.join(RESTORABLE)}"
        )


def restore(measurement: Measurement, y: torch.Tensor, theta: dict, inpaint: str = "telea", radius: int = 3) -> np.ndarray:
    """The restored batch (N, C, H, W), float32 in [0, 1], of lossy y = measure(x, theta)."""
    check_restorable(measurement.name)
    y = y.detach().cpu()
    if isinstance(measurement, ConvolveNoise):
        return _deconvolve(measurement, y.numpy())
    lost = measurement.lost_mask(y, theta).expand_as(y)
    return _inpaint(y.numpy(), lost.numpy(), inpaint, radius)


def _inpaint(y: np.ndarray, lost: np.ndarray, method: str, radius: int) -> np.ndarray:
    import cv2  # here, not at the top: see the module's docstring

    flag = getattr(cv2, INPAINT_FLAGS[method])
    # OpenCV inpaints 8-bit images with one mask for all channels: a pixel is filled where any of its
    # channels was lost (its other channels are re-estimated from the neighbourhood too).
    images = np.round(np.clip(y, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # NHWC
    masks = lost.any(axis=1).astype(np.uint8)
    out = np.empty_like(images)
    for i, (image, mask) in enumerate(zip(images, masks)):
        filled = cv2.inpaint(image, mask, radius, flag)
        out[i] = filled.reshape(image.shape)  # cv2 drops the channel axis of one-channel images
    return out.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def _deconvolve(measurement: ConvolveNoise, y: np.ndarray) -> np.ndarray:
    from skimage.restoration import (
        wiener,  # here, not at the top: see the module's docstring
    )

    if measurement.kernel_1d is None:  # no blur: nothing to invert
        return np.clip(y, 0, 1).astype(np.float32)
    k = measurement.kernel_1d.numpy().astype(np.float64)
    psf = np.outer(k, k)
    # Wiener-Hunt with scikit-image's Laplacian smoothness prior; its balance is the noise-to-signal power
    # ratio, estimated from the lossy data alone (the noise std is known, the signal's variance is what is
    # left of y's): no clean image is looked at.
    noise_var = measurement.noise_std**2
    balance = noise_var / max(float(y.var()) - noise_var, 1e-6)
    # Edge padding, then crop: the FFT's circular boundary would otherwise mix opposite borders (the
    # measurement itself pads by replication).
    pad = 2 * measurement.half
    out = np.empty_like(y, dtype=np.float32)
    for i, image in enumerate(y):
        for c, channel in enumerate(image):
            padded = np.pad(channel.astype(np.float64), pad, mode="edge")
            out[i, c] = wiener(padded, psf, balance, clip=False)[pad:-pad, pad:-pad]
    return np.clip(out, 0, 1)
