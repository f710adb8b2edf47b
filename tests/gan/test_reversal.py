"""Generator reversal and its MMD^2 stopping rule (Kilcher et al.): a raw threshold, or a permutation test."""

import math

import numpy as np
import pytest
import torch
from conftest import FASHION, Z_DIM, _generator
from gansweep.config.mmd_rule import mmd_look_level
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.gan import reversal
from gansweep.gan.reversal import (
    mmd2_permutation_test,
    mmd2_unbiased,
    permutation_orders,
    permutation_pvalue,
    permuted_mmd2,
    mmd_look_steps,
    reverse,
)
from gansweep.nets.models import Generator


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


@pytest.mark.parametrize("m", [2, 7])
def test_mmd2_matches_a_direct_numpy_reference(m):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(m, 3)), rng.normal(0.5, 1.0, size=(m, 3))
    got = float(mmd2_unbiased(torch.tensor(x), torch.tensor(y), bandwidth=1.3))
    assert got == pytest.approx(_mmd2_numpy(x, y, 1.3), rel=1e-10)


@pytest.mark.parametrize("m", [2, 5, 64])
def test_mmd2_sums_the_off_diagonal_terms_in_the_order_a_mask_selects_them(m):
    gen = torch.Generator().manual_seed(m)
    x, y = torch.randn(m, 16, generator=gen), torch.randn(m, 16, generator=gen) + 0.3
    terms = (reversal.rbf_kernel(x, x, 2.0) + reversal.rbf_kernel(y, y, 2.0) - reversal.rbf_kernel(x, y, 2.0)
             - reversal.rbf_kernel(x, y, 2.0).T)
    masked = terms[~torch.eye(m, dtype=torch.bool)].sum() / (m * (m - 1))  # a boolean mask: a sync on a GPU
    assert torch.equal(mmd2_unbiased(x, y, 2.0), masked)  # the same float, without it


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


def _two_code_distributions(n: int) -> tuple:
    """G, N reals from another code distribution than its N fakes: their codes' MMD^2 grows as both are reversed."""
    generator = _generator(8)
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        reals = generator(torch.randn(n, Z_DIM, generator=gen) * 0.5 + 1.0)
        fakes = generator(torch.randn(n, Z_DIM, generator=gen))
    return generator, reals, fakes


def test_the_mmd_rule_stops_earlier_with_a_lower_threshold():
    generator, reals, fakes = _two_code_distributions(32)

    def steps(threshold: float) -> int:
        return reverse(generator, reals, fakes=fakes, lr=0.03, max_steps=200, init_std=1e-4, mmd_bandwidth=4.0,
                       mmd_threshold=threshold, rng=torch.Generator().manual_seed(10)).steps

    low, high = steps(0.01), steps(0.3)
    assert 1 <= low < high < 200


def test_reversal_refuses_bad_arguments():
    with pytest.raises(ValueError, match="lr > 0"):
        reverse(_generator(), torch.zeros(2, 1, 28, 28), lr=-1.0, max_steps=5, init_std=0.1)


# Tensor methods that bring values to the host: on a GPU each waits for the device (a sync).
HOST_CONVERSIONS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


