"""The evaluation protocol's metrics, on the domain classifier's penultimate features.

FID, KID (unbiased polynomial-kernel MMD²), precision, recall, density and coverage (k-NN supports:
Kynkäänniemi et al. 2019, Naeem et al. 2020; FID alone cannot tell a collapsed generator from a blurry
one), the classifier score (the Inception-score formula on the classifier's softmax) and the
nearest-neighbour pixel distance to the training set. Generated samples are compared with the clean test
split, and every figure ``evaluate_samples`` reports carries n_real, n_fake, the reference split and the
classifier's fingerprint and test accuracy.

The formulas are written out here rather than taken from torchmetrics' FrechetInceptionDistance and
KernelInceptionDistance (the tests check them against both): the features of a set are computed once
and shared by FID, KID, PRDC and the classifier score, where each torchmetrics metric would run the network
again; torchmetrics' FID casts its result back to the features' float32 and takes the square root of
the non-symmetric Sa·Sb through a general eigen-decomposition, where here everything is float64 and the
trace comes from the symmetric PSD sqrt(Sa)·Sb·sqrt(Sa); and its KID draws subsets from the global
torch RNG, where here they come from an explicit seed, so a figure is reproducible on its own.

Precision, recall, density and coverage follow the `prdc` package's compute_prdc (Naeem et al.'s own code; the
tests check them against it) but are written out in torch: prdc computes on the CPU with numpy and scikit-learn
(a dependency the platform otherwise does without) and holds the three full distance matrices at once (real-real,
fake-fake, real-fake: 2.4 GB in float64 for the protocol's 10,000 samples), where here the distances are
computed in float64 blocks of rows on the features' device (a GPU evaluation's, when there is one), so memory
stays at a block x N matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.special import xlogy

from gansweep.gan.runtime import full_precision

if TYPE_CHECKING:
    from gansweep.evaluation.classifier import ClassifierRecord

FEATURE_BATCH = 500
PRDC_K = 5  # Naeem et al.'s k for precision, recall, density and coverage
PRDC_BLOCK = 1024  # rows of a distance block: PRDC_BLOCK x N float64 at a time
PROTOCOL_FIELDS = (
    "fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "prdc_k", "prdc_n",
    "classifier_score", "nn_pixel_distance", "n_fake", "n_real",
    "reference_split", "classifier_fingerprint", "classifier_test_accuracy",
)


def _as_float64(x, name: str) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    array = array.astype(np.float64, copy=False)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, F) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: features contain NaN or inf")
    return array


def _check_pair(a: np.ndarray, b: np.ndarray, minimum: int) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    if len(a) < minimum or len(b) < minimum:
        raise ValueError(f"need at least {minimum} samples per set, got {len(a)} and {len(b)}")


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The square root of a symmetric positive semi-definite matrix (eigenvalues below zero, from rounding, clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64 of a feature set: all that FID needs of it."""
    a = _as_float64(feats, "feats")
    if len(a) < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {len(a)}")
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """||mu_a - mu_b||² + Tr(Sa + Sb - 2 sqrtm(Sa Sb)) between two Gaussians.

    In float64. Tr sqrtm(Sa Sb) is the sum of the square roots of the eigenvalues of the symmetric PSD
    matrix sqrt(Sa) Sb sqrt(Sa) (similar to Sa Sb), so no complex parts or non-symmetric solvers are
    involved and singular covariances (fewer samples than features) are fine.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature dimensions differ: {mu_a.shape[0]} and {mu_b.shape[0]}")
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_sqrt)
    return max(value, 0.0)  # a distance: rounding can leave -1e-12 when the sets coincide


def frechet_distance(feats_a, feats_b) -> float:
    """FID between Gaussians fitted to two feature sets (N, F)."""
    a, b = _as_float64(feats_a, "feats_a"), _as_float64(feats_b, "feats_b")
    _check_pair(a, b, 2)
    return frechet_distance_from_statistics(*feature_statistics(a), *feature_statistics(b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
    feats_a, feats_b, subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: the unbiased MMD² with k(x, y) = (x·y/d + 1)³, mean and (population) std over `subsets`
    random subsets of min(subset_size, len(a), len(b)) samples of each set, drawn without replacement
    from numpy's generator seeded with `seed`. Can be slightly negative when the sets match."""
    if subsets < 1:
        raise ValueError(f"subsets={subsets} must be >= 1")
    a, b = _as_float64(feats_a, "feats_a"), _as_float64(feats_b, "feats_b")
    _check_pair(a, b, 2)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"subset_size={subset_size} must be >= 2")
    rng = np.random.default_rng(seed)
    scores = np.array([
        _unbiased_mmd2(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
        for _ in range(subsets)
    ])
    return float(scores.mean()), float(scores.std())


def _feature_tensor(x, name: str, device) -> torch.Tensor:
    """X checked as every feature set is (_as_float64), as a float64 tensor of its own on DEVICE (a copy: a cached
    set may be read-only)."""
    return torch.tensor(_as_float64(x, name), device=device)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Every pair's distance in the matrix-product form: fast, good for ranking; an exact distance is recomputed
    from the differences."""
    return torch.cdist(a, b, compute_mode="use_mm_for_euclid_dist")


def knn_radii(feats: torch.Tensor, k: int, block: int = PRDC_BLOCK) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point of the same (N, F) float64 set: the (k+1)-th smallest
    distance with the point itself counted (so an exact duplicate is a neighbour at distance 0), as prdc has it.
    The neighbour is ranked on block x N matrix-product distances and its distance recomputed from the
    differences, so duplicates give exactly 0."""
    radii = torch.empty(len(feats), dtype=torch.float64, device=feats.device)
    for start in range(0, len(feats), block):
        rows = feats[start : start + block]
        index = _distances(rows, feats).kthvalue(k + 1, dim=1).indices
        radii[start : start + block] = (rows - feats[index]).norm(dim=1)
    return radii


def precision_recall_density_coverage(
    real_feats, fake_feats, k: int = PRDC_K, block: int = PRDC_BLOCK, device=None
) -> dict[str, float]:
    """Naeem et al.'s (2020) precision, recall, density and coverage of fakes (N, F) against reals (M, F).

    A point's k-NN ball is centred on it with the distance to its k-th nearest other point of its own set
    (knn_radii) as radius; "inside" is strictly closer than the radius, as in prdc.compute_prdc.
    precision: the fraction of fakes inside some real's ball (Kynkäänniemi et al.'s precision);
    recall: the fraction of reals inside some fake's ball (Kynkäänniemi et al.'s recall);
    density: the number of real balls a fake lies in, averaged over fakes and divided by k (about 1 when the sets
    come from one distribution; above 1 where the fakes crowd into dense real regions);
    coverage: the fraction of reals whose ball holds at least one fake.
    A generator collapsed onto one point has recall and coverage near 0 however realistic that point is.

    In float64 on DEVICE (default: the real features' device, the CPU for arrays), the distances BLOCK rows at a
    time. The figures depend on the set sizes (more points, smaller balls): compare like with like;
    evaluate_samples uses equal numbers of reals and fakes, as Naeem et al. do."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    if block < 1:
        raise ValueError(f"block={block} must be >= 1")
    if device is None:
        device = real_feats.device if isinstance(real_feats, torch.Tensor) else "cpu"
    real = _feature_tensor(real_feats, "real_feats", device)
    fake = _feature_tensor(fake_feats, "fake_feats", device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} and {fake.shape[1]}")
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} samples per set, got {len(real)} and {len(fake)}")
    real_radii, fake_radii = knn_radii(real, k, block), knn_radii(fake, k, block)
    fake_inside = torch.zeros(len(fake), dtype=torch.bool, device=device)
    balls_per_fake = torch.zeros(len(fake), dtype=torch.int64, device=device)
    recalled = covered = 0
    for start in range(0, len(real), block):
        d = _distances(real[start : start + block], fake)  # (block, N)
        inside = d < real_radii[start : start + block, None]  # fake j in real i's ball
        fake_inside |= inside.any(0)
        balls_per_fake += inside.sum(0)
        covered += int(inside.any(1).sum())
        recalled += int((d < fake_radii[None, :]).any(1).sum())
    return {
        "precision": float(fake_inside.double().mean()),
        "recall": recalled / len(real),
        "density": float(balls_per_fake.sum()) / (k * len(fake)),
        "coverage": covered / len(real),
    }


def classifier_score(outputs, splits: int = 1, probs: bool | None = None) -> float | tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), the Inception-score formula, over all the samples given.

    `outputs` are (N, K) logits or probabilities; `probs=None` takes them as probabilities when every
    row is non-negative and sums to 1, as logits otherwise. With `splits` > 1 the samples are cut, in
    the order given, into that many disjoint chunks (p(y) estimated per chunk) and (mean, std) of the
    chunk scores is returned; with splits=1 a float. Between 1 (one class for everything, or the same
    prediction for every sample) and K.
    """
    if isinstance(outputs, torch.Tensor):
        x = outputs.detach().cpu().double()
    else:
        x = torch.as_tensor(np.asarray(outputs, dtype=np.float64))
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"expected (N, K) logits or probabilities, got shape {tuple(x.shape)}")
    if probs is None:
        probs = bool((x >= 0).all() and torch.allclose(x.sum(1), torch.ones(len(x), dtype=x.dtype), atol=1e-4))
    if probs:
        p = (x / x.sum(1, keepdim=True)).numpy()
    else:
        p = torch.softmax(x, dim=1).numpy()
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits={splits} must be between 1 and the number of samples ({len(p)})")

    def score(chunk: np.ndarray) -> float:
        marginal = chunk.mean(0, keepdims=True)
        kl = (xlogy(chunk, chunk) - xlogy(chunk, marginal)).sum(1)  # 0·log 0 = 0
        return float(np.exp(kl.mean()))

    if splits == 1:
        return score(p)
    scores = np.array([score(chunk) for chunk in np.array_split(p, splits)])
    return float(scores.mean()), float(scores.std())


