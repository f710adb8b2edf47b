"""The resource plan of a run (and, with runs > 1, of a sweep's concurrent trials)."""

import pytest
from gansweep.config.errors import ConfigError
from gansweep.run import plan
from gansweep.run.plan import plan_resources, stream_tasks, torch_threads


def test_one_cpu_run_takes_the_cluster_s_cpus():
    assert plan_resources(1, None, 0, [{"CPU": 2}]) == (1.75, 1)  # a quarter CPU left for the stream
    assert plan_resources(2, None, 0, [{"CPU": 2}]) == (0.75, 1)
    assert plan_resources(4, None, 0, [{"CPU": 2}]) == (0.25, 1)  # more workers than CPUs: a fraction each
    assert plan_resources(2, 0.5, 0, [{"CPU": 2}]) == (0.5, 1)  # as asked, when it fits
    with pytest.raises(ConfigError, match="data stream"):  # 8 x 0.25 CPUs: nothing left for the workers
        plan_resources(8, None, 0, [{"CPU": 2}])


def test_workers_get_torch_threads_for_their_cpus_and_the_stream_s_share():
    assert [torch_threads(c) for c in (1.75, 0.75, 0.25, 3.75)] == [2, 1, 1, 4]


def test_concurrent_runs_share_the_cpus():
    assert plan_resources(1, None, 0, [{"CPU": 2}], runs=4) == (0.75, 2)
    assert plan_resources(1, None, 0, [{"CPU": 16}], runs=3) == (16 / 3 - 0.25, 3)
    assert plan_resources(1, 2, 0, [{"CPU": 7}], runs=8) == (2.0, 3)
    assert plan_resources(1, 0.1, 0, [{"CPU": 1}], runs=20) == (0.1, 2)  # 0.1 + 0.25 each


def test_gpu_runs_get_one_cpu_per_worker_and_pack_fractional_gpus():
    assert plan_resources(1, None, 0.5, [{"CPU": 8, "GPU": 4}], runs=12) == (1.0, 6)  # 8 GPU halves, but 1.25 CPUs each
    assert plan_resources(2, None, 1, [{"CPU": 8, "GPU": 4}], runs=12) == (1.0, 2)
    assert plan_resources(1, None, 0.1, [{"CPU": 16, "GPU": 1}], runs=20) == (1.0, 10)  # ten, not 1 // 0.1 == 9


@pytest.mark.parametrize("args, keys, fragment", [
    ((1, 3, 0, [{"CPU": 2}]), "train", r"train\.workers=1 x \(3 CPUs \+ 0\.25 for its data stream\), each worker's on one "
     r"node; the cluster has room for 0 \(1 node; the largest 2 CPUs, 0 GPUs\) \(set train\.cpus_per_worker"),
    ((1, None, 1, [{"CPU": 8}]), "train", r"train\.workers=1 x gpus_per_worker=1 GPUs, each on a node with 1\.25 CPUs "
     r"beside it; the cluster has room for 0 \(1 node; the largest 8 CPUs, 0 GPUs\)$"),
    ((2, None, 1, [{"CPU": 8, "GPU": 1}]), "resources", r"room for 1 \(1 node.*autoscaler's node types.*resources\.cluster"),
    ((1, None, 0, [{"GPU": 4}]), "resources", r"resources\.workers=1 x \(0 CPUs"),
    # Two ranks of one run on one GPU: NCCL refuses them, so the plan does first.
    ((2, None, 0.5, [{"CPU": 8, "GPU": 4}]), "train", r"train\.workers=2 with train\.gpus_per_worker=0\.5: .*Duplicate GPU"),
    ((4, None, 0.25, [{"CPU": 8, "GPU": 4}]), "resources", r"resources\.workers=4 with resources\.gpus_per_worker=0\.25"),
    ((1, None, 2, [{"CPU": 8, "GPU": 4}]), "train", r"train\.gpus_per_worker=2: a DDP rank trains on one GPU"),
])
def test_what_cannot_fit_is_refused_naming_the_keys(args, keys, fragment):
    with pytest.raises(ConfigError, match=fragment):
        plan_resources(*args, keys=keys)


def test_each_stream_reads_with_the_whole_cpus_left_beside_its_worker():
    assert stream_tasks(1, 1.75, 0, [{"CPU": 2}]) == 1  # a quarter CPU left: one task
    assert stream_tasks(1, 0.75, 0, [{"CPU": 2}]) == 1  # two such trials fill the CPUs: one each
    assert stream_tasks(1, 1.0, 1, [{"CPU": 8, "GPU": 1}]) == 7  # a GPU node: the CPUs the worker leaves
    assert stream_tasks(2, 1.0, 1, [{"CPU": 16, "GPU": 4}]) == 3  # two runs of two: 12 CPUs free for 4 workers


def test_a_worker_s_resources_lie_on_one_node():
    """Three 1-CPU nodes hold three workers of 0.75 CPUs (each with its stream's quarter), not two of 1.25: the
    total's share (3 CPUs / 2) would fit no node, and the trial would wait forever."""
    three = [{"CPU": 1}] * 3
    assert plan_resources(1, None, 0, three, runs=2) == (0.75, 2)
    assert plan_resources(1, None, 0, three, runs=6) == (0.75, 3)
    assert plan_resources(2, None, 0, three, runs=1) == (0.75, 1)  # a DDP run's workers spread over nodes
    # A large node and small ones: the share that places every concurrent worker, on whichever nodes.
    assert plan_resources(1, None, 0, [{"CPU": 8}, {"CPU": 1}], runs=2) == (3.75, 2)
    assert plan_resources(1, None, 0, [{"CPU": 8}, {"CPU": 1}], runs=9) == (0.75, 9)
    with pytest.raises(ConfigError, match=r"room for 0 \(3 nodes; the largest 1 CPUs"):
        plan_resources(1, 1.5, 0, three)
    # GPUs: each worker's GPU and CPU on one node; a CPU head adds no GPU slot.
    gpu_cluster = [{"CPU": 8, "GPU": 0}] + [{"CPU": 4, "GPU": 1}] * 4
    assert plan_resources(1, None, 1, gpu_cluster, runs=8) == (1.0, 4)
    assert plan_resources(2, None, 1, gpu_cluster, runs=8) == (1.0, 2)
    # Only the 5-CPU GPU node holds 4 + 0.25 CPUs beside its GPU: a run of one worker fits, of two does not.
    assert plan_resources(1, 4, 1, [{"CPU": 4, "GPU": 1}, {"CPU": 8, "GPU": 0}, {"CPU": 5, "GPU": 1}]) == (4, 1)
    with pytest.raises(ConfigError, match="room for 1"):
        plan_resources(2, 4, 1, [{"CPU": 4, "GPU": 1}, {"CPU": 8, "GPU": 0}, {"CPU": 5, "GPU": 1}])


def test_a_ddp_run_s_full_evaluation_asks_for_what_one_node_holds():
    assert plan.evaluation_cpus(2, 0.75, [{"CPU": 1}] * 3) == 0.75  # 1.5 would fit no node
    assert plan.evaluation_cpus(2, 0.75, [{"CPU": 2}]) == 1.5
    assert plan.evaluation_cpus(2, 3.75, [{"CPU": 4}, {"CPU": 4}]) == 3.75
    assert plan.evaluation_cpus(1, 1.75, [{"CPU": 2}]) == 1.75


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
