"""The evaluation protocol's metrics: FID, KID, PRDC (more in test_prdc.py), classifier score, nearest-neighbour pixel
distance."""


import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import needs_fashion
from gansweep.data.sources import load_source
from gansweep.evaluation.classifier import load_or_train_classifier
from gansweep.evaluation.metrics import (
    PROTOCOL_FIELDS,
    classifier_outputs,
    classifier_score,
    evaluate_samples,
    frechet_distance,
    kernel_inception_distance,
    nearest_neighbour_distance,
    precision_recall_density_coverage,
)
from torch import nn


class Identity(nn.Module):
    """A torchmetrics 'feature network' that passes feature vectors through."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


class Features(nn.Module):
    """The domain classifier's penultimate features, as a torchmetrics feature network."""

    def __init__(self, model):
        super().__init__()
        self.model, self.num_features = model, model.feature_dim

    def forward(self, x):
        return self.model.features(x)


def direct_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy.linalg.sqrtm."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² written out with loops over pairs (tiny sets only)."""
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def random_features(seed: int, n: int, d: int = 16, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


# --- FID -----------------------------------------------------------------------------------------


def test_frechet_distance_matches_scipy_sqrtm():
    a, b = random_features(0, 500), random_features(1, 700, shift=0.3)
    assert frechet_distance(a, b) == pytest.approx(direct_fid(a, b), rel=1e-8)
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        direct_fid(a, b), rel=1e-5
    )
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)


def test_frechet_distance_of_gaussians_with_known_distance():
    # N(0, I) against N(m, 4I) in d dims: |m|² + d (1 + 4 - 2·2) = |m|² + d, up to sampling error.
    rng = np.random.default_rng(0)
    d, n = 4, 200_000
    a = rng.normal(size=(n, d))
    b = 2 * rng.normal(size=(n, d)) + 1.0
    assert frechet_distance(a, b) == pytest.approx(d + d, rel=0.02)


def test_frechet_distance_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = random_features(2, 400), random_features(3, 300, shift=-0.5)
    metric = FrechetInceptionDistance(feature=Identity(16))
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    assert frechet_distance(a, b) == pytest.approx(float(metric.compute()), rel=1e-6)


def test_frechet_distance_handles_singular_covariances_and_checks_inputs():
    a, b = random_features(4, 10, d=32), random_features(5, 12, d=32)  # fewer samples than features
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value == pytest.approx(direct_fid(a, b), rel=1e-4)
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :8])
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


# --- KID -----------------------------------------------------------------------------------------


def test_kid_matches_direct_unbiased_mmd_and_torchmetrics():
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = random_features(6, 30, d=5), random_features(7, 30, d=5, shift=0.4)
    mean, std = kernel_inception_distance(a, b, subsets=1, subset_size=30)  # the whole sets, in any order
    assert mean == pytest.approx(direct_mmd2(a, b), rel=1e-9) and std == 0.0

    a, b = random_features(8, 300), random_features(9, 300, shift=0.2)
    metric = KernelInceptionDistance(feature=Identity(16), subsets=1, subset_size=300)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    theirs, _ = metric.compute()
    assert kernel_inception_distance(a, b, subsets=1, subset_size=300)[0] == pytest.approx(float(theirs), rel=1e-6)


def test_kid_subsets_are_seeded_and_capped():
    a, b = random_features(10, 400), random_features(11, 250, shift=0.2)
    first = kernel_inception_distance(a, b, subsets=5, subset_size=100, seed=3)
    assert first == kernel_inception_distance(a, b, subsets=5, subset_size=100, seed=3)
    assert first != kernel_inception_distance(a, b, subsets=5, subset_size=100, seed=4)
    assert first[1] > 0
    capped = kernel_inception_distance(a, b, subsets=2, subset_size=10_000)  # capped at 250
    assert np.isfinite(capped[0])


# --- classifier score ----------------------------------------------------------------------------