def _flat_unit(x, name: str) -> torch.Tensor:
    return unit_images(x, name).flatten(1).double()


def nearest_neighbour_distance(samples, train_images, batch: int = 256, train_batch: int = 8192) -> float:
    """Mean over samples of the smallest L2 pixel distance ([0, 1] intensities) to any training image.

    TRAIN_IMAGES are an (N, C, H, W) array or tensor (uint8 or in [0, 1]), taken TRAIN_BATCH images at a time, or
    an iterable of such batches (the training split streamed: evaluation.reference.training_batches), read once:
    each sample keeps its running minimum, so the training set is never held whole. In each training batch the
    candidates are found with torch.cdist (matrix-product form, float64) over blocks of BATCH samples; the
    candidate's distance is then recomputed from the pixel differences, so a sample that is a training image scores
    exactly 0. On the samples' device (a GPU's float64 is still far faster than the CPU's).
    """
    x = _flat_unit(samples, "samples")
    if len(x) == 0:
        raise ValueError("need at least one sample and one training image")
    best = torch.full((len(x),), float("inf"), dtype=torch.float64, device=x.device)
    n_train = 0
    for chunk in _batches(train_images, train_batch):
        y = _flat_unit(chunk, "train_images").to(x.device)
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"samples have {x.shape[1]} pixels, training images {y.shape[1]}")
        n_train += len(y)
        if len(y) == 0:
            continue
        for start in range(0, len(x), batch):
            xb = x[start : start + batch]
            index = _distances(xb, y).argmin(1)
            best[start : start + batch] = torch.minimum(best[start : start + batch], (xb - y[index]).norm(dim=1))
    if n_train == 0:
        raise ValueError("need at least one sample and one training image")
    return float(best.sum()) / len(x)


