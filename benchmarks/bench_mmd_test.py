"""The MMD stopping rule's two forms on codes of one distribution, and the test's cost.

(a) How often each rule stops a reversal before any step, where reals' and fakes' codes are both N(0, I) draws (as a
cold reversal starts): the raw thresholds 1e-4 and 1e-3 (reversal.mmd_threshold) against the permutation test at
level 0.05 (reversal.mmd_alpha), on N codes of dimension z_dim with the median bandwidth. The test's rate should be
its level; the raw rule's is whatever the estimate's noise makes it.
(b) The time of one permutation test (P splits of the 2N pooled codes: the draw, which reverse() does once per
reversal, and the statistics, which it does every step) against one forward+backward pass of the default generator
through the codes of 2N images (one reversal step of N reals and N fakes), on the CPU; medians over the rounds.

    PYTHONPATH=platform .venv/bin/python benchmarks/bench_mmd_test.py [--repeats 500] [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from gansweep.config.schema import ModelConfig, ReversalConfig
from gansweep.gan import reversal
from gansweep.nets.models import Generator


def median_seconds(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="codes per batch (reals; as many fakes)")
    parser.add_argument("--z-dim", type=int, default=ModelConfig.z_dim)
    parser.add_argument("--permutations", type=int, default=ReversalConfig.mmd_permutations)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[1e-4, 1e-3])
    parser.add_argument("--repeats", type=int, default=500, help="same-distribution pairs for (a)")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds for (b)")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    n, d = args.n, args.z_dim

    stops = {threshold: 0 for threshold in args.thresholds}
    rejections = 0
    for _ in range(args.repeats):
        x, y = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
        pooled = torch.cat([x, y])
        bandwidth = torch.cdist(pooled, pooled).median()  # reverse()'s heuristic, from the initial codes
        mmd2, pvalue = reversal.mmd2_permutation_test(x, y, bandwidth, permutations=args.permutations, rng=gen)
        rejections += float(pvalue) < args.alpha
        for threshold in stops:
            stops[threshold] += float(mmd2) > threshold
    print(f"(a) {args.repeats} pairs of {n} codes of dim {d}, both N(0, I), median bandwidth: how often each rule "
          "stops before any step (a false rejection)")
    for threshold, count in stops.items():
        print(f"    raw MMD^2 > {threshold:g}: {count / args.repeats:.3f}")
    se = (args.alpha * (1 - args.alpha) / args.repeats) ** 0.5
    print(f"    permutation test p < {args.alpha:g} ({args.permutations} permutations): "
          f"{rejections / args.repeats:.3f}  (its level {args.alpha:g} +- {se:.3f})")

    x, y = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    pooled = torch.cat([x, y])
    bandwidth = torch.cdist(pooled, pooled).median()
    orders = reversal.permutation_orders(n, args.permutations, device="cpu", rng=gen)
    draw = median_seconds(lambda: reversal.permutation_orders(n, args.permutations, device="cpu", rng=gen),
                          args.rounds)
    step = median_seconds(lambda: reversal.permutation_pvalue(reversal.permuted_mmd2(pooled, bandwidth, orders)),
                          args.rounds)

    generator = Generator((1, 28, 28), z_dim=d, width=ModelConfig.g_width).eval()
    generator.requires_grad_(False)  # as in reverse(): only the codes get a gradient
    codes = torch.randn(2 * n, d, generator=gen).requires_grad_(True)
    with torch.no_grad():
        targets = generator(torch.randn(2 * n, d, generator=gen))

    def g_pass() -> None:
        squared = (generator(codes) - targets).square()
        torch.autograd.grad(squared.sum(), codes)

    g_seconds = median_seconds(g_pass, args.rounds)
    print(f"(b) on the CPU, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"    permutation test, N={n}, P={args.permutations}: draw {draw * 1e3:.2f} ms (once per reversal), "
          f"statistics + p-value {step * 1e3:.2f} ms (every step)")
    print(f"    forward+backward of the default G (width {ModelConfig.g_width}) at batch {2 * n}: "
          f"{g_seconds * 1e3:.2f} ms")
    print(f"    ratio test step / G pass: {step / g_seconds:.3f}; with the draw: {(step + draw) / g_seconds:.3f}")


if __name__ == "__main__":
    main()
