"""search_spaces/paper_table.yaml and the plan benchmarks/paper_study.py makes of it (no training)."""

import sys
from pathlib import Path

import pytest
import yaml
from gansweep.config import load_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import paper_study  # noqa: E402


@pytest.fixture(scope="module")
def study():
    return yaml.safe_load((ROOT / "search_spaces" / "paper_table.yaml").read_text())


def _overrides(fixed: dict, run) -> list[str]:
    return [f"{k}={v}" for k, v in {**fixed, "train.seed": run.seed, **run.overrides}.items()]


def test_the_plan_covers_the_table(study):
    pilot, others, _ = paper_study.plan(study)
    runs = pilot + others
    assert len(runs) == len({run.name for run in runs}) == 37
    assert [run.point for run in pilot] == ["project", "up1", "up2"]
    assert sorted(run.seed for run in runs if run.arm == "clean") == [0, 1, 2]
    headline = [run for run in runs if run.row == "block_pixel_p0.8" and run.arm != "hidden_ambient"]
    assert sorted((run.arm, run.seed) for run in headline) == sorted(
        (arm, seed) for arm in ("ignore", "unmeasure", "ambient") for seed in (0, 1, 2)
    )
    # Hidden runs wait for the pilot's choice: they are last in the queue.
    arms = [run.arm for run in others]
    assert arms.index("hidden_ambient") == len(arms) - arms.count("hidden_ambient")


def test_every_planned_run_is_a_valid_config(study):
    pilot, others, context = paper_study.plan(study)
    for run in pilot + others:
        if run.arm == "hidden_ambient" and run.point is None:
            run.overrides.update(paper_study._hidden_overrides(
                context["rows"][run.row]["hidden"], "up2", cfg_model=context["model"]))
        cfg = load_config(None, _overrides(study["fixed"], run))
        assert cfg.mode in ("clean", "ignore", "unmeasure", "ambient"), run.name


@pytest.mark.parametrize("point, side", [("project", 7), ("up1", 14), ("up2", 28)])
def test_hidden_patch_is_the_same_fraction_of_each_feature_map(point, side):
    keys = paper_study._hidden_overrides({"name": "block_patch", "patch_fraction": 0.5}, point,
                                         cfg_model={"z_dim": 64, "g_width": 32})
    assert keys["hidden.inject_at"] == point and keys["hidden.measurement.patch"] == round(side / 2)
    assert "hidden.measurement.patch_fraction" not in keys


def test_concurrent_runs_leave_their_data_streams_a_share_of_the_cpus():
    # two runs on 2 CPUs: 0.75 each for the worker, 0.25 each for its stream's reading tasks (1 each starved them)
    assert paper_study.share_cpus({"train.steps": 10}, 2, 2) == {"train.steps": 10, "train.cpus_per_worker": 0.75}
    assert paper_study.share_cpus({}, 16, 2)["train.cpus_per_worker"] == 7.75
    with pytest.raises(SystemExit, match="do not fit 2 CPUs with train.cpus_per_worker=1"):
        paper_study.share_cpus({"train.cpus_per_worker": 1}, 2, 2)