def _batches(images, size: int) -> Iterator:
    """An (N, ...) array or tensor in batches of SIZE; any other iterable as it comes (already batches)."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        for start in range(0, len(images), size):
            yield images[start : start + size]
    else:
        yield from images


def unit_images(x, name: str) -> torch.Tensor:
    """(N, C, H, W) images as float32 in [0, 1], on the device they are on (an array: the CPU); uint8 is scaled by
    1/255."""
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach()
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    t = t.float()
    if t.numel() and (float(t.min()) < -1e-3 or float(t.max()) > 1 + 1e-3):
        raise ValueError(
            f"{name}: intensities must lie in [0, 1] (got [{float(t.min()):.3f}, {float(t.max()):.3f}]); "
            "map generator outputs in [-1, 1] with gansweep.nets.pixels.to_unit"
        )
    return t.clamp(0.0, 1.0)


@torch.no_grad()
def classifier_outputs(model: torch.nn.Module, images, batch: int = FEATURE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F), logits (N, K)) of the classifier in eval mode, as float64 arrays; the images are taken to the
    classifier's device batch by batch, and the features computed in full precision (no TF32 on a GPU)."""
    x = unit_images(images, "images")
    if x.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got shape {tuple(x.shape)}")
    in_channels = getattr(model, "in_channels", x.shape[1])
    if x.shape[1] != in_channels:
        raise ValueError(f"images have {x.shape[1]} channels, the classifier takes {in_channels}")
    was_training = model.training
    model.eval()
    feats, logits = [], []
    device = next(model.parameters()).device
    try:
        with full_precision():
            for start in range(0, len(x), batch):
                f, out = model.features_and_logits(x[start : start + batch].to(device))
                feats.append(f.double())
                logits.append(out.double())
    finally:
        model.train(was_training)
    return torch.cat(feats).cpu().numpy(), torch.cat(logits).cpu().numpy()


