"""Better latent priors against the plain GAN on real Fashion-MNIST, at equal wall time.

Arms (--arms picks; default: the first KDE-GAN study's three): the plain GAN (z ~ N(0, I)); KDE-GAN
(Kilcher et al.) with a new prior before every step (reverse this step's real batch, KDE over its codes, then
one GAN step: Algorithm 2, the project's reversal and bandwidth defaults); KDE-GAN refreshing its prior every
10 steps (one reversal amortised over ten steps), and the same with the KDE over the last 16 refreshes' codes
(prior.pool=16) rather than one batch's; adversarial code learning (Yuan et al.): ACL-GAN and ACL-AE, with
samples G(C(z)).
Same data order, batch, seed, initial weights and architecture in every arm (mode clean).

The arms run side by side as concurrent processes with one torch thread each, released together by a
barrier, so the shared machine's noise hits all of them alike; each trains for the same budget of training
seconds. Each evaluates with the training monitor (FID and classifier score of --samples samples against
the clean test split's statistics, on the cached domain classifier) every --every seconds of training and
at doubling step counts (25, 50, 100, ...: the per-iteration view); evaluations are off the training clock.
Prints the curves and the comparison, writes them (JSON) and a plot (PNG) under --output.

    .venv/bin/python benchmarks/study_priors.py [--arms plain acl_gan] [--minutes 15] [--every 60] [--samples 2000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from gansweep.config.checks import validate
from gansweep.config.loading import load_config
from gansweep.data.sources import describe_source
from gansweep.run.training_set import prepare_training_set, read_training_set
from gansweep.evaluation.monitor import FidMonitor
from gansweep.evaluation.protocol import prepare_monitor
from gansweep.gan.build import build_gan

COMMON = ["mode=clean", "measurement.name=none"]
ARMS = {
    "plain": ["prior.name=normal"],
    "kde": ["prior.name=kde", "prior.refresh_every=1"],
    "kde_every10": ["prior.name=kde", "prior.refresh_every=10"],
    # The KDE over the last 16 refreshes' codes (1,024) rather than one batch's 64 (bench_kde_pool.py).
    "kde_every10_pool16": ["prior.name=kde", "prior.refresh_every=10", "prior.pool=16"],
    "acl_gan": ["acl.variant=gan"],
    "acl_ae": ["acl.variant=ae"],
}
DEFAULT_ARMS = ["plain", "kde", "kde_every10"]
FIRST_STEP_MARK = 25
NAME = "kde_gan_equal_time"


def batches(n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Indices of one batch after another, a new permutation each epoch: the same order in every arm."""
    epoch = 0
    while True:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        yield from order[: n - n % batch_size].split(batch_size)
        epoch += 1


def run_arm(name: str, overrides: list[str], args: argparse.Namespace, payload: dict, barrier) -> dict:
    """Train one arm for the budget of training seconds; returns its evaluations."""
    torch.set_num_threads(1)  # one core's worth each: the arms share the machine evenly
    cfg = load_config(None, [*COMMON, *overrides, f"train.batch_size={args.batch_size}", f"train.seed={args.seed}"])
    source = describe_source(cfg.data.name, cfg.data.root, cfg.data.image_size, cfg.data.limit, cfg.data.holdout)
    data = prepare_training_set(cfg, validate(cfg), source)
    images = torch.from_numpy(read_training_set(data)[0])  # the clean set, in memory: a small study's
    gan = build_gan(cfg, data.clean_shape)  # seeded by train.seed: the same initial G (and D) in every arm
    monitor = FidMonitor(payload, args.samples, cfg.train.seed, gan.sampler.device)
    order = batches(len(images), cfg.train.batch_size, cfg.train.seed)
    budget = 60 * args.minutes
    curve: list[dict] = []
    trained, cpu, step, reversal = 0.0, 0.0, 0, {}  # seconds of training (wall and this process's CPU)

    def evaluate(marks: list[str]) -> None:
        start = time.perf_counter()
        figures = monitor(gan.sampler)
        curve.append({"marks": marks, "train_s": trained, "step": step, **figures, **reversal,
                      "train_cpu_s": cpu, "eval_s": time.perf_counter() - start, "wall_s": start - wall_start})
        print(f"[{name}] {trained:6.1f} s trained, step {step:5d}: FID {figures['fid']:7.2f}, "
              f"classifier score {figures['classifier_score']:.2f} ({curve[-1]['eval_s']:.1f} s to evaluate)",
              flush=True)

    print(f"[{name}] ready ({' '.join(overrides)}); waiting for the other arms", flush=True)
    # Each arm blocks here until all have arrived, so each pool worker takes exactly one arm.
    barrier.wait(timeout=600)
    wall_start = time.perf_counter()
    evaluate(["time"])  # step 0: the same G in every arm
    next_time, next_step = args.every, FIRST_STEP_MARK
    while trained < budget:
        start, cpu_start = time.perf_counter(), time.process_time()
        indices = next(order)
        real = images[indices]
        step += 1
        if gan.prior.due(step):  # the train loop's rule: with refresh_every=1, a new prior before every step
            reversal = gan.prior.refresh(real, indices)
        gan.step([real])
        trained += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        marks = []
        if step == next_step:
            marks.append("step")
            next_step *= 2
        if trained >= next_time:
            marks.append("time")
            next_time += args.every
        if marks:
            evaluate(marks)
    return {"overrides": overrides, "curve": curve, "steps": step, "train_s": trained,
            "s_per_step": trained / step}


def at_time(curve: list[dict], mark: float, every: float) -> dict | None:
    """The evaluation at the time mark (the first one at or past it, within one mark's interval)."""
    return next((e for e in curve if "time" in e["marks"] and mark <= e["train_s"] < mark + every), None)


