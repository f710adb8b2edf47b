"""The streamed training set at CelebA scale (issue 12): the driver's peak memory at 10k and 100k images, the
data-wait fraction and images/s of a 64x64 training run, and the seconds from fit() to the first step.

It generates a 64x64 RGB Parquet set of PNG-encoded images (smooth colour fields with noise, like photos in
size; not committed) and runs `gansweep train` on it as a user would, in AmbientGAN mode (Block-Pixel measured in
the stream). With --rev REV the same runs are made with an earlier commit (checked out in a git worktree), the
one that held the whole set in memory, side by side, one after the other.

    .venv/bin/python benchmarks/bench_stream.py [--images 100000] [--rev cc859d5] [--data DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE, ROWS_PER_FILE, ROW_GROUP = 64, 10_000, 1_000
TRAIN = ["mode=ambient", "measurement.name=block_pixel", "measurement.p=0.5", "data.name=parquet",
         "model.g_width=32", "model.d_width=32", "train.batch_size=64", "train.log_every=10",
         "eval.every=0", "eval.n_samples=0"]


def _write_file(path: str, first: int, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(first)
    images, grid = [], np.linspace(0, 1, SIZE, dtype=np.float32)
    for _ in range(n):
        colours = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        t = (grid[:, None] * rng.uniform(0, 1) + grid[None, :] * rng.uniform(0, 1))[..., None] / 2
        pixels = colours[0] * (1 - t) + colours[1] * t + rng.normal(0, 12, (SIZE, SIZE, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    table = pa.table({"image": images, "label": pa.array(rng.integers(0, 10, n))})
    pq.write_table(table, path, row_group_size=ROW_GROUP)


def generate(folder: Path, n: int) -> None:
    """N images in files of ROWS_PER_FILE, written by two processes; kept between runs (a file per 10k images)."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"part-{first // ROWS_PER_FILE:04d}.parquet"), first, min(ROWS_PER_FILE, n - first))
            for first in range(0, n, ROWS_PER_FILE)]
    jobs = [job for job in jobs if not Path(job[0]).is_file()]
    if jobs:
        start = time.time()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_write_file, *zip(*jobs)))
        print(f"generated {len(jobs) * ROWS_PER_FILE} images in {time.time() - start:.0f} s", flush=True)


def _peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    """The driver process's own peak resident memory (Linux's VmHWM; Ray's processes are others), read every
    0.1 s until it exits."""
    while not stop.is_set():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        time.sleep(0.1)


def train(source: Path, data: Path, n: int, steps: int, out: Path) -> dict:
    """One `gansweep train` run of the tree at SOURCE on the first N images; its figures."""
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(out)]
    for item in [*TRAIN, f"data.root={data}", f"data.limit={n}", f"train.steps={steps}",
                 f"train.checkpoint_every={steps}"]:
        args += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(source / "platform"), "GANSWEEP_CACHE": str(out) + ".cache"}
    start = time.time()
    with open(str(out) + ".log", "w") as log:
        process = subprocess.Popen(args, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=_peak_rss, args=(process.pid, stop, peak))
        sampler.start()
        code = process.wait()
        stop.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"{source} on {n} images: exit {code}; see {out}.log")
    result = json.loads((out / "result.json").read_text())
    waits, rates = _scalars(out / "tensorboard")
    return {"wall_s": time.time() - start, "driver_peak_rss_gb": peak[0] / 2**30,
            "fit_to_first_step_s": result["time_to_first_step_s"],
            # The first window includes the stream's start (Ray Data's first tasks): reported apart.
            "data_wait_first_window": waits[0], "data_wait_after": float(np.mean(waits[1:])),
            "images_per_s_after": float(np.mean(rates[1:]))}


def _scalars(log_dir: Path) -> tuple[list[float], list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return ([e.value for e in events.Scalars("perf/data_wait_frac")],
            [e.value for e in events.Scalars("perf/images_per_s")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rev", help="an earlier commit to run side by side (the in-memory training set)")
    parser.add_argument("--rev-images", type=int, nargs="*", default=[10_000],
                        help="the set sizes to run the earlier commit on (it holds them as float32, twice)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "gansweep-bench-stream")
    args = parser.parse_args()
    generate(args.data, args.images)
    work = Path(tempfile.mkdtemp())
    trees = [("working tree", REPO, sorted({10_000, args.images}))]
    if args.rev:
        tree = work / "rev"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", str(tree), args.rev], check=True)
        trees.insert(0, (args.rev, tree, args.rev_images))
    try:
        for name, source, sizes in trees:
            for n in sizes:
                figures = train(source, args.data, n, args.steps, work / f"{name.replace(' ', '_')}-{n}")
                print(f"{name}, {n} images: " + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()), flush=True)
    finally:
        if args.rev:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "rev")], check=False)
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
