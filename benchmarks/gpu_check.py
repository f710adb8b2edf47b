"""The GPU check (issue 14): what only a GPU machine can tell, in one run of at most 8 minutes on one GPU.

Sections, each independent (a failure is printed with its traceback's last line, and the next one runs), each with
its own time budget; a summary of their statuses at the end:

  1 configs        every training configuration trains a few steps on the device with finite losses: ms per step
  2 train_run      a `gansweep train` run with train.use_gpu=true: images/s and data-wait fraction (result.json)
  3 loop_vs_plain  the platform's GAN step, and section 2's train loop, against a plain PyTorch loop on the device
  4 packing        two runs packed on one GPU (train.gpus_per_worker=0.5, one Ray head) against one alone
  5 kde_cost       KDE-GAN's iteration at 5 / 20 / 50 reversal steps against a plain GAN step; torch.compile of G
  6 fid_devices    the cheap FID of the same samples scored on the GPU and on the CPU

No network is needed: the data are a synthetic 10-class set of 28x28 images written as MNIST IDX files into the
work folder (the domain classifier of section 6 is trained on it on first use, on the CPU, in seconds). Section 2's
run and section 4's runs have the cheap evaluation switched off (eval.every=0, eval.n_samples=0): their figures are
throughput; the GPU's evaluation path is section 6's.

    python benchmarks/gpu_check.py                          # on the GPU machine (see gpu_check.sh)
    python benchmarks/gpu_check.py --device cpu --quick     # every non-Ray section at a tiny size (~20 s, 2 cores)
    python benchmarks/gpu_check.py --device cpu --quick --with-ray   # also sections 2 and 4 (a few minutes)

Writes every figure to --json (default $OUT/gpu_check.json, else /tmp/gpu_check.json), rewritten after each section.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
SHAPE = (1, 28, 28)
NUM_CLASSES = 10

# Sizes: the project's defaults on the device; tiny ones for --quick. Budgets in seconds per section (8 minutes
# in all on the device, with the setup of gpu_check.sh and Python's start-up around them).
FULL = dict(width=64, z_dim=64, batch=64, steps=5, code_width=256, wgan_d_steps=5, n_train=4096, n_test=1000,
            plain_steps=20, plain_rounds=5, train_steps=600, train_log=100, pack_steps=1000, pack_log=50,
            kde_iterations=8, kde_rounds=3, compile_iterations=8, fid_samples=1000, fid_train_steps=50)
# 2048 images: fewer leave the domain classifier's BatchNorm statistics unsettled (chance test accuracy).
QUICK = dict(width=8, z_dim=16, batch=16, steps=2, code_width=32, wgan_d_steps=2, n_train=2048, n_test=256,
             plain_steps=3, plain_rounds=2, train_steps=20, train_log=10, pack_steps=30, pack_log=5,
             kde_iterations=1, kde_rounds=1, compile_iterations=1, fid_samples=200, fid_train_steps=3)
BUDGETS = {"configs": 50, "train_run": 80, "loop_vs_plain": 20, "packing": 140, "kde_cost": 90, "fid_devices": 40}
QUICK_BUDGETS = {"configs": 40, "train_run": 240, "loop_vs_plain": 15, "packing": 360, "kde_cost": 40,
                 "fid_devices": 30}
RAY_SECTIONS = ("train_run", "packing")
KDE_PAPER = {5: 1.9, 20: 4.9, 50: 9.8}  # Kilcher et al.'s iteration cost over a plain GAN step
KDE_GOAL = {5: 1.5, 20: 3.5, 50: 7.0}
PLAIN_GOAL = 0.95  # the train loop's images/s over a plain PyTorch loop's

# Section 1's configurations: name -> overrides of the defaults (sizes are added). "cascade" uses the config's
# list syntax, as a user writes it on the command line.
CASCADE = "measurement.steps=[{name: block_pixel, p: 0.3}, {name: block_patch, patch: 8}]"
CLEAN = ["mode=clean", "measurement.name=none"]
CONFIGS = {
    "clean": CLEAN,
    "ambient/block_pixel": ["measurement.name=block_pixel", "measurement.p=0.5"],
    "ambient/block_pixel_channel": ["measurement.name=block_pixel", "measurement.p=0.5", "measurement.unit=channel"],
    "ambient/block_patch": ["measurement.name=block_patch", "measurement.patch=14"],
    "ambient/keep_patch": ["measurement.name=keep_patch", "measurement.patch=14"],
    "ambient/extract_patch": ["measurement.name=extract_patch", "measurement.patch=14"],
    "ambient/gaussian_projection": ["measurement.name=gaussian_projection", "measurement.projections=100"],
    "ambient/convolve_noise": ["measurement.name=convolve_noise", "measurement.blur_radius=1.0",
                               "measurement.noise_std=0.1"],
    "ambient/cascade": ["measurement.name=cascade", CASCADE],
    "hidden/up1": ["measurement.name=none", "hidden.inject_at=up1", "hidden.measurement.name=block_pixel",
                   "hidden.measurement.p=0.5", "hidden.measurement.unit=channel"],
    "hidden/up1+block_pixel": ["measurement.name=block_pixel", "measurement.p=0.5", "hidden.inject_at=up1",
                               "hidden.measurement.name=block_patch", "hidden.measurement.patch=7"],
    "conditional": [*CLEAN, "model.conditional=true"],
    "hinge": [*CLEAN, "train.loss=hinge"],
    "minimax": [*CLEAN, "train.loss=minimax"],
    "wgan_gp": [*CLEAN, "train.loss=wgan_gp", "model.d_norm=layer"],  # train.d_steps added: n_critic
    "acl_gan": [*CLEAN, "acl.variant=gan"],
    "acl_gan_gp": [*CLEAN, "acl.variant=gan", "train.loss=wgan_gp", "model.d_norm=layer"],
    "acl_ae": [*CLEAN, "acl.variant=ae"],
    "kde_gan/clean": [*CLEAN, "prior.name=kde", "reversal.max_steps=20"],
    "kde_gan/ambient": ["measurement.name=block_pixel", "measurement.p=0.5", "prior.name=kde",
                        "reversal.max_steps=20"],
}


class SectionTimeout(Exception):
    """A section ran past its budget (raised by SIGALRM in the main thread)."""


def last_line(exc: BaseException) -> str:
    """The last line of an exception's traceback: its type and message."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def say(section: str, text: str) -> None:
    print(f"[{section}] {text}", flush=True)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work: timings on a GPU are otherwise only the launch's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finite(losses: dict) -> bool:
    return all(math.isfinite(float(v)) for v in losses.values())


