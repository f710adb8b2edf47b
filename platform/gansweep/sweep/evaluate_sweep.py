"""A finished sweep's trials evaluated again through the protocol (`gansweep evaluate SWEEP_DIR`): with another
feature network (the Inception features on a GPU after a sweep trained on CPUs, where they cost an hour a trial) or
more samples. Each trial's figures go to its evaluation.json and to trials.json's full_evaluation, which the report's
table reads. Only a sweep that is not running: while it runs, trials.json is the sweep's own record."""

from __future__ import annotations

from collections.abc import Callable

from gansweep import storage
from gansweep.config.errors import ConfigError
from gansweep.config.schema import EvalConfig
from gansweep.sweep import sweep_dir as layout

def evaluate_sweep(sweep_dir: str, n_samples: int | None = None, seed: int = 0, features: list[str] | None = None,
                   device: str = "auto", progress: Callable[[str], None] = print) -> list[dict]:
    """Evaluate every finished trial of SWEEP_DIR (run/evaluate.evaluate_run) on N_SAMPLES samples (None: as many as
    its own full evaluation drew), writing trials.json after each one (an interrupted evaluation keeps the trials it
    did); returns the finished trials' entries."""
    from gansweep.run.evaluate import evaluate_run

    layout.read_sweep_record(sweep_dir)  # a directory that is not a sweep: SweepDirError with what it lacks
    trials = layout.read_trials(sweep_dir) or []
    unfinished = [entry["name"] for entry in trials if entry.get("status") in (layout.PENDING, layout.RUNNING)]
    if unfinished:
        raise ConfigError(f"{storage.display(sweep_dir)} has {len(unfinished)} trial(s) pending or running "
                          f"({', '.join(unfinished[:3])}{', ...' if len(unfinished) > 3 else ''}): let the sweep end, "
                          "or resume it to its end (`gansweep sweep ... --resume`), then evaluate it")
    finished = [entry for entry in trials if entry.get("status") == layout.FINISHED]
    if not finished:
        raise ConfigError(f"{storage.display(sweep_dir)} has no finished trial to evaluate")
    for done, entry in enumerate(finished, 1):
        # as many as its own evaluation drew; none recorded: the protocol's count
        own = (entry.get("full_evaluation") or {}).get("n_fake") or EvalConfig.n_samples
        n = own if n_samples is None else n_samples
        figures = evaluate_run(layout.trial_dir(sweep_dir, entry["name"]), n_samples=n, seed=seed, features=features,
                               device=device)
        entry["full_evaluation"] = figures
        layout.write_trials(sweep_dir, trials)
        inception = f", fid_inception {figures['fid_inception']:.2f}" if "fid_inception" in figures else ""
        progress(f"[gansweep] evaluated {done}/{len(finished)} {entry['name']} on {n} samples: "
                 f"fid {figures['fid']:.2f}{inception}")
    return finished
