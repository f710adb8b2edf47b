"""Generator reversal (Kilcher et al., "Generator Reversal", Algorithm 1) and its MMD stopping rule (Claim 4).

Reversal finds codes z with G(z) ~ x by plain gradient descent on ||G(z) - x||^2, for a whole batch at
once on the generator's device; each code's gradient is that of its own image's error (G in eval mode
keeps the images independent). The errors reported are means over elements, comparable across shapes.
Through a measurement the error compares ||f_theta(G(z)) - y||^2, with the theta that measured y.

The stopping rule: a batch of generated images is reversed alongside the real one; after every step the
unbiased MMD^2 (RBF kernel) between the codes of the reals and the codes of the fakes is computed, and the
reversal stops once the two can be told apart in code space: crude codes early in training, finer ones as the
generator improves. "Told apart" is either the paper's wording, a two-sample test (mmd_alpha, below), or a raw
threshold on the MMD^2 (mmd_threshold), which a noisy estimate passes by chance: 64 codes of dimension 64 before any
step pass 1e-4 in about 4 draws of 10. Plain torch: no Ray.

The test and where it departs from the paper. The paper checks after every step with a raw threshold; a permutation
test of the MMD^2 (p-value (1 + #{permuted >= observed}) / (1 + P)) is exact at one look, but a reversal looks up to
max_steps times and stops at the first rejection, so a per-look level alpha stopped 12.5% of cold reversals of one
distribution (20 looks, alpha 0.05). Here mmd_alpha is the false-stop rate of the whole reversal: the test runs at
mmd_looks planned steps (evenly spaced, the last at max_steps; by default every step, as the paper looks), each at
level alpha / looks (Bonferroni). Bonferroni rather than an alpha-spending boundary (Pocock, O'Brien-Fleming)
because those boundaries assume the looks' statistics correlate like a Gaussian random walk's, which the MMD^2 of
moving codes does not: Bonferroni holds whatever the correlation, and a permutation count of a few hundred makes its
small levels reachable at little cost (one (P + 1, 2N) product per step). The price is power when looks correlate
strongly: benchmarks/bench_mmd_test.py measures both rates.

The loop stays on the device: without the MMD rule nothing reaches the host until the caller reads the errors;
with it, on a GPU, the MMD^2 (and p-value) of every step is checked on the host once per MMD_CHECK_EVERY steps
(on the CPU after every step: nothing runs ahead there, so a check costs nothing). Every device->host transfer
goes through to_host, so that a test can count them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from gansweep.config.mmd_rule import mmd_look_level

# Steps between the host's checks of the MMD rule. Each check is a sync: the CPU waits for the device to finish,
# then the device idles while the CPU launches the next step's kernels, so a check every step stalls a GPU every
# step. A check every 4 steps costs at most 3 steps computed past the stop (their codes are dropped: the result
# is that of a check every step) against a quarter of the syncs. On the CPU the same 3 steps are pure cost (1.5 on
# average; a reversal that stops at step 1, the common case with a low threshold, took 4x as long): checked every
# step there.
MMD_CHECK_EVERY = 4

# `gansweep invert` and `holdout` reverse given images once, to convergence, rather than a batch per training step
# (their lr and init_std are ReversalConfig's defaults).
TOOL_REVERSAL_STEPS = 200


def to_host(values: torch.Tensor) -> list:
    """VALUES (a 1-D tensor) as Python numbers: the one way a reversal's figures reach the host, a sync (it waits
    for the device). Kept in one place so that tests can count the syncs or stand in for them on the meta device."""
    return values.tolist()


@dataclass
class Reversed:
    codes: torch.Tensor  # (N, z_dim) codes of the targets
    steps: int  # gradient steps taken
    error_trace: torch.Tensor  # (steps,) on the device: the targets' mean squared error per element, before each step
    mmd2: list[float] = field(default_factory=list)  # after each step, when a generated batch was reversed alongside
    # After each step, under the two-sample test (mmd_alpha); only those of the planned looks can stop it.
    mmd_pvalues: list[float] = field(default_factory=list)
    stopped: bool = False  # the MMD rule stopped it (at max_steps too, when its last look passed the rule)

    @cached_property
    def errors(self) -> list[float]:
        """The error trace on the host, converted when first read: a sync, which reverse() itself leaves out."""
        return to_host(self.error_trace)

    def figures(self) -> dict[str, float]:
        """The last step's figures, as the KDE prior logs them under prior/: steps taken, error, and the MMD rule's
        MMD^2 and p-value where it ran (the error trace's one transfer; the MMD^2 came with the rule's checks)."""
        figures = {"reversal_steps": float(self.steps), "reversal_error": self.errors[-1]}
        for name, trace in (("reversal_mmd2", self.mmd2), ("reversal_mmd_pvalue", self.mmd_pvalues)):
            if trace:
                figures[name] = trace[-1]
        return figures


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float | torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) = exp(-||a_i - b_j||^2 / (2 bandwidth^2)) for every pair: (len(a), len(b))."""
    return torch.exp(-torch.cdist(a, b).square() / (2 * bandwidth**2))


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidth: float | torch.Tensor) -> torch.Tensor:
    """The paper's Eq. 3 (Gretton et al.'s MMD_u^2) for two samples of equal size m >= 2:
    1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i)]."""
    m = len(x)
    if len(y) != m or m < 2:
        raise ValueError(f"mmd2_unbiased needs two samples of one size >= 2, got {len(x)} and {len(y)}")
    kxx, kyy, kxy = rbf_kernel(x, x, bandwidth), rbf_kernel(y, y, bandwidth), rbf_kernel(x, y, bandwidth)
    terms = kxx + kyy - kxy - kxy.T
    # The off-diagonal terms in row-major order without a boolean mask, which sizes its result on the host (a sync
    # on a GPU): past the first element the diagonal ends each row of length m + 1. Summed in the mask's order, the
    # same float as a mask gives.
    off_diagonal = terms.flatten()[1:].view(m - 1, m + 1)[:, :-1].reshape(-1)
    return off_diagonal.sum() / (m * (m - 1))