def losses_text(losses: dict) -> str:
    return " ".join(f"{k}={float(v):.3f}" for k, v in losses.items())


# --- the data -----------------------------------------------------------------------------------------------------


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """N uint8 (N, 1, 28, 28) images of 10 classes and their labels: each class a fixed blocky template (the same for
    every seed), each image its class's template shifted by up to 2 pixels, scaled and noised. Learnable enough for
    the domain classifier and a GAN; made in well under a second."""
    templates = np.kron(np.random.default_rng(1234).random((NUM_CLASSES, 7, 7)), np.ones((4, 4)))  # (10, 28, 28)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    shifts = rng.integers(-2, 3, (n, 2))
    images = np.stack([np.roll(templates[k], tuple(s), axis=(0, 1)) for k, s in zip(labels, shifts)])
    images = images * rng.uniform(0.6, 1.0, (n, 1, 1)) + rng.normal(0.0, 0.05, images.shape)
    return (np.clip(images, 0, 1) * 255).astype(np.uint8)[:, None], labels.astype(np.int64)


def write_idx_set(root: Path, n_train: int, n_test: int) -> Path:
    """The synthetic set as MNIST's four IDX files in ROOT (data.name=mnist, data.root=ROOT reads them)."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_images(n, seed)
        header = np.array([2051, n, 28, 28], dtype=">u4").tobytes()  # magic 0x0803: uint8, 3 dims
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], dtype=">u4").tobytes()
                                                            + labels.astype(np.uint8).tobytes())
    return root


class Batches:
    """Synthetic real batches on the device as the train loop's stream gives them: clean images in [0, 1], or the
    measured y = f_theta(x) with each image's keyed theta (data/thetas.py), with labels and indices. Made once, before
    any timing, and cycled."""

    def __init__(self, cfg, measurement, batch: int, count: int, device: torch.device):
        from gansweep.data.thetas import measure_keyed

        images, labels = synthetic_images(batch * count, seed=2)
        self.items = []
        for i in range(count):
            rows = slice(i * batch, (i + 1) * batch)
            x = torch.from_numpy(images[rows]).float() / 255
            indices = torch.arange(i * batch, (i + 1) * batch)
            if cfg.measures_reals and cfg.mode == "ambient":
                with torch.no_grad():
                    x = measure_keyed(measurement, x, indices.tolist(), cfg.data.seed)[0]
            self.items.append((x.to(device), torch.from_numpy(labels[rows]).to(device), indices.to(device)))

    def take(self, i: int, d_steps: int) -> tuple[list, list, list]:
        """The reals, labels and indices of generator step I: D_STEPS batches, as the train loop draws them."""
        picked = [self.items[(i * d_steps + k) % len(self.items)] for k in range(d_steps)]
        return tuple(list(column) for column in zip(*picked))


def iteration(gan, batches: Batches, i: int) -> dict:
    """Generator step I (counted from 0) as the train loop runs it: KDE-GAN's prior refreshed first when due."""
    reals, labels, indices = batches.take(i, gan.cfg.train.d_steps)
    if gan.prior.due(i + 1):
        gan.prior.refresh(reals[0], indices[0])
    return gan.step(reals, labels)


def sized(size: dict, *overrides: str) -> list[str]:
    """OVERRIDES with the check's sizes (nets, batch, ACL's code width)."""
    return [f"model.z_dim={size['z_dim']}", f"model.g_width={size['width']}", f"model.d_width={size['width']}",
            f"train.batch_size={size['batch']}", f"acl.code_width={size['code_width']}", *overrides]


