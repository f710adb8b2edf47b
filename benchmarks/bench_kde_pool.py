"""Does a KDE prior over one batch of reversed codes cap the variety of the samples drawn from it (prior.pool)?

One trained generator (RUN, e.g. a clean trial of the paper table's sweep), its samples from N(0, I) and from KDEs
over the reversed codes of 64, 256 and 1024 training images at two bandwidths; FID and classifier score of each set
on the training monitor's classifier and test-split statistics. Same G throughout: only the prior changes.

    .venv/bin/python benchmarks/bench_kde_pool.py runs/paper_table/trials/0000_arm=clean_seed=0 [--samples 2000]
"""

from __future__ import annotations

import argparse

import torch
from gansweep.config.schema import ReversalConfig
from gansweep.data.sources import load_source
from gansweep.evaluation.monitor import FidMonitor
from gansweep.evaluation.protocol import prepare_monitor
from gansweep.gan.priors import KDEPrior, NormalPrior
from gansweep.gan.reversal import reverse
from gansweep.gan.sampler import Sampler
from gansweep.nets.pixels import to_unit
from gansweep.run.run_dir import load_sampler, resolve_checkpoint

POOLS = (64, 256, 1024)  # one batch, 4 and 16 batches of codes
BANDWIDTHS = (0.1, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--reversal-steps", type=int, default=ReversalConfig.max_steps,
                        help="the project's reversal.max_steps default")
    args = parser.parse_args()

    sampler, cfg, step = load_sampler(*resolve_checkpoint(args.run))
    generator = sampler.generator
    monitor = FidMonitor(prepare_monitor(cfg), args.samples, 0, torch.device("cpu"))
    train = load_source(cfg.data.name, cfg.data.root, split="train", limit=max(POOLS)).images
    targets = torch.as_tensor(train, dtype=torch.float32) / 255  # in [0, 1], the scale reversal.lr is set for
    codes = reverse(generator, targets, lr=cfg.reversal.lr, max_steps=args.reversal_steps, measure=to_unit,
                    init_std=cfg.reversal.init_std, rng=torch.Generator().manual_seed(0)).codes

    def figures(prior) -> tuple[float, float]:
        """The figures of the run's G under PRIOR, its samples drawn with seed 1."""
        result = monitor.score(Sampler(generator, prior).draw(args.samples, seed=1))
        return result["fid"], result["classifier_score"]

    print(f"{args.run} (step {step}), {args.samples} samples per prior, codes from {args.reversal_steps} reversal steps")
    print(f"{'prior':>26}  {'FID':>6}  {'score':>5}")
    fid, score = figures(NormalPrior(generator.z_dim))
    print(f"{'N(0, I)':>26}  {fid:6.2f}  {score:5.2f}")
    for n in POOLS:
        for h in BANDWIDTHS:
            fid, score = figures(KDEPrior(codes[:n], h))
            print(f"{f'KDE, {n} codes, h={h}':>26}  {fid:6.2f}  {score:5.2f}")


if __name__ == "__main__":
    main()