def test_classifier_score_of_synthetic_probabilities():
    k = 10
    one_hot = np.eye(k)[np.arange(1000) % k]
    assert classifier_score(one_hot) == pytest.approx(k, rel=1e-12)
    # Confident (not exactly one-hot) predictions spread evenly over the classes: close to K.
    rng = np.random.default_rng(0)
    logits = 12.0 * np.eye(k)[rng.integers(0, k, 5000)] + rng.normal(size=(5000, k))
    assert 9.0 < classifier_score(logits) <= k
    assert classifier_score(torch.from_numpy(logits)) == pytest.approx(classifier_score(logits), rel=1e-12)
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    assert classifier_score(probs) == pytest.approx(classifier_score(logits, probs=False), rel=1e-9)
    # One class for everything, or the same prediction everywhere: exactly 1.
    assert classifier_score(np.tile(np.eye(k)[3], (50, 1))) == pytest.approx(1.0, abs=1e-12)
    assert classifier_score(np.tile(rng.normal(size=(1, k)), (50, 1))) == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_uses_all_samples_and_splits_disjointly():
    k = 4
    # Half the samples say class 0, half class 1: over all of them the score is 2; in two chunks
    # (one per half) each chunk predicts a single class, so each scores 1.
    probs = np.concatenate([np.tile(np.eye(k)[0], (100, 1)), np.tile(np.eye(k)[1], (100, 1))])
    assert classifier_score(probs) == pytest.approx(2.0, rel=1e-12)
    mean, std = classifier_score(probs, splits=2)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    # Alternating classes: each chunk holds both, so each scores 2 as well.
    alternating = probs[np.arange(200).reshape(2, 100).T.ravel()]
    assert classifier_score(alternating) == pytest.approx(2.0, rel=1e-12)
    mean, std = classifier_score(alternating, splits=2)
    assert mean == pytest.approx(2.0) and std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        classifier_score(probs, splits=0)


# --- nearest neighbour ---------------------------------------------------------------------------


def test_nearest_neighbour_distance_matches_a_brute_force_loop():
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(13, 1, 4, 4, generator=gen)
    samples = torch.rand(7, 1, 4, 4, generator=gen)
    expected = np.mean([min(float((s - t).double().pow(2).sum().sqrt()) for t in train) for s in samples])
    assert nearest_neighbour_distance(samples, train) == pytest.approx(expected, rel=1e-10)
    # Chunked over samples and over training images: the same.
    assert nearest_neighbour_distance(samples, train, batch=2, train_batch=3) == pytest.approx(expected, rel=1e-10)
    # uint8 images are read as intensities / 255.
    as_bytes = (train * 255).round().to(torch.uint8)
    assert nearest_neighbour_distance(as_bytes[:3], as_bytes) == 0.0


def test_nearest_neighbour_distance_over_streamed_batches_matches_the_set_in_memory():
    gen = torch.Generator().manual_seed(2)
    train = (torch.rand(50, 1, 6, 6, generator=gen) * 255).round().to(torch.uint8)
    samples = torch.rand(9, 1, 6, 6, generator=gen)
    whole = nearest_neighbour_distance(samples, train)
    bounds = [0, 7, 8, 28, 28, 50]  # uneven batches, one of them empty

    def batches(scale):
        for lo, hi in zip(bounds, bounds[1:]):
            yield train[lo:hi].numpy() if scale is None else train[lo:hi].float() / scale

    # Each batch is read once (a generator), uint8 or in [0, 1], and every sample keeps its running minimum.
    assert nearest_neighbour_distance(samples, batches(None), batch=4) == pytest.approx(whole, rel=1e-12)
    assert nearest_neighbour_distance(samples, batches(255.0)) == pytest.approx(whole, rel=1e-12)
    assert nearest_neighbour_distance(train[10:13], batches(None)) == 0.0
    with pytest.raises(ValueError, match="at least one sample and one training image"):
        nearest_neighbour_distance(samples, iter([]))
    with pytest.raises(ValueError, match="pixels"):
        nearest_neighbour_distance(samples, [train[:5, :, :3]])