def cells(evaluation: dict | None, keys: tuple[str, ...] = ("step", "fid", "classifier_score")) -> str:
    """Markdown cells of one evaluation (dashes where an arm has none)."""
    if evaluation is None:
        return " | ".join("-" for _ in keys)
    return " | ".join(f"{evaluation[k]:.2f}" if isinstance(evaluation[k], float) else str(evaluation[k]) for k in keys)


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    names = list(results)
    lines = ["At equal training time (each arm's evaluation at the first step past the mark):", "",
             "| training s | " + " | ".join(f"{n} step | {n} FID | {n} score" for n in names) + " |",
             "|---|" + "---|---|---|" * len(names)]
    for mark in range(0, 60 * args.minutes + 1, args.every):
        lines.append(f"| {mark} | " + " | ".join(cells(at_time(results[n]["curve"], mark, args.every))
                                                for n in names) + " |")
    steps = sorted({e["step"] for r in results.values() for e in r["curve"] if "step" in e["marks"]})
    lines += ["", "At equal steps:", "",
              "| step | " + " | ".join(f"{n} FID | {n} score" for n in names) + " |",
              "|---|" + "---|---|" * len(names)]
    for s in steps:
        by_arm = [next((e for e in results[n]["curve"] if e["step"] == s), None) for n in names]
        lines.append(f"| {s} | " + " | ".join(cells(e, ("fid", "classifier_score")) for e in by_arm) + " |")
    reference_cost = results[names[0]]["s_per_step"]
    header = (f"| arm | steps | s/step | vs {names[0]} | final FID | last 3 marks | best FID (at s) "
              "| final score | last 3 marks | best score | CPU share |")
    lines += ["", f"Over the whole budget ({args.minutes} min of training each):", "",
              header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in results.items():
        final, curve = r["curve"][-1], r["curve"]
        best = min(curve, key=lambda e: e["fid"])
        last = [e for e in curve if "time" in e["marks"]][-3:]  # one evaluation is noisy: its neighbours too
        lines.append(f"| {n} | {r['steps']} | {r['s_per_step']:.3f} | {r['s_per_step'] / reference_cost:.2f}x | "
                     f"{final['fid']:.1f} | {sum(e['fid'] for e in last) / len(last):.1f} | "
                     f"{best['fid']:.1f} ({best['train_s']:.0f}) | {final['classifier_score']:.2f} | "
                     f"{sum(e['classifier_score'] for e in last) / len(last):.2f} | "
                     f"{max(e['classifier_score'] for e in curve):.2f} | {final['train_cpu_s'] / final['train_s']:.0%} |")
    lines.append("\nlast 3 marks: the mean of the last three time marks' figures. CPU share: the arm's CPU "
                 "seconds over its training seconds (the part of a core it got).")
    return "\n".join(lines)


def plot(results: dict[str, dict], path: Path, samples: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for name, result in results.items():
        curve = sorted(result["curve"], key=lambda e: e["step"])
        for row, metric in enumerate(("fid", "classifier_score")):
            for col, x in enumerate(("train_s", "step")):
                axes[row, col].plot([e[x] for e in curve], [e[metric] for e in curve], marker=".", label=name)
    for row, metric in enumerate((f"FID ({samples} samples, lower is better)", "classifier score (higher is better)")):
        axes[row, 0].set_ylabel(metric)
        axes[row, 1].set_xscale("symlog", linthresh=1)  # log steps, with step 0
    for col, x in enumerate(("training seconds (evaluations excluded)", "generator steps")):
        axes[1, col].set_xlabel(x)
    axes[0, 0].legend()
    fig.suptitle("Latent priors vs the plain GAN, Fashion-MNIST, side by side on CPU (1 thread each)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=15, help="training time of each arm (evaluations excluded)")
    parser.add_argument("--every", type=int, default=60, help="seconds of training between evaluations")
    parser.add_argument("--samples", type=int, default=2000, help="samples per evaluation")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=DEFAULT_ARMS,
                        help="the first is the reference of the cost ratios")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "study")
    parser.add_argument("--name", default=NAME, help=f"file name of the JSON and PNG (default {NAME})")
    args = parser.parse_args()
    if (60 * args.minutes) % args.every:
        parser.error("--every must divide the budget, so the last evaluation falls at its end")

    # Once, before the arms start: the cached classifier (trained on first use) and the test split's statistics.
    payload = prepare_monitor(load_config(None, COMMON))
    print(f"[study] arms {', '.join(args.arms)}: {args.minutes} min of training each, side by side, "
          f"evaluated every {args.every} s on {args.samples} samples", flush=True)
    ctx = mp.get_context("spawn")  # fresh interpreters: no torch thread pool inherited across fork
    start = time.time()
    with ctx.Manager() as manager, ctx.Pool(len(args.arms)) as pool:
        barrier = manager.Barrier(len(args.arms))
        outcomes = pool.starmap(run_arm, [(name, ARMS[name], args, payload, barrier) for name in args.arms],
                                chunksize=1)
    results = dict(zip(args.arms, outcomes))
    markdown = table(results, args)
    print(markdown)

    args.output.mkdir(parents=True, exist_ok=True)
    report = {
        "wall_time_s": time.time() - start,
        "torch": torch.__version__,
        "threads_per_arm": 1,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "common_overrides": COMMON,
        "evaluation": payload.provenance(args.samples, "cpu"),
        "arms": results,
    }
    (args.output / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    plot(results, args.output / f"{args.name}.png", args.samples)
    print(f"[study] {report['wall_time_s'] / 60:.1f} min; wrote {args.output / args.name}.json and .png", flush=True)


if __name__ == "__main__":
    main()
