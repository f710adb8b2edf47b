"""The cluster workflow on a real local head: `ray start --head`, the quickstart sweep submitted with the real
`ray job submit` CLI and jobs/runtime_env.yaml, waited for until SUCCEEDED, its results checked, the head stopped."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from conftest import needs_fashion
from gansweep.sweep.sweep_dir import read_sweep_record, read_trials
from local_head import job_logs, start_head, stop_head, stop_job, submit_job, wait_job

pytestmark = needs_fashion

# The quickstart, shrunk to one tiny trial: the sweep itself is tested in tests/sweep; here, the job's way there.
SMALL = [
    "search.algorithm=random", "num_samples=1", "scheduler.name=asha", "scheduler.grace_period=20", "data.limit=512",
    "model.g_width=16", "model.d_width=16",
    "train.steps=40", "train.batch_size=32", "train.log_every=10", "train.checkpoint_every=20",
    "train.image_every=20", "eval.every=20", "eval.cheap_samples=100", "eval.n_samples=200",
]
# Slow: tests/test_cluster.py submits the quickstart the same way (submit_job, jobs/runtime_env.yaml) to a
# multi-node cluster in the default run.
@pytest.mark.slow
def test_quickstart_sweep_submitted_as_a_ray_job(tmp_path):
    head = start_head(2, tmp_path / "head.log")
    out = tmp_path / "sweep"
    job_id = "gansweep-quickstart-test"
    try:
        sets = [arg for item in SMALL for arg in ("--set", item)]
        submit_job(head.dashboard, job_id, ["python", "jobs/sweep.py", "search_spaces/quickstart.yaml", "--output",
                                            str(out), *sets], cwd=REPO)
        status = wait_job(head.dashboard, job_id)
        logs = job_logs(head.dashboard, job_id)
        assert status == "SUCCEEDED", f"{status}\n{logs[-4000:]}"
    finally:
        # A job's driver runs in its own session: stop it through the head before the head goes.
        stop_job(head.dashboard, job_id)
        stop_head(head)
    assert "[gansweep] best trial" in logs and "tensorboard --logdir" in logs
    trials = read_trials(out)
    assert len(trials) == 1 and trials[0]["status"] == "finished" and trials[0]["value"] is not None
    assert sorted(p.name for p in (out / "tensorboard").iterdir() if p.is_dir()) == [trials[0]["name"]]
    # The job ran the submitted working tree's package (py_modules), not only an installed copy.
    assert read_sweep_record(out)["space_file"] == "search_spaces/quickstart.yaml"