@pytest.fixture
def host_syncs(monkeypatch) -> list[str]:
    """The names of the host conversions of tensors made while the test runs, in order."""
    calls = []
    for name in HOST_CONVERSIONS:
        def counted(self, *args, _name=name, _original=getattr(torch.Tensor, name), **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def _meta_generator() -> Generator:
    """A small G on the meta device, where tensors have shapes but no data: reading one on the host raises, so
    a reversal on it runs through only where nothing waits for the device."""
    return Generator((1, 28, 28), z_dim=8, width=4).eval().to("meta")


def test_a_fixed_step_reversal_never_waits_for_the_device():
    targets, init = torch.zeros(4, 1, 28, 28, device="meta"), torch.zeros(4, 8, device="meta")
    result = reverse(_meta_generator(), targets, lr=0.1, max_steps=6, init_std=1.0, init=init)
    assert result.steps == 6 and result.codes.shape == (4, 8) and result.error_trace.shape == (6,)
    with pytest.raises((RuntimeError, NotImplementedError)):  # the errors reach the host only when read
        result.errors


def test_the_mmd_rule_brings_only_its_checks_to_the_host(monkeypatch):
    transfers = []

    def to_host(values: torch.Tensor) -> list[float]:  # meta tensors have no data: a check that never stops
        transfers.append(len(values))
        return [0.0] * len(values)

    monkeypatch.setattr(reversal, "to_host", to_host)
    window = reversal.MMD_CHECK_EVERY
    targets, fakes = torch.zeros(4, 1, 28, 28, device="meta"), torch.zeros(4, 1, 28, 28, device="meta")
    # The median bandwidth heuristic and the MMD^2 stay on the device: only the windows' checks come back.
    result = reverse(_meta_generator(), targets, fakes=fakes, lr=0.1, max_steps=10, init_std=1.0, mmd_threshold=0.5)
    assert result.steps == 10 and result.mmd2 == [0.0] * 10
    assert transfers == [window] * (10 // window) + ([10 % window] if 10 % window else [])


def _reference_reversal(generator, reals, fakes, *, lr, max_steps, init_std, mmd_bandwidth, mmd_threshold, rng):
    """The MMD rule checked after every step, with a sync each: (codes, steps, errors, mmd2)."""
    n, batch = len(reals), torch.cat([reals, fakes])
    codes = torch.randn(len(batch), generator.z_dim, generator=rng) * init_std
    if mmd_bandwidth is None:
        mmd_bandwidth = float(torch.cdist(codes, codes).median())
    codes.requires_grad_(True)
    generator.requires_grad_(False)
    errors, mmd2 = [], []
    for step in range(1, max_steps + 1):
        squared = (generator(codes) - batch).flatten(1).square()
        errors.append(float(squared[:n].detach().mean()))
        (grad,) = torch.autograd.grad(squared.sum(), codes)
        with torch.no_grad():
            codes -= lr * grad
            mmd2.append(float(mmd2_unbiased(codes[:n], codes[n:], mmd_bandwidth)))
        if mmd2[-1] > mmd_threshold:
            break
    generator.requires_grad_(True)
    return codes[:n].detach(), step, errors, mmd2


MAX_STEPS = 14  # full windows and a part (of 4: three and 2 steps)


@pytest.fixture(scope="module")
def mmd_setup():
    return _two_code_distributions(16)


# A fixed bandwidth from codes near 0 (the MMD^2 rises from the first step), and the median heuristic from codes
# of N(0, I) (it rises from the third).
SETTINGS = {"fixed": {"lr": 0.01, "init_std": 1e-4, "mmd_bandwidth": 4.0},
            "median": {"lr": 0.03, "init_std": 1.0, "mmd_bandwidth": None}}
WINDOW = reversal.MMD_CHECK_EVERY
STOPS = [("fixed", 1), ("fixed", WINDOW + 2), ("fixed", 2 * WINDOW), ("fixed", None), ("median", WINDOW + 1),
         ("median", 3 * WINDOW), ("median", MAX_STEPS), ("median", None)]


@pytest.fixture(scope="module")
def mmd_traces(mmd_setup) -> dict[str, list[float]]:
    """Each setting's MMD^2 after every step, by the per-step rule that never stops."""
    return {setting: _reference_reversal(*mmd_setup, max_steps=MAX_STEPS, mmd_threshold=10.0,
                                         rng=torch.Generator().manual_seed(10), **kwargs)[3]
            for setting, kwargs in SETTINGS.items()}


def _threshold(trace: list[float], stop: int | None) -> float:
    """A threshold that the per-step rule first passes at step STOP of TRACE (None: never)."""
    if stop is None:
        return 10.0  # an RBF kernel's MMD^2 is at most 2
    below = max(trace[: stop - 1], default=trace[stop - 1] - 1e-3)
    assert trace[stop - 1] > below  # STOP is a new maximum: a threshold between the two stops there
    return (below + trace[stop - 1]) / 2


@pytest.mark.parametrize("setting,stop", STOPS)
def test_the_windowed_mmd_rule_gives_what_a_check_every_step_gives(mmd_setup, mmd_traces, setting, stop):
    threshold = _threshold(mmd_traces[setting], stop)
    kwargs = dict(max_steps=MAX_STEPS, mmd_threshold=threshold, **SETTINGS[setting])
    codes, steps, errors, mmd2 = _reference_reversal(*mmd_setup, rng=torch.Generator().manual_seed(10), **kwargs)
    assert steps == (stop or MAX_STEPS)
    generator, reals, fakes = mmd_setup
    result = reverse(generator, reals, fakes=fakes, rng=torch.Generator().manual_seed(10), check_every=WINDOW,
                     **kwargs)
    assert result.steps == steps and result.errors == errors and result.mmd2 == mmd2  # the same floats
    assert torch.equal(result.codes, codes)


@pytest.mark.parametrize("setting,stop", STOPS)
def test_the_mmd_rule_syncs_once_per_window(mmd_setup, mmd_traces, setting, stop, host_syncs):
    threshold = _threshold(mmd_traces[setting], stop)
    generator, reals, fakes = mmd_setup
    result = reverse(generator, reals, fakes=fakes, max_steps=MAX_STEPS, mmd_threshold=threshold,
                     rng=torch.Generator().manual_seed(10), check_every=WINDOW, **SETTINGS[setting])
    result.errors  # the error trace's own transfer
    assert result.steps == (stop or MAX_STEPS)
    assert len(host_syncs) <= math.ceil(result.steps / WINDOW) + 1, host_syncs


def test_a_fixed_step_reversal_syncs_once_when_its_errors_are_read(host_syncs):
    generator, targets = _generator(4), torch.zeros(8, 1, 28, 28)
    host_syncs.clear()  # building G converts some
    result = reverse(generator, targets, lr=0.03, max_steps=10, init_std=0.1, rng=torch.Generator().manual_seed(0))
    assert host_syncs == []
    assert len(result.errors) == 10 and result.errors[-1] == result.errors[-1]  # converted once, then cached
    assert host_syncs == ["tolist"]


def test_on_the_cpu_the_mmd_rule_stops_at_its_step_without_computing_past_it(mmd_setup, mmd_traces):
    """On the CPU a check costs no stall, so the default checks after every step: a reversal that stops at step 1
    runs G's forward once, not a window's worth."""
    generator, reals, fakes = mmd_setup
    forwards = []
    hook = generator.register_forward_hook(lambda *_: forwards.append(1))
    try:
        result = reverse(generator, reals, fakes=fakes, max_steps=MAX_STEPS, rng=torch.Generator().manual_seed(10),
                         mmd_threshold=_threshold(mmd_traces["fixed"], 1), **SETTINGS["fixed"])
    finally:
        hook.remove()
    assert result.steps == 1 and len(forwards) == 1


# The two-sample test (mmd_alpha): a permutation test of the unbiased MMD^2.


def test_the_batched_permutation_statistics_are_mmd2_unbiased_of_each_split():
    gen = torch.Generator().manual_seed(11)
    x, y = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    pooled = torch.cat([x, y])
    orders = permutation_orders(5, 30, device="cpu", rng=gen)
    assert orders.shape == (31, 10) and torch.equal(orders[0], torch.arange(10))  # the observed split first
    assert torch.equal(orders.sort(dim=1).values, torch.arange(10).expand(31, -1))  # each row a permutation
    statistics = permuted_mmd2(pooled, 1.3, orders)
    explicit = torch.stack([mmd2_unbiased(pooled[order[:5]], pooled[order[5:]], 1.3) for order in orders])
    assert torch.allclose(statistics, explicit, rtol=1e-12, atol=1e-15)
    assert permutation_pvalue(torch.tensor([0.5, 0.1, 0.7, 0.5, 0.2])) == 3 / 5  # (1 + #{>= observed}) / (1 + P)


def _median_test(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[float, float]:
    """(MMD^2, p-value) at the median bandwidth of the pooled codes, as reverse() takes it before any step."""
    pooled = torch.cat([x, y])
    mmd2, pvalue = mmd2_permutation_test(x, y, torch.cdist(pooled, pooled).median(), permutations=200, rng=gen)
    return float(mmd2), float(pvalue)


def test_on_one_distribution_the_test_rejects_at_its_level_and_the_raw_threshold_far_more_often():
    gen = torch.Generator().manual_seed(12)
    results = [_median_test(torch.randn(64, 64, generator=gen), torch.randn(64, 64, generator=gen), gen)
               for _ in range(200)]
    test_rate = np.mean([pvalue < 0.05 for _, pvalue in results])
    raw_rate = np.mean([mmd2 > 1e-4 for mmd2, _ in results])
    assert test_rate < 0.12  # 0.05 within a binomial band of 200 repeats
    assert raw_rate > 0.3  # the 0.43: the raw rule "tells apart" one distribution from itself


def test_the_test_rejects_a_modest_shift_of_the_mean():
    gen = torch.Generator().manual_seed(13)
    pvalues = [_median_test(torch.randn(64, 64, generator=gen), torch.randn(64, 64, generator=gen) + 0.2, gen)[1]
               for _ in range(20)]
    assert np.mean([pvalue < 0.05 for pvalue in pvalues]) >= 0.9


# The median bandwidth at a step that separates the codes within MAX_STEPS: p-values that fall below 1 / MAX_STEPS
# mid-way (at 0.03 they reach it at the last step only), so that levels spread over MAX_STEPS looks can stop there.
TEST_SETTINGS = {**SETTINGS["median"], "lr": 0.06}


def _full_trace(mmd_setup, max_steps: int) -> list[float]:
    """The p-value after every step of a median-bandwidth reversal that runs to MAX_STEPS: one look, at the last."""
    generator, reals, fakes = mmd_setup
    return reverse(generator, reals, fakes=fakes, max_steps=max_steps, mmd_alpha=0.05, mmd_looks=1,
                   rng=torch.Generator().manual_seed(10), **TEST_SETTINGS).mmd_pvalues


@pytest.fixture(scope="module")
def pvalue_trace(mmd_setup) -> list[float]:
    """The p-value after every step: it falls as codes separate."""
    return _full_trace(mmd_setup, MAX_STEPS)


def _alpha(trace: list[float], stop: int) -> float:
    """The level at which the p-values of TRACE first reject at step STOP: that step's p-value itself, for a look
    rejects at p <= its level (the boundary included)."""
    assert trace[stop - 1] < min(trace[: stop - 1]) and trace[stop - 1] * MAX_STEPS < 1
    return trace[stop - 1]


@pytest.mark.parametrize("stop,window", [(WINDOW + 3, 1), (2 * WINDOW + 1, WINDOW)])
def test_the_mmd_test_stops_at_the_first_step_it_rejects(mmd_setup, pvalue_trace, stop, window, host_syncs):
    generator, reals, fakes = mmd_setup
    level = _alpha(pvalue_trace, stop)  # each look's: the whole reversal's alpha spread over its MAX_STEPS looks
    host_syncs.clear()
    result = reverse(generator, reals, fakes=fakes, max_steps=MAX_STEPS, mmd_alpha=level * MAX_STEPS,
                     check_every=window, rng=torch.Generator().manual_seed(10), **TEST_SETTINGS)
    assert result.steps == stop and result.stopped
    assert result.mmd_pvalues == pvalue_trace[:stop] and len(result.mmd2) == stop
    assert len(host_syncs) <= math.ceil(stop / window)  # the p-values come with the MMD^2, in the window's sync
    at_stop = reverse(generator, reals, fakes=fakes, max_steps=stop, mmd_alpha=0.05, mmd_looks=1,
                      rng=torch.Generator().manual_seed(10), **TEST_SETTINGS)
    assert torch.equal(result.codes, at_stop.codes)  # the codes of that step, not of the window's end


def test_the_looks_are_evenly_spaced_up_to_the_last_step_and_their_levels_sum_to_alpha():
    assert mmd_look_steps(20, 4) == {5, 10, 15, 20} and mmd_look_steps(20, 3) == {7, 14, 20}
    assert mmd_look_steps(20, 20) == set(range(1, 21)) and mmd_look_steps(7, 1) == {7}
    for looks in (1, 3, 20):
        assert mmd_look_level(0.05, looks, 999) * looks == pytest.approx(0.05)  # Bonferroni: the whole reversal's


def test_the_mmd_test_stops_only_at_a_planned_look(mmd_setup, pvalue_trace):
    """Levels that reject at step 7: with every step a look the reversal stops there; with looks at 5, 10 and 14
    only, it cannot stop before 10; a look at the last step alone runs to MAX_STEPS."""
    generator, reals, fakes = mmd_setup
    level = _alpha(pvalue_trace, 7)

    def stop(looks: int) -> reversal.Reversed:
        return reverse(generator, reals, fakes=fakes, max_steps=MAX_STEPS, mmd_alpha=level * looks, mmd_looks=looks,
                       rng=torch.Generator().manual_seed(10), **TEST_SETTINGS)

    assert stop(MAX_STEPS).steps == 7 and mmd_look_steps(MAX_STEPS, 3) == {5, 10, 14}
    at_looks = stop(3)
    assert at_looks.steps == 10 and at_looks.stopped and at_looks.mmd_pvalues == pvalue_trace[:10]
    last = stop(1)
    assert last.steps == MAX_STEPS and last.stopped == (pvalue_trace[-1] <= level)


def test_the_mmd_test_never_stops_a_reversal_of_one_set_against_itself(mmd_setup):
    generator, reals, _ = mmd_setup
    start = torch.randn(len(reals), Z_DIM, generator=torch.Generator().manual_seed(14))
    result = reverse(generator, reals, fakes=reals, init=torch.cat([start, start]), max_steps=6, mmd_alpha=0.05,
                     rng=torch.Generator().manual_seed(10), **SETTINGS["median"])
    assert result.steps == 6 and min(result.mmd_pvalues) > 0.2


def test_reverse_takes_one_mmd_rule():
    with pytest.raises(ValueError, match="not both"):
        reverse(_generator(), torch.zeros(2, 1, 28, 28), fakes=torch.zeros(2, 1, 28, 28), lr=0.1, max_steps=1,
                init_std=1.0, mmd_threshold=0.1, mmd_alpha=0.05)


def test_the_prior_reports_the_tests_p_value():
    from gansweep.gan.build import build_gan
    from gansweep.run.summaries import SCALAR_TAGS

    cfg = load_config(None, ["mode=clean", "measurement.name=none", "prior.name=kde", "model.g_width=8",
                             "model.d_width=8", "reversal.max_steps=3", "reversal.mmd_alpha=0.05"])
    figures = build_gan(cfg, (1, 28, 28)).prior.refresh(torch.rand(8, 1, 28, 28))
    assert 1 <= figures["reversal_steps"] <= 3 and 0 < figures["reversal_mmd_pvalue"] <= 1
    assert figures["reversal_steps"] == 3 or figures["reversal_mmd_pvalue"] < 0.05  # stopped early: rejected
    assert SCALAR_TAGS["reversal_mmd_pvalue"] == "prior/reversal_mmd_pvalue"


@pytest.mark.parametrize("overrides,message", [
    (["reversal.mmd_threshold=0.001", "reversal.mmd_alpha=0.05"],
     "reversal.mmd_threshold=0.001 and reversal.mmd_alpha=0.05: .* not both"),
    (["reversal.mmd_alpha=1.5"], r"reversal.mmd_alpha=1.5 must be in \(0, 1\)"),
    (["reversal.mmd_alpha=-0.1"], r"reversal.mmd_alpha=-0.1 must be in \(0, 1\)"),
    (["reversal.mmd_permutations=10"], "reversal.mmd_permutations=10 must be >= 19"),
    # 20 looks (every step) at 0.05 / 20 = 0.0025 each: 200 permutations' smallest p-value is 1/201.
    (["reversal.mmd_alpha=0.05", "reversal.mmd_permutations=200"],
     r"reversal.mmd_permutations=200 can never stop a reversal: its smallest p-value, 1/201, is above the level of "
     r"each of its 20 looks \(reversal.mmd_alpha=0.05 / 20 = 0.0025\); use at least 399 permutations"),
    (["reversal.mmd_alpha=0.001", "reversal.mmd_looks=4"], "reversal.mmd_permutations=999 can never stop .* use at "
                                                          "least 3999 permutations or fewer reversal.mmd_looks"),
    (["reversal.mmd_looks=21"], r"reversal.mmd_looks=21 must be in \[0, reversal.max_steps=20\]"),
    (["reversal.mmd_alpha=0.05", "reversal.warm_start=true"],
     "reversal.warm_start=true with reversal.mmd_alpha=0.05: the fakes have no banked codes .* use one of the two"),
])
def test_bad_mmd_rules_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_fewer_looks_let_fewer_permutations_stop():
    cfg = load_config(None, ["reversal.mmd_alpha=0.05", "reversal.mmd_permutations=200", "reversal.mmd_looks=4"])
    assert mmd_look_level(cfg.reversal.mmd_alpha, 4, 200) * 201 >= 1  # 1/201 <= 0.0125: a stop is possible


@pytest.mark.parametrize("alpha", ["0", "none", "0.05"])
def test_the_mmd_test_is_off_at_0_or_none(alpha):
    cfg = load_config(None, [f"reversal.mmd_alpha={alpha}"])
    assert bool(cfg.reversal.mmd_alpha) == (alpha == "0.05") and cfg.reversal.mmd_threshold == 0