def test_nearest_neighbour_distance_is_zero_on_training_images_and_positive_otherwise():
    gen = torch.Generator().manual_seed(1)
    train = torch.rand(3000, 1, 28, 28, generator=gen)
    picks = train[torch.randperm(3000, generator=gen)[:500]]
    assert nearest_neighbour_distance(picks, train, batch=128, train_batch=1000) == 0.0
    noisy = (picks + 0.01 * torch.randn(picks.shape, generator=gen)).clamp(0, 1)
    assert nearest_neighbour_distance(noisy, train) > 0.1
    with pytest.raises(ValueError, match="to_unit"):
        nearest_neighbour_distance(picks * 2 - 1, train)


# --- on the domain classifier's features ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory):
    # ~84% test accuracy in a few seconds: confident enough for a classifier score well above 5.
    cache = tmp_path_factory.mktemp("cache")
    return load_or_train_classifier("fashion_mnist", None, seed=0, epochs=2, limit=6000, progress=False, cache_dir=cache)


@pytest.fixture(scope="module")
def fashion():
    test = torch.from_numpy(load_source("fashion_mnist", None, split="test").images).float() / 255
    train = torch.from_numpy(load_source("fashion_mnist", None, split="train", limit=10_000).images).float() / 255
    return test, train


@pytest.fixture(scope="module")
def features(small_classifier, fashion):
    test, train = fashion
    noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(0))
    model = small_classifier.model
    return {name: classifier_outputs(model, x) for name, x in (("test", test), ("train", train), ("noise", noise))}


@needs_fashion
def test_fid_on_classifier_features(features):
    test, train, noise = features["test"][0], features["train"][0], features["noise"][0]
    to_noise = frechet_distance(test, noise)
    assert frechet_distance(test, test) < 1e-3 * np.trace(np.cov(test, rowvar=False))
    assert frechet_distance(test, test) < 1e-6 * to_noise
    to_train = frechet_distance(test, train)
    assert to_train > 0
    assert to_noise > 100 * to_train, (to_train, to_noise)


@needs_fashion
def test_fid_and_kid_on_images_match_torchmetrics_with_the_classifier_as_feature_network(small_classifier, fashion):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    test, train = fashion
    real, fake = test[:800], train[:800]
    ours_real = classifier_outputs(small_classifier.model, real)[0]
    ours_fake = classifier_outputs(small_classifier.model, fake)[0]
    net = Features(small_classifier.model).eval()
    fid = FrechetInceptionDistance(feature=net)
    # One subset of all 800 of each set: torchmetrics' own random draw is then only a reordering.
    kid = KernelInceptionDistance(feature=net, subsets=1, subset_size=800)
    with torch.no_grad():
        for metric in (fid, kid):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        theirs_fid, theirs_kid = float(fid.compute()), float(kid.compute()[0])
    assert frechet_distance(ours_fake, ours_real) == pytest.approx(theirs_fid, rel=1e-3)  # theirs is float32
    ours_kid = kernel_inception_distance(ours_fake, ours_real, subsets=1, subset_size=800)[0]
    assert ours_kid == pytest.approx(theirs_kid, rel=1e-3)


@needs_fashion
def test_kid_on_classifier_features(features):
    test, noise = features["test"][0], features["noise"][0]
    halves, halves_std = kernel_inception_distance(test[:5000], test[5000:], subsets=10, subset_size=1000)
    to_noise, _ = kernel_inception_distance(test, noise, subsets=10, subset_size=1000)
    assert to_noise > 0
    assert abs(halves) < 1e-2 * to_noise, (halves, to_noise)
    assert abs(halves) < 4 * halves_std + 1e-12  # zero within its spread


