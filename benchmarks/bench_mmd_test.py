"""The MMD stopping rule (reversal.mmd_alpha) over whole reversals: its false stops, its power, its cost.

One small random-weight G (z_dim 64, width 8: its images respond to z, the paper's section 2.2), N reals and N fakes
per reversal, reversal.lr, max_steps 20 and init_std 1 as given, the median bandwidth, 1 thread. Each row is a rate
over R reversals with its 95% Clopper-Pearson interval.

(a) Null: reals and fakes both G(z), z ~ N(0, I). Cold start: every code from N(0, 1). Warm start (as
    reversal.warm_start does it, KDEGANPrior._warm_codes): the reals from their codes of an earlier cold reversal of
    the same images (no rule, max_steps), the fakes from those codes in a random order. How often the rule stops a
    reversal (a false stop), and beside it how often the old rule (a test after every step at level alpha) stopped
    the same reversals: read from their p-value traces, for it stops at the first p <= alpha, never after the new
    rule's stop.
(b) Power: reals G(s z), fakes G(z) (s = --scale), each of --starts: how often the rule stops, and at which steps.
(c) Codes' movement at reversal.lr: the mean distance a code moves in max_steps steps against its start's distance
    to the code that made its image (cold start, no rule); with --lrs, for each of those learning rates.
(d) The cost of one step's test (P permutations of 2N codes) against one forward+backward of the default G.

    PYTHONPATH=platform .venv/bin/python benchmarks/bench_mmd_test.py [--reversals 500] [--lrs 0.012 0.1 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import torch
from gansweep.config.loading import load_config
from gansweep.config.schema import ModelConfig, ReversalConfig
from gansweep.gan import reversal
from gansweep.gan.build import build_gan
from gansweep.nets.models import Generator, random_generator
from gansweep.nets.pixels import to_unit
from scipy.stats import beta

Z_DIM = ModelConfig.z_dim


def rate(count: int, total: int) -> str:
    """COUNT / TOTAL in percent with its exact (Clopper-Pearson) 95% interval."""
    low = beta.ppf(0.025, count, total - count + 1) if count else 0.0
    high = beta.ppf(0.975, count + 1, total - count) if count < total else 1.0
    return f"{100 * count / total:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({count}/{total})"


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.generator = random_generator(0, args.width, Z_DIM)
        self.gen = torch.Generator().manual_seed(1)
        # KDE-GAN's prior, for its warm start's initial codes (reversal.warm_start): the code path the trainer takes.
        cfg = load_config(None, ["prior.name=kde", "reversal.warm_start=true", f"model.z_dim={Z_DIM}",
                                 f"model.g_width={args.width}", "model.d_width=8"])
        self.prior = build_gan(cfg, (1, 28, 28)).prior

    def images(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return to_unit(self.generator(z))

    def reverse(self, reals, fakes=None, init=None, use_rule=True) -> reversal.Reversed:
        a = self.args
        rule = dict(fakes=fakes, mmd_alpha=a.alpha, mmd_looks=a.looks, mmd_permutations=a.permutations) \
            if use_rule else {}
        return reversal.reverse(self.generator, reals, lr=a.lr, max_steps=a.max_steps, init_std=1.0,
                                measure=to_unit, init=init, rng=self.gen, **rule)

    def one(self, warm: bool, scale: float) -> reversal.Reversed:
        n = self.args.n
        z_reals, z_fakes = torch.randn(n, Z_DIM, generator=self.gen), torch.randn(n, Z_DIM, generator=self.gen)
        reals, fakes = self.images(scale * z_reals), self.images(z_fakes)
        init = None
        if warm:
            indices = list(range(n))
            self.prior.code_bank = dict(zip(indices, self.reverse(reals, use_rule=False).codes))
            init = self.prior._warm_codes(indices, n, with_fakes=True)
        return self.reverse(reals, fakes, init)

    def null(self, warm: bool) -> None:
        a = self.args
        stops, old_stops, steps = 0, 0, Counter()
        for _ in range(a.reversals):
            result = self.one(warm, 1.0)
            stops += result.stopped
            steps[result.steps] += result.stopped
            old_stops += any(p <= a.alpha for p in result.mmd_pvalues)
        name = "warm" if warm else "cold"
        print(f"    {name} start, the rule (whole reversal at {a.alpha:g}): {rate(stops, a.reversals)}"
              f"  stops by step: {dict(sorted(steps.items()))}")
        print(f"    {name} start, the old rule (every step at {a.alpha:g}): {rate(old_stops, a.reversals)}", flush=True)

    def power(self, warm: bool) -> None:
        a = self.args
        stops, steps = 0, Counter()
        for _ in range(a.power_reversals):
            result = self.one(warm, a.scale)
            stops += result.stopped
            steps[result.steps if result.stopped else "none"] += 1
        print(f"(b) power: reals G({a.scale:g} z), fakes G(z), {'warm' if warm else 'cold'} start: the rule stops "
              f"{rate(stops, a.power_reversals)}  steps at the stop: {dict(sorted(steps.items(), key=str))}",
              flush=True)

    def movement(self) -> None:
        a = self.args
        print(f"(c) codes' movement in {a.max_steps} steps, cold start, no rule, {a.n} images G(z), z ~ N(0, I):")
        for lr in a.lrs or [a.lr]:
            z = torch.randn(a.n, Z_DIM, generator=self.gen)
            start = torch.randn(a.n, Z_DIM, generator=self.gen)
            result = reversal.reverse(self.generator, self.images(z), lr=lr, max_steps=a.max_steps, init_std=1.0,
                                      measure=to_unit, init=start)
            moved = (result.codes - start).norm(dim=1).mean()
            print(f"    lr {lr:g}: moved {moved:.2f} of a start-to-code distance {(start - z).norm(dim=1).mean():.2f}, "
                  f"left {(result.codes - z).norm(dim=1).mean():.2f}; error {result.errors[0]:.4f} -> "
                  f"{result.errors[-1]:.4f}", flush=True)


def median_seconds(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost(args: argparse.Namespace) -> None:
    n, gen = args.n, torch.Generator().manual_seed(2)
    pooled = torch.randn(2 * n, Z_DIM, generator=gen)
    bandwidth = torch.cdist(pooled, pooled).median()
    orders = reversal.permutation_orders(n, args.permutations, device="cpu", rng=gen)
    draw = median_seconds(lambda: reversal.permutation_orders(n, args.permutations, device="cpu", rng=gen),
                          args.rounds)
    step = median_seconds(lambda: reversal.permutation_pvalue(reversal.permuted_mmd2(pooled, bandwidth, orders)),
                          args.rounds)
    generator = Generator((1, 28, 28), z_dim=Z_DIM, width=ModelConfig.g_width).eval()
    generator.requires_grad_(False)  # as in reverse(): only the codes get a gradient
    codes = torch.randn(2 * n, Z_DIM, generator=gen).requires_grad_(True)
    with torch.no_grad():
        targets = generator(torch.randn(2 * n, Z_DIM, generator=gen))

    def g_pass() -> None:
        torch.autograd.grad((generator(codes) - targets).square().sum(), codes)

    g_seconds = median_seconds(g_pass, args.rounds)
    print(f"(d) cost, 1 thread, median of {args.rounds}: the test of one step (N={n}, P={args.permutations}) "
          f"{step * 1e3:.2f} ms, its permutations' draw {draw * 1e3:.2f} ms (once per reversal); a forward+backward "
          f"of the default G (width {ModelConfig.g_width}) at batch {2 * n}: {g_seconds * 1e3:.1f} ms; ratio "
          f"{step / g_seconds:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="reals per reversal (as many fakes)")
    parser.add_argument("--width", type=int, default=8, help="G's width (the default G's: 64)")
    parser.add_argument("--lr", type=float, default=ReversalConfig.lr)
    parser.add_argument("--max-steps", type=int, default=ReversalConfig.max_steps)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--looks", type=int, default=ReversalConfig.mmd_looks, help="0: every step")
    parser.add_argument("--permutations", type=int, default=ReversalConfig.mmd_permutations)
    parser.add_argument("--reversals", type=int, default=500, help="reversals per start under the null (a)")
    parser.add_argument("--power-reversals", type=int, default=200, help="reversals under the shift (b)")
    parser.add_argument("--scale", type=float, default=1.5, help="the reals' codes' scale in (b)")
    parser.add_argument("--lrs", type=float, nargs="*", help="learning rates for (c); default: --lr")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds for (d)")
    parser.add_argument("--parts", default="abcd", help="which parts to run")
    parser.add_argument("--starts", nargs="+", choices=("cold", "warm"), default=["cold", "warm"],
                        help="for (a) and (b)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = Bench(args)
    print(f"{args.n} reals + {args.n} fakes, G width {args.width}, z_dim {Z_DIM}, lr {args.lr:g}, max_steps "
          f"{args.max_steps}, looks {args.looks or args.max_steps}, P {args.permutations}, alpha {args.alpha:g}")
    if "a" in args.parts:
        print(f"(a) null: reals and fakes both G(z), z ~ N(0, I), {args.reversals} reversals per start")
        for start in args.starts:
            bench.null(warm=start == "warm")
    if "b" in args.parts:
        for start in args.starts:
            bench.power(warm=start == "warm")
    if "c" in args.parts:
        bench.movement()
    if "d" in args.parts:
        cost(args)


if __name__ == "__main__":
    main()