def feature_figures(
    fake_feats, real_feats, kid_subsets: int = 10, kid_subset_size: int = 1000, seed: int = 0, device=None
) -> dict:
    """FID, KID and its std, precision, recall, density and coverage of fakes against reals on one feature network's
    features (N, F), and the prdc_k and prdc_n they were computed with: every figure a feature network gives.

    Precision, recall, density and coverage (k = prdc_k) compare equal numbers of reals and fakes, prdc_n =
    min(n_real, n_fake), as Naeem et al. do (the k-NN radii shrink as a set grows, so unequal sets would bias
    them): the larger set is cut to prdc_n by a draw without replacement from numpy's generator seeded with
    SEED. On DEVICE (default: the CPU)."""
    fake_feats = _as_float64(fake_feats, "fake_feats")
    real_feats = _as_float64(real_feats, "real_feats")
    kid, kid_std = kernel_inception_distance(fake_feats, real_feats, kid_subsets, kid_subset_size, seed)
    prdc_n = min(len(real_feats), len(fake_feats))
    rng = np.random.default_rng(seed)
    prdc_real, prdc_fake = (
        feats if len(feats) == prdc_n else feats[np.sort(rng.choice(len(feats), prdc_n, replace=False))]
        for feats in (real_feats, fake_feats)
    )
    prdc = precision_recall_density_coverage(prdc_real, prdc_fake, PRDC_K, device=device)
    return {
        "fid": frechet_distance(fake_feats, real_feats),
        "kid": kid,
        "kid_std": kid_std,
        **prdc,
        "prdc_k": PRDC_K,
        "prdc_n": prdc_n,
    }


def evaluate_samples(
    samples,
    reference_feats,
    train_images,
    classifier: ClassifierRecord,
    reference_split: str = "test",
    kid_subsets: int = 10,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict:
    """The evaluation protocol on generated `samples` (N, C, H, W) in [0, 1] against `reference_feats` (the
    classifier's penultimate features (M, F) of the clean test split: evaluation.reference caches them): FID, KID
    and its std, precision, recall, density and coverage on the classifier's features (feature_figures, with SEED),
    the classifier score of the samples, and their mean nearest-neighbour pixel distance to `train_images` (an array,
    or an iterable of batches: see nearest_neighbour_distance). Every figure comes with n_fake, n_real, the reference
    split and the classifier's fingerprint and test accuracy. On the classifier's device."""
    fake_feats, fake_logits = classifier_outputs(classifier.model, samples)
    real_feats = _as_float64(reference_feats, "reference_feats")
    device = next(classifier.model.parameters()).device
    return {
        **feature_figures(fake_feats, real_feats, kid_subsets, kid_subset_size, seed, device),
        "classifier_score": classifier_score(fake_logits, probs=False),
        "nn_pixel_distance": nearest_neighbour_distance(samples, train_images),
        "n_fake": len(fake_feats),
        "n_real": len(real_feats),
        "reference_split": reference_split,
        "classifier_fingerprint": classifier.fingerprint,
        "classifier_test_accuracy": classifier.test_accuracy,
    }
