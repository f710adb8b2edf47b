"""Generator reversal, its MMD^2 stopping rule, and the KDE prior (Kilcher et al.)."""

import math

import numpy as np
import pytest
import torch
from conftest import FASHION, Z_DIM, _generator
from gansweep.gan.priors import KDEPrior
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


def test_kde_samples_have_the_codes_mean_and_the_spread_the_bandwidth_implies():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(500, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([3.0, -1.0, 0.0])
    prior = KDEPrior(codes, bandwidth=0.7)
    z = prior.sample(200_000, gen)
    assert torch.allclose(z.mean(0), codes.mean(0), atol=0.02)
    # A mixture of N(z_i, h^2 I): the codes' variance plus h^2 in every direction.
    assert torch.allclose(z.var(0), codes.var(0, unbiased=False) + 0.49, rtol=0.02)


def test_kde_background_mixture_and_log_prob():
    codes = torch.full((10, 2), 5.0)
    prior = KDEPrior(codes, bandwidth=0.1, background_weight=0.25)
    z = prior.sample(40_000, torch.Generator().manual_seed(1))
    near_codes = ((z - 5.0).norm(dim=1) < 1.0).float().mean()
    assert near_codes == pytest.approx(0.75, abs=0.01)
    # At the codes the density is the kernel's peak (all codes coincide) plus a negligible background.
    peak = -2 * math.log(0.1) - math.log(2 * math.pi)
    assert float(prior.log_prob(torch.tensor([[5.0, 5.0]]))) == pytest.approx(peak + math.log(0.75), abs=1e-3)
    assert float(KDEPrior(codes, 0.1, 1.0).log_prob(torch.zeros(1, 2))) == pytest.approx(-math.log(2 * math.pi))


def test_holdout_likelihood_falls_as_the_bandwidth_goes_to_zero():
    gen = torch.Generator().manual_seed(2)
    train, test = torch.randn(300, 4, generator=gen), torch.randn(100, 4, generator=gen)
    likelihoods = [KDEPrior(train, h).holdout_log_likelihood(test) for h in (0.5, 0.2, 0.1, 0.05, 0.02)]
    assert likelihoods == sorted(likelihoods, reverse=True)


@pytest.mark.parametrize("kwargs,match", [
    ({"bandwidth": -0.1}, "bandwidth must be > 0"),
    ({"bandwidth": 0.1, "background_weight": 1.5}, "background weight"),
])
def test_kde_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KDEPrior(torch.zeros(3, 2), **kwargs)