def build(size: dict, device: torch.device, *overrides: str):
    from gansweep.config.checks import validate
    from gansweep.config.loading import load_config
    from gansweep.gan.build import build_gan

    cfg = load_config(None, sized(size, *overrides))
    measurements = validate(cfg)
    gan = build_gan(cfg, SHAPE, device, num_classes=NUM_CLASSES, measurements=measurements)
    return cfg, gan, measurements


# --- the sections -------------------------------------------------------------------------------------------------


class Check:
    """The run's settings and what the sections share (section 2's throughput for section 3)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = torch.device(args.device)
        self.quick = args.quick
        self.size = QUICK if args.quick else FULL
        self.work = Path(args.work)
        self.data_root = self.work / "data"
        self.cache = self.work / "cache"
        self.shared: dict = {}
        self.deadline = math.inf  # the running section's, in time.monotonic()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def env(self, **extra: str) -> dict:
        """The environment of a `gansweep train` subprocess: the cache in the work folder, the source tree importable
        (also by its Ray workers) when gansweep is not installed."""
        return {**os.environ, "GANSWEEP_CACHE": str(self.cache), **extra}

    @property
    def validation(self) -> list[str]:
        """The synthetic set's validation split: the test split's size (the default 5,000 would hold out all of it)."""
        return [f"data.validation_size={self.size['n_test']}"]

    def train_overrides(self, steps: int, log_every: int, *extra: str) -> list[str]:
        """A `gansweep train` run on the synthetic set: AmbientGAN with Block-Pixel p=0.5 (the defaults), the
        check's sizes, one checkpoint at the end, no evaluation (throughput only)."""
        use_gpu = self.device.type == "cuda"
        return sized(self.size, "data.name=mnist", f"data.root={self.data_root}", *self.validation,
                     f"train.steps={steps}",
                     f"train.log_every={log_every}", f"train.checkpoint_every={steps}", f"train.image_every={steps}",
                     f"train.use_gpu={str(use_gpu).lower()}", "eval.every=0", "eval.n_samples=0", *extra)


def section_configs(check: Check, results: dict) -> str:
    """Each configuration: one warm-up step, then STEPS timed ones (device synchronised), losses finite."""
    size, device = check.size, check.device
    failed = 0
    for name, overrides in CONFIGS.items():
        overrides = list(overrides)
        if "train.loss=wgan_gp" in overrides:
            overrides.append(f"train.d_steps={size['wgan_d_steps']}")
        entry = results.setdefault(name, {"overrides": overrides})
        try:
            cfg, gan, measurements = build(size, device, *overrides)
            batches = Batches(cfg, measurements.image, size["batch"], 4, device)
            iteration(gan, batches, 0)  # warm-up: cuDNN's choices, the allocator, KDE-GAN's first prior
            sync(device)
            start = time.perf_counter()
            # The losses stay tensors until the timing ends: reading one waits for the device.
            steps = [iteration(gan, batches, i) for i in range(1, size["steps"] + 1)]
            sync(device)
            ms = 1000 * (time.perf_counter() - start) / size["steps"]
            all_finite = all(finite(losses) for losses in steps)
            losses = {k: float(v) for k, v in steps[-1].items()}
            entry.update(status="ok" if all_finite else "failed", finite=all_finite, ms_per_step=round(ms, 3),
                         steps=size["steps"], d_steps=cfg.train.d_steps, losses=losses)
            note = f" ({cfg.train.d_steps} D steps each)" if cfg.train.d_steps > 1 else ""
            note += " (with the prior's refresh: reversal of a real batch)" if cfg.prior.name == "kde" else ""
            say("configs", f"{name:<28} {entry['status']:<6} {size['steps']} steps, {ms:8.2f} ms/step{note}; "
                           f"{'finite' if all_finite else 'NON-FINITE'} losses: {losses_text(losses)}")
        except SectionTimeout:
            raise
        except Exception as exc:  # noqa: BLE001 - every configuration is tried and reported
            entry.update(status="failed", finite=False, error=last_line(exc))
            say("configs", f"{name:<28} failed: {last_line(exc)}")
        failed += entry["status"] != "ok"
    say("configs", f"{len(CONFIGS) - failed}/{len(CONFIGS)} configurations ok on {device}")
    return "ok" if failed == 0 else f"failed ({failed} of {len(CONFIGS)})"


