"""Generator reversal and its MMD^2 stopping rule (Kilcher et al.)."""

import math

import numpy as np
import pytest
import torch
from conftest import FASHION, Z_DIM, _generator
from gansweep.gan.reversal import mmd2_unbiased, reverse


def _mmd2_numpy(x: np.ndarray, y: np.ndarray, h: float) -> float:
    """Eq. 3 term by term, with explicit loops."""
    def k(a, b):
        return math.exp(-np.sum((a - b) ** 2) / (2 * h * h))

    m = len(x)
    total = 0.0
    for i in range(m):
        for j in range(m):
            if i != j:
                total += k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i])
    return total / (m * (m - 1))


def test_mmd2_matches_a_direct_numpy_reference():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(7, 3))
    got = float(mmd2_unbiased(torch.tensor(x), torch.tensor(y), bandwidth=1.3))
    assert got == pytest.approx(_mmd2_numpy(x, y, 1.3), rel=1e-10)


def test_mmd2_is_zero_in_expectation_on_one_distribution_and_grows_with_a_shift():
    gen = torch.Generator().manual_seed(0)
    same = [float(mmd2_unbiased(torch.randn(64, 4, generator=gen), torch.randn(64, 4, generator=gen), 1.0))
            for _ in range(200)]
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(len(same))  # unbiased: 0 within its error
    shifted = [np.mean([float(mmd2_unbiased(torch.randn(64, 4, generator=gen), torch.randn(64, 4, generator=gen) + shift,
                                            1.0)) for _ in range(20)]) for shift in (0.25, 0.5, 1.0, 2.0)]
    assert shifted == sorted(shifted) and shifted[0] > 5 * np.std(same) / math.sqrt(20)


def test_mmd2_needs_two_samples_of_one_size():
    with pytest.raises(ValueError, match="same size|one size"):
        mmd2_unbiased(torch.zeros(3, 2), torch.zeros(4, 2), 1.0)


def test_reversal_lowers_the_reconstruction_error_of_real_images_step_by_step():

    if not FASHION.is_dir():
        pytest.skip("needs Fashion-MNIST")
    from gansweep.data.sources import load_source

    images = load_source("fashion_mnist", None, limit=32).images
    x = torch.as_tensor(images, dtype=torch.float32) / 127.5 - 1
    result = reverse(_generator(), x, lr=0.03, max_steps=40, init_std=0.1, rng=torch.Generator().manual_seed(0))
    errors = result.errors
    assert result.steps == 40 and len(errors) == 40
    assert all(later < earlier for earlier, later in zip(errors[::5], errors[5::5]))  # falls every 5 steps
    assert errors[-1] < 0.8 * errors[0]


def test_reversal_recovers_a_code_the_generator_produced():
    generator = _generator(1)
    z_true = torch.randn(16, Z_DIM, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = generator(z_true)
    # Started near the truth, plain gradient descent converges to it (the paper's Proposition 1).
    start = z_true + 0.3 * torch.randn(16, Z_DIM, generator=torch.Generator().manual_seed(3))
    result = reverse(generator, x, lr=0.01, max_steps=300, init_std=0.0, init=start)
    assert result.errors[-1] < 1e-3 * result.errors[0]
    assert (result.codes - z_true).norm(dim=1).mean() < 0.1 * (start - z_true).norm(dim=1).mean()
    assert all(p.grad is None and p.requires_grad for p in generator.parameters())  # G untouched


def test_reversal_through_a_measurement_fits_only_what_was_measured():
    generator = _generator(4)
    with torch.no_grad():
        x = generator(torch.randn(8, Z_DIM, generator=torch.Generator().manual_seed(5)))
    mask = (torch.rand(x.shape, generator=torch.Generator().manual_seed(6)) > 0.5).float()
    y = x * mask
    result = reverse(generator, y, lr=0.03, max_steps=60, init_std=0.1, measure=lambda images: images * mask,
                     rng=torch.Generator().manual_seed(7))
    assert result.errors[-1] < 0.5 * result.errors[0]


def test_the_mmd_rule_stops_earlier_with_a_lower_threshold():
    generator = _generator(8)
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        reals = generator(torch.randn(32, Z_DIM, generator=gen) * 0.5 + 1.0)  # a different code distribution
        fakes = generator(torch.randn(32, Z_DIM, generator=gen))

    def steps(threshold: float) -> int:
        return reverse(generator, reals, fakes=fakes, lr=0.03, max_steps=200, init_std=1e-4, mmd_bandwidth=4.0,
                       mmd_threshold=threshold, rng=torch.Generator().manual_seed(10)).steps

    low, high = steps(0.01), steps(0.3)
    assert 1 <= low < high < 200


def test_reversal_refuses_bad_arguments():
    with pytest.raises(ValueError, match="lr > 0"):
        reverse(_generator(), torch.zeros(2, 1, 28, 28), lr=-1.0, max_steps=5, init_std=0.1)
