"""Precision, recall, density and coverage (Naeem et al. 2020) on feature sets, checked against the prdc package."""

import contextlib
import io

import numpy as np
import pytest
import torch
from gansweep.evaluation.metrics import knn_radii, precision_recall_density_coverage

FIELDS = {"precision", "recall", "density", "coverage"}


def gaussian(seed: int, n: int, d: int = 4, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_one_distribution_scores_near_one():
    real, fake = gaussian(0, 2000), gaussian(1, 2000)
    figures = precision_recall_density_coverage(real, fake)
    assert set(figures) == FIELDS
    assert figures["precision"] > 0.9 and figures["recall"] > 0.9 and figures["coverage"] > 0.9, figures
    assert figures["density"] == pytest.approx(1.0, abs=0.1), figures


def test_a_collapsed_generator_has_recall_and_coverage_near_zero():
    real = gaussian(0, 2000)
    collapsed = np.tile(gaussian(1, 1), (2000, 1))  # one sample, repeated: a point well inside the real support
    figures = precision_recall_density_coverage(real, collapsed)
    assert figures["precision"] == 1.0  # that one point is realistic ...
    assert figures["recall"] == 0.0  # ... but its balls have radius 0: no real lies strictly inside
    assert figures["coverage"] < 0.01, figures  # only the reals next to it have it in their balls
    assert figures["density"] > 0  # the same balls counted for every copy
    # Off the support (far from every real): precision, density and coverage 0 as well.
    far = precision_recall_density_coverage(real, collapsed + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_shifted_generator_loses_precision_and_recall():
    real = gaussian(0, 1000)
    near = precision_recall_density_coverage(real, gaussian(1, 1000, shift=0.5))
    far = precision_recall_density_coverage(real, gaussian(1, 1000, shift=3.0))
    assert far["precision"] < near["precision"] and far["recall"] < near["recall"]
    assert far["coverage"] < near["coverage"] and far["density"] < near["density"]


@pytest.mark.parametrize("k", [3, 5])
def test_matches_the_prdc_package(k):
    prdc = pytest.importorskip("prdc", reason="the prdc package (Naeem et al.'s code) is absent: pip install prdc")
    rng = np.random.default_rng(k)
    real = rng.normal(size=(157, 6))
    fake = rng.normal(size=(131, 6)) * 1.3 + 0.2
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        theirs = prdc.compute_prdc(real, fake, nearest_k=k)
    # Blocks of one row, blocks that do not divide either set, and one block holding everything.
    for block in (1, 16, 50, 1000):
        ours = precision_recall_density_coverage(real, fake, k=k, block=block)
        for key in FIELDS:
            assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-9), (key, block)
    # Tensors are taken as they are (on their device), arrays on the CPU: the same figures.
    as_tensors = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), k=k, block=16)
    assert as_tensors == precision_recall_density_coverage(real, fake, k=k)


def test_knn_radii_exclude_the_point_itself_and_count_duplicates():
    points = torch.tensor([[0.0], [1.0], [3.0], [3.0], [7.0]], dtype=torch.float64)
    # k=1: the nearest other point; the two copies of 3 are each other's nearest, at 0.
    assert knn_radii(points, 1, block=2).tolist() == [1.0, 1.0, 0.0, 0.0, 4.0]
    assert knn_radii(points, 2, block=3).tolist() == [3.0, 2.0, 2.0, 2.0, 4.0]


def test_checks_its_inputs():
    real = gaussian(0, 20)
    with pytest.raises(ValueError, match="dimensions differ"):
        precision_recall_density_coverage(real, gaussian(1, 20, d=3))
    with pytest.raises(ValueError, match="more than k=5"):
        precision_recall_density_coverage(real, real[:5])
    with pytest.raises(ValueError, match="k=0"):
        precision_recall_density_coverage(real, real, k=0)
    with pytest.raises(ValueError, match="NaN"):
        precision_recall_density_coverage(real, np.full((20, 4), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        precision_recall_density_coverage(real[:, 0], real)
