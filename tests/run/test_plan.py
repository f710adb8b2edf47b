"""The resource plan of a run (and, with runs > 1, of a sweep's concurrent trials)."""

import pytest
from gansweep.config import ConfigError
from gansweep.run import plan
from gansweep.run.plan import plan_resources, stream_tasks, torch_threads


def test_one_cpu_run_takes_the_cluster_s_cpus():
    assert plan_resources(1, None, 0, {"CPU": 2}) == (1.75, 1)  # a quarter CPU left for the stream
    assert plan_resources(2, None, 0, {"CPU": 2}) == (0.75, 1)
    assert plan_resources(4, None, 0, {"CPU": 2}) == (0.25, 1)  # more workers than CPUs: a fraction each
    assert plan_resources(2, 0.5, 0, {"CPU": 2}) == (0.5, 1)  # as asked, when it fits
    with pytest.raises(ConfigError, match="data stream"):  # 8 x 0.25 CPUs: nothing left for the workers
        plan_resources(8, None, 0, {"CPU": 2})


def test_workers_get_torch_threads_for_their_cpus_and_the_stream_s_share():
    assert [torch_threads(c) for c in (1.75, 0.75, 0.25, 3.75)] == [2, 1, 1, 4]


def test_concurrent_runs_share_the_cpus():
    assert plan_resources(1, None, 0, {"CPU": 2}, runs=4) == (0.75, 2)
    assert plan_resources(1, None, 0, {"CPU": 16}, runs=3) == (16 / 3 - 0.25, 3)
    assert plan_resources(1, 2, 0, {"CPU": 7}, runs=8) == (2.0, 3)
    assert plan_resources(1, 0.1, 0, {"CPU": 1}, runs=20) == (0.1, 2)  # 0.1 + 0.25 each


def test_gpu_runs_get_one_cpu_per_worker_and_pack_fractional_gpus():
    assert plan_resources(1, None, 0.5, {"CPU": 8, "GPU": 4}, runs=12) == (1.0, 6)  # 8 GPU halves, but 1.25 CPUs each
    assert plan_resources(2, None, 1, {"CPU": 8, "GPU": 4}, runs=12) == (1.0, 2)
    assert plan_resources(1, None, 0.1, {"CPU": 16, "GPU": 1}, runs=20) == (1.0, 10)  # ten, not 1 // 0.1 == 9


@pytest.mark.parametrize("args, keys, fragment", [
    ((1, 3, 0, {"CPU": 2}), "train", r"train\.workers=1 x \(3 CPUs \+ 0\.25 for its data stream\); the cluster has 2 \(set train\.cpus_per_worker"),
    ((1, None, 1, {"CPU": 8}), "train", r"train\.workers=1 x gpus_per_worker=1 GPUs; the cluster has 0$"),
    ((2, None, 1, {"CPU": 8, "GPU": 1}), "resources", r"the cluster has 1 \(for an autoscaling cluster.*resources\.cluster"),
    ((1, None, 0, {"GPU": 4}), "resources", r"resources\.workers=1 x \(0 CPUs"),
    # Two ranks of one run on one GPU: NCCL refuses them, so the plan does first.
    ((2, None, 0.5, {"CPU": 8, "GPU": 4}), "train", r"train\.workers=2 with train\.gpus_per_worker=0\.5: .*Duplicate GPU"),
    ((4, None, 0.25, {"CPU": 8, "GPU": 4}), "resources", r"resources\.workers=4 with resources\.gpus_per_worker=0\.25"),
    ((1, None, 2, {"CPU": 8, "GPU": 4}), "train", r"train\.gpus_per_worker=2: a DDP rank trains on one GPU"),
])
def test_what_cannot_fit_is_refused_naming_the_keys(args, keys, fragment):
    with pytest.raises(ConfigError, match=fragment):
        plan_resources(*args, keys=keys)


def test_each_stream_reads_with_the_whole_cpus_left_beside_its_worker():
    assert stream_tasks(1, 1.75, 0, {"CPU": 2}) == 1  # a quarter CPU left: one task
    assert stream_tasks(1, 0.75, 0, {"CPU": 2}) == 1  # two such trials fill the CPUs: one each
    assert stream_tasks(1, 1.0, 1, {"CPU": 8, "GPU": 1}) == 7  # a GPU node: the CPUs the worker leaves
    assert stream_tasks(2, 1.0, 1, {"CPU": 16, "GPU": 4}) == 3  # two runs of two: 12 CPUs free for 4 workers


def test_an_autoscaling_cluster_is_planned_for_what_it_can_scale_to(monkeypatch):
    """A cluster whose GPU workers are not up yet (none while idle) is planned with the most its node types give
    (Ray's autoscaler config): GPU runs are planned, not refused; a local Ray (no autoscaler) is what it has."""
    import ray
    from ray._private.state import state

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "memory": 1e10})
    monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: {"CPU": 24, "GPU": 4})
    capacity = plan.cluster_capacity()
    assert capacity == {"CPU": 24.0, "GPU": 4.0, "memory": 1e10}
    assert plan_resources(1, None, 1, capacity, runs=8) == (1.0, 4)

    monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: None)
    assert plan.cluster_capacity() == {"CPU": 8.0, "memory": 1e10}
    with pytest.raises(ConfigError, match="the cluster has 0"):
        plan_resources(1, None, 1, plan.cluster_capacity())


@pytest.mark.parametrize("overrides, message", [
    (["train.workers=2", "train.gpus_per_worker=0.5"], "Duplicate GPU detected"),
    (["train.gpus_per_worker=2"], "a DDP rank trains on one GPU"),
])
def test_a_gpu_layout_no_run_can_use_exits_2_before_ray_starts(tmp_path, monkeypatch, capsys, overrides, message):
    from gansweep import cli
    from gansweep.run import trainer

    def no_ray():
        raise AssertionError("Ray was started for a layout the config alone refuses")

    monkeypatch.setattr(trainer, "init_ray", no_ray)
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))
    args = ["train", "--output", str(tmp_path / "run"), "--set", "train.use_gpu=true", "--set", "train.batch_size=32"]
    code = cli.main(args + [item for override in overrides for item in ("--set", override)])
    output = capsys.readouterr().err
    assert code == 2 and message in output and output.startswith("gansweep: error: train."), output
