"""gansweep on a real multi-node Ray cluster built on this machine (tests/cluster.py): a head and two 1-CPU worker
nodes, none of which sees another's /tmp or HOME, moto's S3 server as the bucket, token auth, jobs sent with
`ray job submit`. What no single-node test can see: trials and ranks on other nodes, caches they must all read, a
node lost mid-trial. Run them alone with `bash scripts/test.sh tests/test_cluster.py`."""

import os
import re
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from conftest import TINY_SWEEP, needs_fashion, new_bucket
from gansweep import storage
from gansweep.run import run_dir
from gansweep.sweep import sweep_dir as layout

from cluster import seed_classifier, start_cluster, stop_cluster

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from local_head import job_logs, stop_job, submit_job, wait_job  # noqa: E402

pytestmark = [
    needs_fashion,
    pytest.mark.skipif(os.geteuid() != 0, reason="the worker nodes' private /tmp and HOME need `unshare --mount` (root)"),
]

SETS = [f"{key}={value}" for key, value in TINY_SWEEP.items()]
NODE = re.compile(r"\[gansweep\] (?:starting|resuming at) step \d+/\d+ on nodes? (.+)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    stop_cluster(cluster)


def _events(log_dir: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    accumulator.Reload()  # through boto3, as `tensorboard --logdir s3://...` reads it
    return accumulator


def _nodes(logs: str) -> set[str]:
    """The nodes the runs' ranks trained on, from their progress lines."""
    return {node for line in NODE.findall(logs) for node in line.split(", ")}


def _run_job(cluster, job_id: str, entrypoint: list[str], timeout: float = 600) -> str:
    try:
        submit_job(cluster.head.dashboard, job_id, entrypoint, cwd=REPO, env=cluster.env)
        status = wait_job(cluster.head.dashboard, job_id, env=cluster.env, timeout=timeout)
        logs = job_logs(cluster.head.dashboard, job_id, env=cluster.env)
    finally:
        stop_job(cluster.head.dashboard, job_id, env=cluster.env)
    assert status == "SUCCEEDED", f"{status}\n{logs[-6000:]}"
    return logs


def test_a_sweep_with_default_settings_spreads_over_the_nodes_and_lands_in_the_bucket(cluster, monkeypatch):
    """No hand-set CPUs, no GANSWEEP_CACHE: each trial's worker fits one 1-CPU node, the cache moves into the
    bucket output (this node's ~/.cache is not on the others), and everything lands in the bucket."""
    bucket = new_bucket(cluster.endpoint, monkeypatch)
    out = f"{bucket}/sweep"
    seed_classifier(f"{out}/cache")
    logs = _run_job(cluster, "gansweep-cluster-sweep", [
        "python", "jobs/sweep.py", "search_spaces/quickstart.yaml", "--output", out, "--verbose",  # node lines
        "--set", "search.algorithm=random", "--set", "num_samples=3", "--set", "scheduler.name=asha",
        "--set", "scheduler.grace_period=20",
        *[arg for item in SETS for arg in ("--set", item)]])
    assert f"the cache is {out}/cache" in logs
    assert "3 trials, 2 at a time, 1 worker(s) x 0.75 CPU each" in logs
    assert len(_nodes(logs)) >= 2, logs[-6000:]
    trials = layout.read_trials(out)
    assert len(trials) == 3 and all(t["status"] in ("finished", "stopped") for t in trials), trials
    for trial in trials:
        directory = layout.trial_dir(out, trial["name"])
        assert storage.list_names(storage.join(directory, run_dir.CHECKPOINTS_DIR)), trial["name"]
        assert any(name.startswith("events.out.tfevents")
                   for name in storage.list_names(layout.trial_log_dir(out, trial["name"])))
        if trial["status"] == "finished":
            assert run_dir.read_result(directory)["evaluation"]["n_fake"] == TINY_SWEEP["eval.n_samples"]
    record = layout.read_sweep_record(out)
    assert record["space_file"] == "search_spaces/quickstart.yaml"  # the submitted working tree's package ran
    # The study published to the bucket: each trial as it ended (stopped by ASHA: PRUNED, not COMPLETE).
    with tempfile.TemporaryDirectory() as folder:
        study = optuna.load_study(study_name=record["study_name"],
                                  storage=layout.study_copy(out, record["storage"], Path(folder)))
        states = {trial.number: trial.state.name for trial in study.trials}
    assert states == {t["number"]: {"finished": "COMPLETE", "stopped": "PRUNED"}[t["status"]] for t in trials}
    from gansweep import cli

    assert cli.main(["report", out]) == 0
    assert storage.is_file(storage.join(out, "report", "summary.md"))


def test_a_ddp_run_s_ranks_train_on_two_nodes_and_its_full_evaluation_fits_one(cluster, monkeypatch):
    """Two ranks of 0.75 CPUs on 1-CPU nodes: one per node, gloo across them; the full evaluation asks for what one
    node holds (both workers' 1.5 CPUs would fit none and wait forever)."""
    bucket = new_bucket(cluster.endpoint, monkeypatch)
    out = f"{bucket}/ddp"
    seed_classifier(f"{out}/cache")
    sets = [*SETS, "train.workers=2", "train.steps=40"]
    logs = _run_job(cluster, "gansweep-cluster-ddp", [
        "python", "jobs/train.py", "--output", out, *[arg for item in sets for arg in ("--set", item)]])
    starts = NODE.findall(logs)
    assert len(starts) == 1 and len(set(starts[0].split(", "))) == 2, logs[-6000:]
    result = run_dir.read_result(out)
    assert result["step"] == 40 and result["evaluation"]["n_fake"] == TINY_SWEEP["eval.n_samples"]


def _trial_started(out: str, logs: str, step: int) -> str | None:
    """The node a one-trial sweep's run started on, once it has a complete checkpoint of STEP or later in the bucket
    (its own, or Ray Train's of a DDP run)."""
    starts = NODE.findall(logs)
    trials = layout.read_trials(out) or []
    if not starts or not trials:
        return None
    latest = run_dir.latest_checkpoint(layout.trial_dir(out, trials[0]["name"]))
    return starts[0] if latest is not None and run_dir.checkpoint_step(latest) >= step else None


LOST_NODE_STEPS = 200


# The DDP trial (2 workers, ~3 min with its teardown) is slow: test b trains DDP across nodes by default.
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_trial_on_a_lost_node_resumes_on_another_from_its_bucket_checkpoint(cluster, monkeypatch, workers):
    """A worker node's raylet killed mid-trial: Tune (one worker: the trial's own process) or Ray Train (DDP: the
    worker group) restarts the run on the nodes left, from its newest checkpoint in the bucket; it finishes with
    TensorBoard's steps continuous and no step before that checkpoint trained twice."""
    bucket = new_bucket(cluster.endpoint, monkeypatch)
    out = f"{bucket}/lost-{workers}"
    seed_classifier(f"{out}/cache")
    if len(cluster.alive()) < 2 + workers:  # the head, the run's nodes, and one to resume on
        cluster.add_worker()
    job_id = f"gansweep-cluster-lost-{workers}"
    # 200 steps: the node is killed once step 20's checkpoint is in the bucket, and the 180 left must outlast that
    # (a quiet machine trained 80 steps in 19 s: the trial finished before its node died)
    sets = [*SETS, "search.algorithm=random", "num_samples=1", "scheduler.name=fifo", f"train.steps={LOST_NODE_STEPS}",
            "eval.n_samples=0",
            f"resources.workers={workers}"]
    submit_job(cluster.head.dashboard, job_id, ["python", "jobs/sweep.py", "search_spaces/quickstart.yaml", "--output",
                                                out, "--verbose",  # the run's node lines: a sweep shows them with it
                                                *[arg for item in sets for arg in ("--set", item)]],
               cwd=REPO, env=cluster.env)
    try:
        status = wait_job(cluster.head.dashboard, job_id, env=cluster.env, timeout=600,
                          until=lambda logs: _trial_started(out, logs, 20) is not None)
        started = _trial_started(out, job_logs(cluster.head.dashboard, job_id, env=cluster.env), 20)
        assert status == "RUNNING" and started, job_logs(cluster.head.dashboard, job_id, env=cluster.env)[-6000:]
        lost = started.split(", ")[0]
        cluster.kill_node(re.search(r"\((\w+)\)", lost).group(1))
        status = wait_job(cluster.head.dashboard, job_id, env=cluster.env, timeout=600)
        logs = job_logs(cluster.head.dashboard, job_id, env=cluster.env)
    finally:
        stop_job(cluster.head.dashboard, job_id, env=cluster.env)
    assert status == "SUCCEEDED", f"{status}\n{logs[-6000:]}"
    resumed = re.findall(rf"\[gansweep\] resuming at step (\d+)/{LOST_NODE_STEPS} on nodes? (.+)", logs)
    assert resumed and int(resumed[-1][0]) >= 20 and lost not in resumed[-1][1], logs[-6000:]
    trial = layout.read_trials(out)[0]
    assert trial["status"] == "finished" and trial["error"] is None, trial
    events = _events(layout.trial_log_dir(out, trial["name"]))
    assert [event.step for event in events.Scalars("val/fid")] == list(range(20, LOST_NODE_STEPS + 1, 20))
    assert run_dir.read_error(layout.trial_dir(out, trial["name"])) is None