def run_group(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start ARGS in its own process group (so that it and whatever it starts, Ray included, can be stopped
    together), its output into LOG; wait for it with wait_group."""
    with log.open("w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process group started by run_group (TERM, then KILL)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def wait_group(process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Wait for PROCESS; stopped past TIMEOUT seconds (or on any interruption); raises with its log's tail when it
    failed."""
    try:
        process.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        stop_group(process)
        raise RuntimeError(f"still running after {timeout:.0f} s: stopped (log: {log})") from None
    except BaseException:
        stop_group(process)
        raise
    if process.returncode != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        raise RuntimeError(f"exit status {process.returncode} (log: {log}): " + " | ".join(tail))


def train_command(output: Path, overrides: list[str]) -> list[str]:
    args = [sys.executable, "-m", "gansweep.cli", "train", "--output", str(output)]
    for item in overrides:
        args += ["--set", item]
    return args


def read_run(output: Path) -> dict:
    """A finished run's throughput figures from its result.json."""
    result = json.loads((output / "result.json").read_text())
    metrics = result["metrics"]
    losses = {k: metrics[k] for k in ("loss_d", "loss_g") if k in metrics}
    return {
        "images_per_s": metrics["images_per_s"], "data_wait_frac": metrics["data_wait_frac"],
        "step": result["step"], "wall_time_s": result["wall_time_s"],
        "time_to_first_step_s": result["time_to_first_step_s"], "losses": losses, "finite": finite(losses),
        "use_gpu": result["resources"]["use_gpu"], "cpus_per_worker": result["resources"]["cpus_per_worker"],
    }


def section_train_run(check: Check, results: dict) -> str:
    """One `gansweep train` run on its own local Ray, as a user starts it."""
    size = check.size
    output = check.work / "train_run"
    shutil.rmtree(output, ignore_errors=True)  # a rerun of the same folder would resume, not train
    overrides = check.train_overrides(size["train_steps"], size["train_log"])
    results["command"] = "gansweep train " + " ".join(f"--set {o}" for o in overrides)
    log = check.work / "train_run.log"
    process = run_group(train_command(output, overrides), check.env(), log)
    wait_group(process, check.left() - 5, log)
    run = read_run(output)
    results.update(run)
    check.shared["train_run"] = {**run, "overrides": overrides}
    say("train_run", f"{run['step']} steps of batch {size['batch']} on {'the GPU' if run['use_gpu'] else 'the CPU'}: "
                     f"{run['images_per_s']:.0f} images/s, data wait {100 * run['data_wait_frac']:.1f}% "
                     f"(last window of {size['train_log']} steps); fit {run['wall_time_s']:.1f} s, first step after "
                     f"{run['time_to_first_step_s']:.1f} s; losses {losses_text(run['losses'])}")
    say("train_run", "cheap evaluation off for this run (eval.every=0, eval.n_samples=0): see fid_devices")
    return "ok" if run["finite"] else "failed (non-finite losses)"


def plain_loop(cfg, device: torch.device) -> Callable[[torch.Tensor], tuple]:
    """A hand-written AmbientGAN step with Block-Pixel and the non-saturating loss, using no platform code but the
    nets and the pixel range: the same G and D (sizes, initial weights), optimisers and bf16 autocast on a GPU as the
    platform's step. (benchmarks/bench_train_step.py's plain_loop is the CPU's, at fixed sizes.)"""
    from gansweep.gan.runtime import autocast
    from gansweep.nets.models import Discriminator, Generator
    from gansweep.nets.pixels import to_unit

    m, t, p = cfg.model, cfg.train, cfg.measurement.p
    torch.manual_seed(t.seed)  # as the platform's players: G, then D
    G = Generator(SHAPE, z_dim=m.z_dim, width=m.g_width).to(device)
    D = Discriminator(SHAPE, width=m.d_width, norm=m.d_norm).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
    amp, rng = autocast(device), torch.Generator(device).manual_seed(1)

    def fake(n: int) -> torch.Tensor:
        with amp:
            images = G(torch.randn(n, m.z_dim, device=device, generator=rng))
        images = to_unit(images.float())
        return images * (torch.rand(images.shape, device=device, generator=rng) >= p)

    def step(real: torch.Tensor) -> tuple:
        with torch.no_grad():
            fakes = fake(len(real))
        with amp:
            real_logits, fake_logits = D(real).float(), D(fakes).float()
        loss_d = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with amp:
            loss_g = F.softplus(-D(fake(len(real))).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_d.detach(), loss_g.detach()

    return step


def images_per_s(step: Callable, real: torch.Tensor, steps: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(real)
    sync(device)
    return steps * len(real) / (time.perf_counter() - start)


def section_loop_vs_plain(check: Check, results: dict) -> str:
    """The platform's step in this process against the plain loop (interleaved rounds, so noise hits both alike),
    then section 2's train loop (Ray Train, the data streamed) against the same plain loop."""
    size, device = check.size, check.device
    cfg, gan, measurements = build(size, device, "measurement.name=block_pixel", "measurement.p=0.5")
    batches = Batches(cfg, measurements.image, size["batch"], 1, device)
    real, labels, _ = batches.items[0]
    platform = lambda x: gan.step([x], [labels])  # noqa: E731
    plain = plain_loop(cfg, device)
    for step in (plain, platform):  # warm-up
        images_per_s(step, real, 2, device)
    plain_rates, platform_rates = [], []
    for _ in range(size["plain_rounds"]):
        plain_rates.append(images_per_s(plain, real, size["plain_steps"], device))
        platform_rates.append(images_per_s(platform, real, size["plain_steps"], device))
    plain_rate, platform_rate = statistics.median(plain_rates), statistics.median(platform_rates)
    ratio = platform_rate / plain_rate
    results.update(plain_images_per_s=plain_rate, step_images_per_s=platform_rate, step_ratio=ratio,
                   rounds=size["plain_rounds"], steps_per_round=size["plain_steps"], batch=size["batch"])
    say("loop_vs_plain", f"gan.step in-process: {platform_rate:.0f} images/s, plain PyTorch loop {plain_rate:.0f} "
                         f"images/s: ratio {ratio:.3f} (goal >= {PLAIN_GOAL}: {'met' if ratio >= PLAIN_GOAL else 'NOT met'};"
                         f" median of {size['plain_rounds']} interleaved rounds of {size['plain_steps']} steps, batch "
                         f"{size['batch']}, data already on {device})")
    run = check.shared.get("train_run")
    if run is None:
        results["train_loop_ratio"] = None
        say("loop_vs_plain", "train loop (Ray Train) vs plain: not measured, section train_run gave no result "
                             "(skipped or failed)")
        return "ok"
    loop_ratio = run["images_per_s"] / plain_rate
    results.update(train_loop_images_per_s=run["images_per_s"], train_loop_ratio=loop_ratio)
    threads = "" if device.type == "cuda" else (f"; on the CPU the run's worker had {run['cpus_per_worker']:g} CPUs and "
                                                f"this process {torch.get_num_threads()} threads")
    say("loop_vs_plain", f"train loop (section train_run, Ray Train, data streamed, data wait "
                         f"{100 * run['data_wait_frac']:.1f}%): {run['images_per_s']:.0f} images/s vs plain "
                         f"{plain_rate:.0f}: ratio {loop_ratio:.3f} (goal >= {PLAIN_GOAL}: "
                         f"{'met' if loop_ratio >= PLAIN_GOAL else 'NOT met'}){threads}")
    return "ok"


def logged_steps(output: Path) -> list[tuple[float, int]]:
    """(wall time, step) of each progress report of a run, from its TensorBoard images/s scalars."""
    from gansweep.run.summaries import SCALAR_TAGS
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.wall_time, event.step) for event in events.Scalars(SCALAR_TAGS["images_per_s"])]


def rate_between(logged: list[tuple[float, int]], start: float, end: float, images_per_step: int) -> float | None:
    """Images/s of a run between its first and last report inside [START, END]; None with fewer than two there."""
    inside = [(t, step) for t, step in logged if start - 1e-6 <= t <= end + 1e-6]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (t0, s0), (t1, s1) = inside[0], inside[-1]
    return (s1 - s0) * images_per_step / (t1 - t0)


def section_packing(check: Check, results: dict) -> str:
    """One run alone on a local Ray head, then two at once on it, each train.gpus_per_worker=0.5 (on the CPU: two
    runs of train.cpus_per_worker=0.5, the same code path without a GPU). Each run's images/s is measured between its
    progress reports (their TensorBoard wall times), the pair's over the time both were training, so that neither's
    start-up or end counts as packed."""
    sys.path.insert(0, str(BENCHMARKS))
    from local_head import RAY_ENV, start_head, stop_head

    size = check.size
    share = ["train.gpus_per_worker=0.5"] if check.device.type == "cuda" else ["train.cpus_per_worker=0.5"]
    images_per_step = size["batch"]  # train.d_steps=1
    results["share"] = share[0]
    root = check.work / "packing"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    head = start_head(os.cpu_count() or 2, root / "head.log")
    try:
        env = {**RAY_ENV, **check.env(RAY_ADDRESS=head.address)}

        def runs(names: list[str]) -> list[dict]:
            """NAMES trained at once on the head (a train.seed each): their result.json figures and reports."""
            started = []
            for k, name in enumerate(names):
                overrides = check.train_overrides(size["pack_steps"], size["pack_log"], *share, f"train.seed={k}")
                log = root / f"{name}.log"
                started.append((name, run_group(train_command(root / name, overrides), env, log), log))
            try:
                for name, process, log in started:
                    wait_group(process, check.left() - 10, log)
            finally:
                for _, process, _ in started:
                    stop_group(process)
            return [{**read_run(root / name), "logged": logged_steps(root / name)} for name in names]

        alone = runs(["alone"])[0]
        alone_rate = rate_between(alone["logged"], -math.inf, math.inf, images_per_step)
        results["alone"] = {**alone, "images_per_s_between_reports": alone_rate}
        say("packing", f"one run alone ({share[0]}): {alone_rate:.0f} images/s between its first and last report "
                       f"(every {size['pack_log']} steps), data wait {100 * alone['data_wait_frac']:.1f}% (last window)")
        pair = runs(["pair_0", "pair_1"])
    finally:
        stop_head(head)
    start = max(run["logged"][0][0] for run in pair)  # both past their first report ...
    end = min(run["logged"][-1][0] for run in pair)  # ... and neither past its last
    span = max(run["logged"][-1][0] for run in pair) - min(run["logged"][0][0] for run in pair)
    rates = [rate_between(run["logged"], start, end, images_per_step) for run in pair]
    results["pair"] = [{**run, "images_per_s_while_both_trained": rate} for run, rate in zip(pair, rates)]
    overlap = max(0.0, end - start) / max(span, 1e-9)
    results["training_overlap"] = overlap
    if None in rates:
        say("packing", f"two runs at once: they trained together for {max(0.0, end - start):.1f} s "
                       f"({100 * overlap:.0f}% of their span), too little for two reports each: no packed figure")
        return "failed (the two runs hardly trained at the same time)"
    total = sum(rates)
    ratio = total / alone_rate
    waits = ", ".join(f"{100 * run['data_wait_frac']:.1f}%" for run in pair)
    results.update(total_images_per_s=total, ratio_total_over_alone=ratio)
    say("packing", "two runs at once: " + " + ".join(f"{rate:.0f}" for rate in rates)
        + f" = {total:.0f} images/s in total while both trained ({end - start:.1f} s, {100 * overlap:.0f}% of their "
          f"span): {ratio:.2f}x one alone; data wait {waits} (last windows)")
    ok = alone["finite"] and all(run["finite"] for run in pair)
    return "ok" if ok else "failed (non-finite losses)"


def section_kde_cost(check: Check, results: dict) -> str:
    """As benchmarks/bench_kde_gan.py, on the device: plain GAN steps and KDE-GAN iterations (Algorithm 2: reverse
    a real batch, re-estimate the prior, one GAN step) side by side with the same weights, interleaved rounds, the
    median ms per iteration; then each again with G compiled (torch.compile), where CUDA is. Without pretraining
    (bench_kde_gan.py's 300 plain steps): with reversal.mmd_threshold 0 a reversal always takes max_steps, so its
    cost does not depend on how well G reconstructs."""
    from gansweep.gan.runtime import unwrap

    size, device = check.size, check.device
    arms = {"plain": None, "kde 5": 5, "kde 20": 20, "kde 50": 50}

    def make(arm: str):
        extra = ["prior.name=kde", f"reversal.max_steps={arms[arm]}"] if arms[arm] else []
        return build(size, device, *CLEAN, *extra)[1]

    gans = {arm: make(arm) for arm in arms}
    for arm in arms:  # the same weights in every arm
        gans[arm].load_state_dict(gans["plain"].state_dict())
    cfg = gans["plain"].cfg
    batches = Batches(cfg, None, size["batch"], 4, device)

    def ms_per_iteration(gan, n: int, first: int = 0) -> float:
        sync(device)
        start = time.perf_counter()
        for i in range(first, first + n):
            iteration(gan, batches, i)
        sync(device)
        return 1000 * (time.perf_counter() - start) / n

    for arm in arms:
        ms_per_iteration(gans[arm], 1)  # warm-up
    times = {arm: [] for arm in arms}
    for _ in range(size["kde_rounds"]):
        for arm in arms:
            times[arm].append(ms_per_iteration(gans[arm], size["kde_iterations"], 1))
    plain = statistics.median(times["plain"])
    eager = results.setdefault("eager", {})
    for arm, steps in arms.items():
        ms = statistics.median(times[arm])
        eager[arm] = {"ms_per_iteration": ms, "over_plain": ms / plain}
        if steps:
            eager[arm].update(paper=KDE_PAPER[steps], goal=KDE_GOAL[steps], goal_met=ms / plain <= KDE_GOAL[steps])
            say("kde_cost", f"{arm:<7} {ms:8.2f} ms/iteration = {ms / plain:5.2f}x plain (paper {KDE_PAPER[steps]}x, "
                            f"goal <= {KDE_GOAL[steps]}x: {'met' if ms / plain <= KDE_GOAL[steps] else 'NOT met'})")
        else:
            say("kde_cost", f"{arm:<7} {ms:8.2f} ms/step (batch {size['batch']}, width {size['width']}, median of "
                            f"{size['kde_rounds']} interleaved rounds of {size['kde_iterations']} iterations)")

    compiled = results.setdefault("compiled", {})
    # G compiled where the iteration runs it: the GAN step (players.G) and the reversal (the prior's plain G) share
    # the compiled module, whose weights are G's own. mode "reduce-overhead" adds CUDA graphs. Most telling first.
    if device.type == "cuda":
        plan = [("kde 20", {"mode": "default"}), ("plain", {"mode": "default"}),
                ("kde 20", {"mode": "reduce-overhead"}), ("plain", {"mode": "reduce-overhead"})]
    else:  # no gain to measure, but the wiring is checked: dynamo traces G, run eagerly (no code generated)
        compiled["status"] = "skipped: no CUDA"
        say("kde_cost", "torch.compile of G: skipped: no CUDA (the wiring is checked with backend='eager', untimed)")
        plan = [("kde 20", {"backend": "eager"})]
    reserve = 30 if device.type == "cuda" else 10  # seconds an arm needs at least: a compile, or the eager trace
    for arm, options in plan:
        key = f"{arm} / {', '.join(f'{k}={v}' for k, v in options.items())}"
        label = f"torch.compile(G, {', '.join(f'{k}={v!r}' for k, v in options.items())}) {arm}"
        if check.left() < reserve:
            compiled[key] = {"status": "skipped: section budget spent"}
            say("kde_cost", f"{label}: skipped: section budget spent")
            continue
        # Each arm within the section's budget less 5 s, so a long compile ends the arm, not the section.
        arm_deadline = time.monotonic() + check.left() - 5
        signal.setitimer(signal.ITIMER_REAL, check.left() - 5)
        try:
            gan = make(arm)
            gan.load_state_dict(gans["plain"].state_dict())
            G = torch.compile(unwrap(gan.players.G), **options)
            gan.players.G = G
            if arms[arm]:
                gan.prior.generator = G
            start = time.perf_counter()
            ms_per_iteration(gan, 3)  # compiles: train and eval mode, G's weights with and without gradients
            compile_s = time.perf_counter() - start
            entry = compiled[key] = {"status": "ok", "compile_and_warmup_s": compile_s}
            if device.type != "cuda":
                say("kde_cost", f"{label}: ran ({compile_s:.1f} s for 3 iterations, tracing included)")
                continue
            ms = statistics.median(ms_per_iteration(gan, size["compile_iterations"], 3 + r * 100)
                                   for r in range(size["kde_rounds"]))
            gain = eager[arm]["ms_per_iteration"] / ms
            entry.update(ms_per_iteration=ms, gain_over_eager=gain, over_plain_eager=ms / plain)
            say("kde_cost", f"{label}: {ms:.2f} ms/iteration = {ms / plain:.2f}x plain eager, {gain:.2f}x faster than "
                            f"eager ({compile_s:.0f} s to compile and warm up)")
        except Exception as exc:  # noqa: BLE001 - a compile failure is a finding, not the end of the check
            if isinstance(exc, SectionTimeout) or time.monotonic() >= arm_deadline:  # also when torch wrapped it
                compiled[key] = {"status": "timeout: the section's budget ran out while compiling"}
                say("kde_cost", f"{label}: timeout: the section's budget ran out while compiling")
                break
            compiled[key] = {"status": "failed", "error": last_line(exc)}
            say("kde_cost", f"{label}: failed: {last_line(exc)}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, max(check.left(), 0.01))  # the section's own alarm again
    return "ok"


def section_fid_devices(check: Check, results: dict) -> str:
    """The cheap evaluation's classifier (trained on the synthetic set on first use, on the CPU, cached) and its
    reference statistics; a generator trained a few steps; its samples drawn once and scored by FidMonitor on the
    GPU and on the CPU; and the train loop's own path (FidMonitor(sampler) on the device)."""
    from gansweep.config.loading import load_config
    from gansweep.evaluation.monitor import FidMonitor
    from gansweep.evaluation.protocol import prepare_monitor

    size, device = check.size, check.device
    start = time.perf_counter()
    payload = prepare_monitor(load_config(None, ["data.name=mnist", f"data.root={check.data_root}", *check.validation,
                                                 f"data.cache_dir={check.cache}"]))
    results.update(classifier_fingerprint=payload.classifier_fingerprint, n_real=payload.n_real,
                   reference_split=payload.reference_split, prepare_s=time.perf_counter() - start)
    say("fid_devices", f"domain classifier {payload.classifier_fingerprint} and the {payload.reference_split} split's "
                       f"statistics ({payload.n_real} images) ready in {results['prepare_s']:.1f} s")
    cfg, gan, _ = build(size, device, *CLEAN)
    batches = Batches(cfg, None, size["batch"], 4, device)
    for i in range(size["fid_train_steps"]):  # away from the initial, nearly constant, images
        iteration(gan, batches, i)
    n = size["fid_samples"]
    samples = gan.sampler.draw(n, seed=7).cpu()
    results["n_fake"] = n

    def score(on: torch.device) -> tuple[dict, float]:
        monitor = FidMonitor(payload, n, 0, on)
        sync(on)
        begin = time.perf_counter()
        figures = monitor.score(samples.to(on))
        return figures, time.perf_counter() - begin

    cpu, cpu_s = score(torch.device("cpu"))
    results["cpu"] = {**cpu, "seconds": cpu_s}
    if device.type == "cuda":
        other, other_s, label = *score(device), "gpu"
    else:  # no GPU: the comparison's code path, CPU against CPU (the same figures expected)
        other, other_s, label = *score(torch.device("cpu")), "cpu_again"
        say("fid_devices", "GPU vs CPU: skipped: no CUDA; scoring the same samples twice on the CPU instead")
    results[label] = {**other, "seconds": other_s}
    difference = abs(other["fid"] - cpu["fid"])
    results.update(fid_abs_difference=difference, fid_rel_difference=difference / max(abs(cpu["fid"]), 1e-12),
                   classifier_score_abs_difference=abs(other["classifier_score"] - cpu["classifier_score"]))
    say("fid_devices", f"the same {n} samples: fid on {label} {other['fid']:.6f} ({other_s:.2f} s), on cpu "
                       f"{cpu['fid']:.6f} ({cpu_s:.2f} s): |difference| {difference:.3g} "
                       f"({100 * results['fid_rel_difference']:.4f}%); classifier score {other['classifier_score']:.4f} "
                       f"vs {cpu['classifier_score']:.4f}")
    # The train loop's path: the monitor on the run's device scoring the sampler's own draws there.
    figures = FidMonitor(payload, n, 0, device)(gan.sampler)
    results["train_loop_path"] = figures
    say("fid_devices", f"train loop's path, FidMonitor(sampler) on {device}: fid {figures['fid']:.4f}, classifier "
                       f"score {figures['classifier_score']:.4f} (its own draws, so not the figures above)")
    ok = all(math.isfinite(v) for v in (cpu["fid"], other["fid"], figures["fid"]))
    return "ok" if ok else "failed (non-finite FID)"


SECTIONS = {
    "configs": section_configs,
    "train_run": section_train_run,
    "loop_vs_plain": section_loop_vs_plain,
    "packing": section_packing,
    "kde_cost": section_kde_cost,
    "fid_devices": section_fid_devices,
}


# --- running them -------------------------------------------------------------------------------------------------


def _alarm(signum, frame):
    raise SectionTimeout


def run_section(check: Check, name: str, budget: float, report: dict) -> None:
    entry = report["sections"][name] = {"status": "running", "budget_s": budget, "results": {}}
    print(f"\n== {name} (budget {budget:.0f} s) ==", flush=True)
    start = time.monotonic()
    check.deadline = start + budget
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        entry["status"] = SECTIONS[name](check, entry["results"])
    except SectionTimeout:
        entry["status"] = f"timeout (past its {budget:.0f} s budget; partial results kept)"
    except SystemExit:
        entry["status"] = "stopped (TERM: the wrapper's timeout)"
        raise
    except Exception as exc:  # noqa: BLE001 - one section's failure never stops the others
        entry["status"], entry["error"] = "failed", last_line(exc)
        say(name, f"failed: {last_line(exc)}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        check.deadline = math.inf
    entry["seconds"] = round(time.monotonic() - start, 1)


def default_json() -> Path:
    return Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else Path("/tmp/gpu_check.json")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1-2 steps (the CPU mode)")
    parser.add_argument("--with-ray", action="store_true", help="with --quick: also the Ray sections (2 and 4)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, of: " + ", ".join(SECTIONS))
    parser.add_argument("--json", type=Path, default=None, help="default: $OUT/gpu_check.json, else /tmp/gpu_check.json")
    parser.add_argument("--work", default=None, help="data, cache and runs (default: a new folder under /tmp)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's CPU threads in this process (default: torch's; 1 with --quick, whose tiny nets "
                             "gain nothing from more, while on a busy 2-core machine torch's spinning threads run "
                             "them tens of times slower)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False on this machine")
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work = args.work or tempfile.mkdtemp(prefix="gansweep_gpu_check_")
    json_path = args.json or default_json()
    check = Check(args)
    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
    check.work.mkdir(parents=True, exist_ok=True)
    # The source tree first on the path of this process and of every process it starts (gansweep train, Ray's
    # workers), so the check runs this checkout's code whether or not gansweep is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "platform"), os.environ.get("PYTHONPATH")) if p)
    os.environ["GANSWEEP_CACHE"] = str(check.cache)
    sys.path.insert(0, str(REPO / "platform"))
    import gansweep

    report = {
        "device": str(check.device), "quick": args.quick, "with_ray": args.with_ray,
        "gpu": torch.cuda.get_device_name() if check.device.type == "cuda" else None,
        "torch": torch.__version__, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gansweep": str(Path(gansweep.__file__).parent), "work": str(check.work), "sections": {},
    }
    print(f"gansweep GPU check on {check.device}{' (' + report['gpu'] + ')' if report['gpu'] else ''}, torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs{', quick' if args.quick else ''}; work {check.work}; "
          f"JSON {json_path}", flush=True)
    start = time.monotonic()
    write_idx_set(check.data_root, check.size["n_train"], check.size["n_test"])
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    chosen = args.sections.split(",")
    # gpu_check.sh's timeout sends TERM: raised as SystemExit, so that the running section stops its subprocesses
    # (their own process groups: they would outlive this one) and the JSON is written.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for name in SECTIONS:
        try:
            if name not in chosen:
                report["sections"][name] = {"status": "skipped: not in --sections", "results": {}}
            elif args.quick and name in RAY_SECTIONS and not args.with_ray:
                report["sections"][name] = {"status": "skipped: Ray section in --quick (add --with-ray)",
                                            "results": {}}
            else:
                run_section(check, name, budgets[name], report)
        finally:  # after each section, and when stopped inside one: the sections done so far are kept
            report["wall_s"] = round(time.monotonic() - start, 1)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=2, default=float))
    print("\n== summary ==")
    for name, entry in report["sections"].items():
        seconds = f" ({entry['seconds']:.1f} s)" if "seconds" in entry else ""
        error = f": {entry['error']}" if entry.get("error") else ""
        print(f"SUMMARY {name:<14} {entry['status']}{seconds}{error}")
    print(f"SUMMARY wall time {report['wall_s']:.1f} s; JSON: {json_path}", flush=True)
    return 0 if all(e["status"] == "ok" or e["status"].startswith("skipped") for e in report["sections"].values()) \
        else 1


if __name__ == "__main__":
    sys.exit(main())