def permutation_orders(m: int, permutations: int, *, device: torch.device | str,
                       rng: torch.Generator | None = None) -> torch.Tensor:
    """(permutations + 1, 2m) orders of a pooled sample of two samples of size M: the identity first (the observed
    split), then uniform random permutations drawn by RNG on DEVICE. The first m of each row are its x, the rest
    its y."""
    identity = torch.arange(2 * m, device=device)[None]
    return torch.cat([identity, torch.rand(permutations, 2 * m, generator=rng, device=device).argsort(dim=1)])


def permuted_mmd2(pooled: torch.Tensor, bandwidth: float | torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """mmd2_unbiased(pooled[order[:m]], pooled[order[m:]]) for every row of ORDERS (R, 2m), from one kernel matrix of
    POOLED (2m, d) and matrix products: (R,), on POOLED's device, no loop over the rows and no sync.

    With signs s = +1 on a row's x and -1 on its y, and K the kernel matrix without its diagonal, s^T K s is Eq. 3's
    sum times m(m-1) except for the pairs (x_i, y_i), which Eq. 3 leaves out of its cross terms and s^T K s counts
    with a factor -2: added back from K at those pairs."""
    m = pooled.shape[0] // 2
    if pooled.shape[0] != 2 * m or m < 2 or orders.shape[1] != 2 * m:
        raise ValueError(f"permuted_mmd2 needs 2m >= 4 pooled codes and orders of 2m, got {pooled.shape[0]} and "
                         f"{orders.shape[1]}")
    kernel = rbf_kernel(pooled, pooled, bandwidth)
    kernel = kernel * (1 - torch.eye(2 * m, dtype=kernel.dtype, device=kernel.device))  # cdist's diagonal is not 0
    base = torch.cat([torch.ones(m), -torch.ones(m)]).to(kernel)
    signs = torch.empty(orders.shape, dtype=kernel.dtype, device=kernel.device).scatter_(
        1, orders, base.expand(len(orders), -1))
    quadratic = ((signs @ kernel) * signs).sum(dim=1)
    pairs = kernel[orders[:, :m], orders[:, m:]].sum(dim=1)
    return (quadratic + 2 * pairs) / (m * (m - 1))


def permutation_pvalue(statistics: torch.Tensor) -> torch.Tensor:
    """The permutation test's p-value (1 + #{permuted >= observed}) / (1 + P), from permuted_mmd2's statistics under
    permutation_orders (the observed split first, counted as its own 1): a 0-dim tensor of their dtype and device."""
    return (statistics >= statistics[0]).to(statistics.dtype).mean()


def mmd2_permutation_test(
    x: torch.Tensor, y: torch.Tensor, bandwidth: float | torch.Tensor, *, permutations: int = 200,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-sample test of X against Y (as many) on the unbiased MMD^2: (MMD^2, p-value) as 0-dim tensors on
    their device, the p-value over PERMUTATIONS random splits of the pooled sample drawn by RNG."""
    if len(x) != len(y):
        raise ValueError(f"mmd2_permutation_test needs two samples of one size, got {len(x)} and {len(y)}")
    orders = permutation_orders(len(x), permutations, device=x.device, rng=rng)
    statistics = permuted_mmd2(torch.cat([x, y]), bandwidth, orders)
    return statistics[0], permutation_pvalue(statistics)


def mmd_look_steps(max_steps: int, looks: int) -> set[int]:
    """The steps (from 1) of LOOKS planned tests evenly spaced up to MAX_STEPS, the last at MAX_STEPS: all of them
    when LOOKS is MAX_STEPS; 4 looks of 20 steps at 5, 10, 15 and 20."""
    return {-(-k * max_steps // looks) for k in range(1, looks + 1)}  # ceil, in integers


def reverse(
    generator: nn.Module,
    targets: torch.Tensor,
    *,
    lr: float,
    max_steps: int,
    init_std: float,
    measure: Callable[[torch.Tensor], torch.Tensor] | None = None,
    init: torch.Tensor | None = None,
    fakes: torch.Tensor | None = None,
    mmd_bandwidth: float | None = None,  # None: the median distance between the initial codes
    mmd_threshold: float | None = None,
    mmd_alpha: float | None = None,  # the two-sample test's false-stop rate over the whole reversal
    mmd_looks: int | None = None,  # the test's planned looks, evenly spaced up to max_steps; None or 0: every step
    mmd_permutations: int = 999,  # random splits per test (the smallest p-value is 1 / (mmd_permutations + 1))
    rng: torch.Generator | None = None,
    check_every: int | None = None,  # steps between the MMD rule's checks; None: 1 on the CPU, else MMD_CHECK_EVERY
) -> Reversed:
    """Codes of TARGETS (images, or measurements when MEASURE maps G's images to what was measured).

    INIT (N, z_dim) warm-starts the codes (e.g. from the last time these images were reversed), or (2N, z_dim) the
    fakes' too; otherwise they start from N(0, init_std^2). With FAKES (generated targets, as many as TARGETS,
    measured alike) and an MMD rule, both batches are reversed together and the loop stops once the MMD^2 between
    their codes exceeds MMD_THRESHOLD, or (MMD_ALPHA) at the first of MMD_LOOKS planned steps whose permutation test
    rejects at level MMD_ALPHA / MMD_LOOKS, else after MAX_STEPS. The generator's weights get no gradient.

    The test's MMD_PERMUTATIONS splits are drawn by RNG once per reversal and serve every step: each step's test is
    exact all the same, and RNG advances by as much whatever step the rule stops at (and whatever CHECK_EVERY).

    Without the MMD rule nothing is brought to the host (the errors stay on the device until read). With it,
    the host checks every CHECK_EVERY steps (the window's MMD^2 and p-values in one transfer) and returns the codes
    of the first step that passes the rule: the steps computed after it are dropped (G must be in eval mode, as for
    the reversal itself, so that they change nothing)."""
    if lr <= 0 or max_steps < 1 or init_std < 0:
        raise ValueError(f"reverse needs lr > 0, max_steps >= 1 and init_std >= 0; got {lr}, {max_steps}, {init_std}")
    if mmd_threshold is not None and mmd_alpha is not None:
        raise ValueError("reverse takes one MMD rule: mmd_threshold or mmd_alpha, not both")
    if mmd_alpha is not None and not (0 < mmd_alpha < 1 and mmd_permutations >= 1 and 0 <= (mmd_looks or 0)
                                      <= max_steps):
        raise ValueError(f"the MMD test needs 0 < mmd_alpha < 1, mmd_permutations >= 1 and mmd_looks in [0, "
                         f"max_steps]; got {mmd_alpha}, {mmd_permutations}, {mmd_looks}")
    use_test = fakes is not None and mmd_alpha is not None
    use_mmd = fakes is not None and (mmd_threshold is not None or use_test)
    if use_mmd and len(fakes) != len(targets):
        raise ValueError("the MMD stopping rule needs as many fakes as targets")
    n = len(targets)
    if init is not None and len(init) not in ((n, 2 * n) if use_mmd else (n,)):
        raise ValueError(f"init has {len(init)} codes for {n} targets{' and as many fakes' if use_mmd else ''}")
    device = targets.device
    if check_every is None:
        check_every = 1 if device.type == "cpu" else MMD_CHECK_EVERY
    batch = torch.cat([targets, fakes]) if use_mmd else targets
    z_dim = generator.z_dim
    # Fresh codes only for the rows INIT leaves (RNG on that device): a warm start draws none it would overwrite.
    warm = init.to(device) if init is not None else torch.empty(0, z_dim, device=device)
    fresh = torch.randn(len(batch) - len(warm), z_dim, generator=rng, device=device) * init_std
    codes = torch.cat([warm, fresh])
    if use_mmd and mmd_bandwidth is None:  # the median heuristic, fixed for this reversal: a tensor, no sync
        mmd_bandwidth = torch.cdist(codes, codes).median()
    if use_test:
        orders = permutation_orders(n, mmd_permutations, device=device, rng=rng)
        looks = mmd_look_steps(max_steps, mmd_looks or max_steps)
        # A look rejects when its count 1 + #{permuted >= observed} (its p-value times P + 1) is at most this.
        max_count = math.floor(mmd_look_level(mmd_alpha, len(looks), mmd_permutations) * (mmd_permutations + 1)
                               + 1e-9)
    codes.requires_grad_(True)
    measure = measure or (lambda images: images)

    requires_grad = [p.requires_grad for p in generator.parameters()]
    generator.requires_grad_(False)  # only the codes move
    errors = []  # one 0-dim device tensor per step
    mmd2, pvalues = [], []  # on the host, up to the last check
    # The steps since the last check: their MMD^2 and p-values (device) and their codes.
    window_mmd2, window_pvalues, window_codes = [], [], []
    try:
        steps, stopped = 0, False
        for steps in range(1, max_steps + 1):
            squared = (measure(generator(codes)) - batch).flatten(1).square()
            errors.append(squared[:n].detach().mean())
            (grad,) = torch.autograd.grad(squared.sum(), codes)
            with torch.no_grad():
                # A new tensor each step (not codes -= ...): the window keeps each step's codes without a copy.
                codes = (codes - lr * grad).requires_grad_(True)
                if use_test:
                    statistics = permuted_mmd2(codes, mmd_bandwidth, orders)
                    window_mmd2.append(statistics[0])
                    window_pvalues.append(permutation_pvalue(statistics))
                elif use_mmd:
                    window_mmd2.append(mmd2_unbiased(codes[:n], codes[n:], mmd_bandwidth))
                if use_mmd:
                    window_codes.append(codes)
            if not use_mmd or (len(window_mmd2) < check_every and steps < max_steps):
                continue
            values = to_host(torch.stack(window_mmd2 + window_pvalues))  # the window's one sync
            values, window_p = values[: len(window_mmd2)], values[len(window_mmd2):]
            if use_test:
                first = steps + 1 - len(window_p)  # the window's first step
                over = next((i for i, p in enumerate(window_p)
                             if first + i in looks and round(p * (mmd_permutations + 1)) <= max_count), None)
            else:
                over = next((i for i, value in enumerate(values) if value > mmd_threshold), None)
            if over is None:
                mmd2 += values
                pvalues += window_p
                window_mmd2, window_pvalues, window_codes = [], [], []
                continue
            # The first step that passes the rule: the result a check after every step would have given.
            mmd2 += values[: over + 1]
            pvalues += window_p[: over + 1]
            codes = window_codes[over]
            steps += over + 1 - len(window_codes)
            stopped = True
            break
    finally:
        for p, flag in zip(generator.parameters(), requires_grad):
            p.requires_grad_(flag)
    return Reversed(codes=codes[:n].detach(), steps=steps, error_trace=torch.stack(errors[:steps]), mmd2=mmd2,
                    mmd_pvalues=pvalues, stopped=stopped)
