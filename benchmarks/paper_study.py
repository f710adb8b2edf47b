"""The AmbientGAN table (search_spaces/paper_table.yaml): every row x arm x seed trained and evaluated.

A grid over arms and seeds with shared rows, so this script loops over it rather than `gansweep sweep`:
it starts one Ray head with the machine's CPUs, runs `gansweep train` for each run (two at a time by default, each connecting to that
head), and writes the table (FID mean ± std over seeds, classifier score) and one sample grid per row.
A run whose result.json already holds its evaluation is not trained again, so an interrupted study
resumes where it stopped.

    .venv/bin/python benchmarks/paper_study.py search_spaces/paper_table.yaml --output runs/paper_table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_head import RAY_ENV, start_head, stop_head  # noqa: E402


@dataclass
class Run:
    row: str  # "clean" for the clean arm, shared by every row
    arm: str
    seed: int
    overrides: dict = field(default_factory=dict)
    point: str | None = None  # the injection point of a hidden_ambient run

    @property
    def name(self) -> str:
        arm = f"{self.arm}@{self.point}" if self.point else self.arm
        return f"{self.row}/{arm}-s{self.seed}"


def _hidden_overrides(hidden: dict, point: str, clean_shape=(1, 28, 28), cfg_model=None) -> dict:
    """The row's hidden measurement as config keys; patch_fraction becomes a patch size for this point's map."""
    from gansweep.nets.models import Generator

    spec = dict(hidden)
    if "patch_fraction" in spec:
        generator = Generator(clean_shape, z_dim=cfg_model["z_dim"], width=cfg_model["g_width"])
        side = min(generator.feature_shape(point)[1:])
        spec["patch"] = max(1, round(spec.pop("patch_fraction") * side))
    return {"hidden.inject_at": point, **{f"hidden.measurement.{k}": v for k, v in spec.items()}}


def plan(study: dict) -> tuple[list[Run], list[Run], dict]:
    """(pilot runs, other runs, rows): the pilot tries every injection point on the headline row."""
    headline = study["headline"]
    model = {"z_dim": study["fixed"].get("model.z_dim", 64), "g_width": study["fixed"].get("model.g_width", 64)}
    rows = study["rows"]

    def measured(row: str) -> dict:
        return {f"measurement.{k}": v for k, v in rows[row]["measurement"].items()}

    pilot = [
        Run(headline["row"], "hidden_ambient", headline["seeds"][0],
            {**measured(headline["row"]), **study["arms"]["hidden_ambient"],
             **_hidden_overrides(rows[headline["row"]]["hidden"], point, cfg_model=model)}, point)
        for point in study["injection_points"]
    ]
    others = [Run("clean", "clean", seed, dict(study["arms"]["clean"])) for seed in headline["seeds"]]
    for row in rows:
        seeds = headline["seeds"] if row == headline["row"] else study["seeds"]
        for arm in [arm for arm in study["arms"] if arm != "clean"]:
            for seed in seeds:
                if arm == "hidden_ambient" and row == headline["row"] and seed == headline["seeds"][0]:
                    continue  # the pilot's best run
                others.append(Run(row, arm, seed, {**measured(row), **study["arms"][arm]}))
    # Hidden runs last: they need the pilot's choice of injection point.
    others.sort(key=lambda run: run.arm == "hidden_ambient")
    return pilot, others, {"model": model, "rows": rows}


def finished(run_dir: Path) -> dict | None:
    from gansweep.run.run_dir import read_result

    summary = read_result(run_dir)
    return summary if summary is not None and "evaluation" in summary else None


def train(run: Run, fixed: dict, output: Path, address: str) -> dict:
    run_dir = output / run.name
    if (summary := finished(run_dir)) is not None:
        print(f"[study] {run.name}: done before (fid {summary['evaluation']['fid']:.2f})", flush=True)
        return summary
    run_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(run_dir)]
    for key, value in {**fixed, "train.seed": run.seed, **run.overrides}.items():
        args += ["--set", f"{key}={json.dumps(value) if isinstance(value, (list, dict)) else value}"]
    start = time.time()
    print(f"[study] {run.name}: started", flush=True)
    with (run_dir / "train.log").open("w") as log:
        code = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env={**RAY_ENV, "RAY_ADDRESS": address})
    summary = finished(run_dir)
    if code.returncode != 0 or summary is None:
        raise RuntimeError(f"{run.name} failed (exit {code.returncode}); see {run_dir / 'train.log'}")
    print(f"[study] {run.name}: fid {summary['evaluation']['fid']:.2f} in {time.time() - start:.0f} s", flush=True)
    return summary


def share_cpus(fixed: dict, cpus: int, concurrency: int) -> dict:
    """FIXED with each run's train.cpus_per_worker: its share of the head's CPUS with CONCURRENCY runs at once, less
    the data stream's reading tasks, which need CPUs beside the workers (run/plan.py; two runs of 1 CPU each on 2
    CPUs left the streams none, and every run waited at step 0). A fixed train.cpus_per_worker that leaves them
    none is refused."""
    from gansweep.config import ConfigError
    from gansweep.run.plan import plan_resources

    try:
        per_worker, fit = plan_resources(fixed.get("train.workers", 1), fixed.get("train.cpus_per_worker"), 0,
                                         {"CPU": cpus}, runs=concurrency)
    except ConfigError as exc:
        sys.exit(f"[study] {exc}")
    if fit < concurrency:
        sys.exit(f"[study] {concurrency} runs at once do not fit {cpus} CPUs with train.cpus_per_worker="
                 f"{fixed['train.cpus_per_worker']} (and their data streams): leave it out, or lower --concurrency")
    return {**fixed, "train.cpus_per_worker": round(per_worker, 4)}


def train_all(pilot: list[Run], others: list[Run], context: dict, fixed: dict, output: Path, concurrency: int) -> None:
    """Every run not finished yet, `concurrency` at a time on one Ray head started (and stopped) here."""
    head = start_head(os.cpu_count() or 2, output / "ray_head.log")
    address = head.address

    def submit(pool, runs):
        return {run.name: pool.submit(train, run, fixed, output, address) for run in runs}

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            # The queue is first in, first out: the pilot starts first; the hidden runs are queued once the
            # pilot has chosen the injection point, behind everything else.
            futures = submit(pool, pilot)
            futures.update(submit(pool, [run for run in others if run.arm != "hidden_ambient"]))
            pilot_fids = {run.point: futures[run.name].result()["evaluation"]["fid"] for run in pilot}
            point = min(pilot_fids, key=pilot_fids.get)
            print(f"[study] injection points: {pilot_fids} -> {point}", flush=True)
            hidden = [run for run in others if run.arm == "hidden_ambient"]
            for run in hidden:
                run.point = point
                run.overrides.update(_hidden_overrides(context["rows"][run.row]["hidden"], point,
                                                       cfg_model=context["model"]))
            futures.update(submit(pool, hidden))
            for future in futures.values():
                future.result()
    finally:
        stop_head(head)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def table(study: dict, results: dict[str, dict], point: str) -> str:
    """Markdown: one line per row, FID (mean ± std over seeds) and classifier score per arm."""
    by_cell: dict[tuple[str, str], list[dict]] = {}
    for name, summary in results.items():
        row, rest = name.split("/")
        arm = rest.split("-s")[0].split("@")[0]
        if "@" in rest and f"@{point}-" not in rest:
            continue  # a pilot run at an injection point that was not chosen
        by_cell.setdefault((row, arm), []).append(summary["evaluation"])

    def cell(row: str, arm: str) -> str:
        figures = by_cell.get((row, arm), [])
        if not figures:
            return "-"
        fid = _mean_std([f["fid"] for f in figures])
        score = np.mean([f["classifier_score"] for f in figures])
        return f"{fid} ({score:.2f})" + (f" n={len(figures)}" if len(figures) > 1 else "")

    arms = [arm for arm in study["arms"] if arm != "clean"]
    clean = cell("clean", "clean")  # trained once per seed; the same reference on every line
    lines = [f"| measurement | clean (shared) | {' | '.join(arms)} |", "|---" * (len(arms) + 2) + "|"]
    for row in study["rows"]:
        lines.append(f"| {row} | {clean} | " + " | ".join(cell(row, arm) for arm in arms) + " |")
    return "\n".join(lines)


def first_images(cfg, n: int) -> np.ndarray:
    """The first N images of CFG's training set as its run trained on them: the lossy set (mode ignore) or the
    restored one (mode unmeasure: the run's restored set in the cache, else those N restored here, as its Ray job
    restores them)."""
    import torch
    from gansweep.config import build_measurements
    from gansweep.data.restoration import restore
    from gansweep.data.sources import describe_source
    from gansweep.data.thetas import keyed_theta
    from gansweep.data.training_set import prepare_training_set, read_training_set

    source = describe_source(cfg.data.name, cfg.data.root, cfg.data.image_size, cfg.data.limit)
    training_set = prepare_training_set(cfg, build_measurements(cfg), source)
    images = read_training_set(training_set, limit=n)[0]
    if training_set.restoration is None:
        return images
    # Not restored in this cache (a report made elsewhere): read_training_set gave the lossy y of these images.
    measurement = training_set.stream.measurement
    theta = keyed_theta(measurement, training_set.clean_shape, range(len(images)), cfg.data.seed)
    restored = restore(measurement, torch.from_numpy(images), theta, **training_set.restoration)
    return np.rint(restored * 255) / 255  # as the restored set stores it: uint8 pixels


def sample_grids(study: dict, output: Path, figures_dir: Path, point: str) -> list[Path]:
    """One PNG per row: the lossy data, the restored data, then 36 samples of each arm's seed-0 run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from gansweep.run.run_dir import load_sampler, read_run_record, resolve_checkpoint
    from torchvision.utils import make_grid

    def grid(images) -> np.ndarray:
        images = torch.as_tensor(np.asarray(images[:36], dtype=np.float32)).clamp(0, 1)
        return make_grid(images, nrow=6, pad_value=1.0)[0].numpy()

    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in study["rows"]:
        seed = 0
        dirs = {arm: output / row / f"{arm}-s{seed}" for arm in study["arms"]}
        dirs["clean"] = output / "clean" / f"clean-s{seed}"
        dirs["hidden_ambient"] = output / row / f"hidden_ambient@{point}-s{seed}"
        dirs = {arm: path for arm, path in dirs.items() if finished(path) is not None}
        panels = []
        for arm, data_title in (("ignore", "lossy data"), ("unmeasure", "restored data")):
            if arm not in dirs:
                continue
            panels.append((data_title, grid(first_images(read_run_record(dirs[arm]).config, 36))))
        for arm in [arm for arm in study["arms"] if arm in dirs]:
            sampler, _, _ = load_sampler(*resolve_checkpoint(dirs[arm]))
            title = f"{arm} @{point}" if arm == "hidden_ambient" else arm
            panels.append((title, grid(sampler.draw(36, seed=0).numpy())))
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6), squeeze=False)
        for ax, (title, image) in zip(axes[0], panels):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(row, fontsize=10)
        fig.tight_layout()
        path = figures_dir / f"{row}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--output", type=Path, default=Path("runs/paper_table"))
    parser.add_argument("--figures", type=Path, default=Path(__file__).parent / "study")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a fixed key (e.g. train.steps=50 for a smoke run)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the finished runs")
    args = parser.parse_args()

    study = yaml.safe_load(args.study.read_text())
    fixed = dict(study["fixed"])
    for item in args.set:
        key, value = item.split("=", 1)
        fixed[key] = yaml.safe_load(value)
    fixed = share_cpus(fixed, os.cpu_count() or 2, args.concurrency)
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    pilot, others, context = plan(study)
    if not args.report_only:
        print(f"[study] {len(pilot) + len(others)} runs, {args.concurrency} at a time -> {output}", flush=True)

    wall = None
    if not args.report_only:
        start = time.time()
        train_all(pilot, others, context, fixed, output, args.concurrency)
        wall = time.time() - start

    # The report reads every finished run from disk: a study stopped part-way reports what it has.
    pilot_fids = {run.point: s["evaluation"]["fid"] for run in pilot if (s := finished(output / run.name))}
    if not pilot_fids:
        sys.exit(f"no pilot run has finished in {output}: nothing to report")
    point = min(pilot_fids, key=pilot_fids.get)
    for run in others:
        if run.arm == "hidden_ambient":
            run.point = point
    results = {run.name: s for run in pilot + others if (s := finished(output / run.name))}
    missing = [run.name for run in pilot + others if run.name not in results]
    markdown = table(study, results, point)
    grids = sample_grids(study, output, args.figures, point)
    report = {
        "wall_time_s": wall,
        "runs": len(results),
        "missing_runs": missing,
        "concurrency": args.concurrency,
        "fixed": fixed,
        "injection_point_fids": pilot_fids,
        "injection_point": point,
        "results": {name: {"evaluation": s["evaluation"], "wall_time_s": s["wall_time_s"]}
                    for name, s in results.items()},
    }
    (output / "study.json").write_text(json.dumps(report, indent=2))
    (output / "table.md").write_text(markdown + "\n")
    print(markdown)
    took = f" in {wall / 60:.1f} min" if wall is not None else ""
    print(f"[study] {len(results)} runs{took}, {len(missing)} missing; grids: {', '.join(map(str, grids))}")


if __name__ == "__main__":
    main()
