"""Population-based training (scheduler: {name: pbt}): a real sweep through the CLI whose trials exploit one another,
and the pieces it rests on (a clone's restart from a donor's checkpoint, with its own learning rates)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_SWEEP, needs_fashion
from gansweep.gan.runtime import Keyed
from gansweep.run import run_dir
from gansweep.sweep import pbt
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.runner import SweepError, check_population
from gansweep.sweep.space_file import load_space

LR_G = (1.0e-6, 2.0e-3)
# search.seed 5 draws lr_g 5.4e-6 and 7.5e-4: the first G hardly moves in 80 steps, so it is the worse trial at
# its decisions and clones the other (checked below, before the sweep runs).
PBT_SPACE = {
    "name": "pbt",
    "num_samples": 2,
    "max_concurrent_trials": 2,
    "fixed": {**TINY_SWEEP, "train.steps": 80},
    "space": {"train.lr_g": {"loguniform": list(LR_G)}},
    "scheduler": {"name": "pbt", "perturbation_interval": 20, "quantile_fraction": 0.5},
    "search": {"seed": 5},
}


def _write(path: Path, settings: dict) -> Path:
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pbt_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbt")
    space_file = _write(root / "pbt.yaml", PBT_SPACE)
    out = root / "out"
    result = subprocess.run([sys.executable, "-m", "gansweep.cli", "sweep", str(space_file), "--output", str(out)],
                            capture_output=True, text=True, timeout=900)
    return space_file, out, result


@needs_fashion
def test_the_worse_trial_clones_the_better_one_and_goes_on_with_perturbed_learning_rates(pbt_sweep):
    space_file, out, result = pbt_sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    slow, fast = pbt.population(load_space(space_file))
    assert slow["train.lr_g"] * 100 < fast["train.lr_g"]  # the premise of the test
    trials = {entry["params"]["train.lr_g"]: entry for entry in layout.read_trials(out)}
    clone, donor = trials[slow["train.lr_g"]], trials[fast["train.lr_g"]]
    assert clone["status"] == donor["status"] == "finished"
    assert clone["params"] == slow  # the point it started from stays its params
    assert clone["lineage"], "the slow trial never exploited the fast one"
    first = clone["lineage"][0]
    assert first["donor"] == donor["name"] and first["step"] in (20, 40, 60)
    # Explored from the donor's value: scaled by 0.8 or 1.2, or drawn again, within the space's range.
    lr = first["params"]["train.lr_g"]
    assert LR_G[0] <= lr <= LR_G[1] and lr != slow["train.lr_g"]
    assert f"[gansweep] pbt: {clone['name']} restarts from {donor['name']}'s checkpoint at step {first['step']}" \
        in result.stdout

    last = clone["lineage"][-1]
    directory = layout.trial_dir(out, clone["name"])
    started = run_dir.latest_checkpoint(directory)
    assert started is not None
    start = Path(directory) / run_dir.CHECKPOINTS_DIR / pbt.EXPLOIT_CHECKPOINT.format(number=last["number"])
    assert run_dir.checkpoint_step(str(start)) == last["step"]
    # The clone's run went on from the donor's step, with its own learning rate in its optimiser, not the donor's.
    summary = run_dir.read_result(directory)
    assert summary["metrics"]["resumed_from_step"] == last["step"]
    assert summary["config"]["train"]["lr_g"] == pytest.approx(last["params"]["train.lr_g"])
    state = run_dir.load_checkpoint(started)
    assert state["step"] == 80
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(last["params"]["train.lr_g"])
    assert not donor.get("lineage")


@needs_fashion
def test_a_pbt_sweep_records_its_scheduler_and_its_report_draws_the_lineage(pbt_sweep):
    _, out, result = pbt_sweep
    assert result.returncode == 0
    record = layout.read_sweep_record(out)
    assert record["scheduler"]["name"] == "pbt" and record["scheduler"]["perturbation_interval"] == 20
    assert record["storage"] is None  # no Optuna study: Tune's population
    report = subprocess.run([sys.executable, "-m", "gansweep.cli", "report", str(out)], capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = (out / layout.REPORT_DIR / "summary.md").read_text()
    assert "PBT lineage" in summary
    assert (out / layout.REPORT_DIR / "pbt_lineage.png").stat().st_size > 0


def test_a_clone_takes_the_exploit_once_and_then_resumes_its_own_checkpoints(tmp_path):
    trial = tmp_path / "trial"
    own = trial / run_dir.CHECKPOINTS_DIR / "checkpoint_own"
    donor = tmp_path / "donor"
    _fake_checkpoint(own, step=60, lr=1e-3)
    _fake_checkpoint(donor, step=40, lr=5e-4)
    copy = tmp_path / "bank"
    run_dir.copy_checkpoint(str(donor), str(copy), keep_streams=False)
    assert run_dir.load_checkpoint(str(copy))["rng"] == []  # the clone draws from its own seed
    config = {pbt.EXPLOIT_KEY: {"number": 1, "donor": "d", "step": 40, "checkpoint": str(copy)}}

    pbt.start_from_exploit(config, str(trial))
    assert not own.exists()  # its own checkpoints (and Ray Train's record of them) made way
    assert run_dir.checkpoint_step(run_dir.latest_checkpoint(str(trial))) == 40

    _fake_checkpoint(trial / run_dir.CHECKPOINTS_DIR / "checkpoint_later", step=60, lr=5e-4)
    pbt.start_from_exploit(config, str(trial))  # restarted again: the exploit is taken already
    assert run_dir.checkpoint_step(run_dir.latest_checkpoint(str(trial))) == 60
    pbt.start_from_exploit({}, str(trial))  # never exploited: nothing happens
    assert run_dir.checkpoint_step(run_dir.latest_checkpoint(str(trial))) == 60


def _fake_checkpoint(directory: Path, step: int, lr: float) -> None:
    net = torch.nn.Linear(2, 2)
    state = {"opt": torch.optim.Adam(net.parameters(), lr=lr).state_dict(), "step": step, "rng": [{"z": 1}]}
    directory.mkdir(parents=True)
    torch.save(state, directory / run_dir.STATE_FILE)
    (directory / run_dir.STEP_FILE).write_text(f'{{"step": {step}}}')


def test_a_loaded_optimiser_keeps_its_configured_learning_rate_and_takes_the_moments():
    net = torch.nn.Linear(3, 1)
    donor = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    net(torch.randn(4, 3)).sum().backward()
    donor.step()
    clone = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.0, 0.9))
    Keyed({"opt": clone}).load_state_dict({"opt": donor.state_dict()})
    assert clone.param_groups[0]["lr"] == 2e-4 and clone.param_groups[0]["betas"] == (0.0, 0.9)
    moments = clone.state[net.weight]["exp_avg"]
    assert torch.equal(moments, donor.state[net.weight]["exp_avg"]) and moments.abs().sum() > 0


def test_a_population_that_does_not_run_at_once_is_refused(tmp_path):
    space = load_space(_write(tmp_path / "pbt.yaml", {**PBT_SPACE, "num_samples": 4, "max_concurrent_trials": None}))
    check_population(space, concurrent=4)
    with pytest.raises(SweepError, match="only 2 of the population of 4 fit at once"):
        check_population(space, concurrent=2)


def test_the_population_is_drawn_at_random_from_the_seed(tmp_path):
    space = load_space(_write(tmp_path / "pbt.yaml", PBT_SPACE))
    assert space.search.algorithm == "random"
    points = pbt.population(space)
    assert points == pbt.population(space) and len(points) == 2
    assert all(LR_G[0] <= p["train.lr_g"] <= LR_G[1] for p in points)