@needs_fashion
def test_prdc_on_classifier_features(features):
    test, noise = features["test"][0], features["noise"][0]
    real = test[:3000]
    halves = precision_recall_density_coverage(real, test[5000:8000])
    assert min(halves["precision"], halves["recall"], halves["coverage"]) > 0.8, halves
    assert halves["density"] == pytest.approx(1.0, abs=0.2), halves
    # One test image's features, repeated: realistic (precision 1) but no diversity (recall and coverage near 0).
    collapsed = precision_recall_density_coverage(real, np.tile(test[5000:5001], (3000, 1)))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] == 0.0, collapsed
    assert collapsed["coverage"] < 0.01, collapsed
    # Noise images lie off the real support, in one tight cluster of features. Precision need not show it: one real
    # outlier's large ball can hold the whole cluster (here about half of it); density (about one ball per fake,
    # of k = 5) and coverage do, which is why Naeem et al. proposed them.
    off = precision_recall_density_coverage(real, noise[:3000])
    assert off["recall"] < 0.05 and off["density"] < 0.25 and off["coverage"] < 0.01, off


@needs_fashion
def test_classifier_score_on_real_test_images(features, small_classifier):
    logits = features["test"][1]
    score = classifier_score(logits)
    assert 5.0 < score <= 10.0, score
    mean, std = classifier_score(logits, splits=10)
    assert 5.0 < mean <= 10.0 and std >= 0.0
    repeated = np.tile(logits[:1], (500, 1))
    assert classifier_score(repeated) == pytest.approx(1.0, abs=1e-9)


@needs_fashion
def test_evaluate_samples_reports_the_protocol(small_classifier, fashion):
    test, train = fashion
    real = classifier_outputs(small_classifier.model, test[:2000])[0]  # the reference split's features
    fake_from_train = train[:300]
    result = evaluate_samples(fake_from_train, real, train, small_classifier)
    assert set(result) == set(PROTOCOL_FIELDS)
    assert result["n_fake"] == 300 and result["n_real"] == 2000
    assert result["reference_split"] == "test"
    assert result["classifier_fingerprint"] == small_classifier.fingerprint
    assert result["classifier_test_accuracy"] == small_classifier.test_accuracy
    assert result["nn_pixel_distance"] == 0.0  # the samples are training images
    for key in ("fid", "kid", "kid_std", "classifier_score"):
        assert np.isfinite(result[key]), key
    assert result["kid_std"] > 0  # 300 of 300 fakes against 300 of 2000 reals: subsets differ
    # PRDC on 300 reals (drawn with the seed) against the 300 fakes, on the classifier's device.
    assert result["prdc_k"] == 5 and result["prdc_n"] == 300
    picked = real[np.sort(np.random.default_rng(0).choice(2000, 300, replace=False))]
    expected = precision_recall_density_coverage(picked, classifier_outputs(small_classifier.model, fake_from_train)[0])
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert min(result["precision"], result["recall"], result["coverage"]) > 0.5, result

    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    streamed = (train[start : start + 3000] for start in range(0, len(train), 3000))  # as evaluate_run streams it
    bad = evaluate_samples(noise, real, streamed, small_classifier, reference_split="test")
    assert bad["n_fake"] == 200 and bad["n_real"] == 2000
    assert bad["fid"] > 10 * result["fid"] and bad["kid"] > 10 * result["kid"]
    assert bad["nn_pixel_distance"] > 1.0
    assert bad["prdc_n"] == 200 and bad["density"] < 0.5 * result["density"] and bad["coverage"] < 0.1, bad
    with pytest.raises(ValueError, match="to_unit"):
        evaluate_samples(noise * 2 - 1, real, train, small_classifier)


def test_the_classifier_gets_its_batches_on_its_own_device_in_full_precision():
    """Samples on one device (a GPU trial's generator), classifier on another (the meta device stands for it): every
    batch reaches the classifier where its weights are, with TF32 off."""
    seen = []

    class Spy(torch.nn.Module):
        in_channels = 1

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1, device="meta"))

        def features_and_logits(self, x):
            seen.append((x.device.type, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return torch.zeros(len(x), 4), torch.zeros(len(x), 3)

    feats, logits = classifier_outputs(Spy(), torch.rand(7, 1, 8, 8), batch=3)
    assert feats.shape == (7, 4) and logits.shape == (7, 3)
    assert seen == [("meta", False, False)] * 3
    assert torch.backends.cudnn.allow_tf32  # restored: training keeps cuDNN's default
