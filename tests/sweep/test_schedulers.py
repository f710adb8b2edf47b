"""The scheduler registry: every name a space may give builds a Tune scheduler, and checks its settings."""

import pytest
from gansweep.sweep.schedulers import SCHEDULERS
from gansweep.sweep.space import Param, Resources, Scheduler, Search, SpaceError, SweepSpace


def _space(name: str, **settings) -> SweepSpace:
    return SweepSpace(path=None, name="s", metric="fid", mode="min", num_samples=2, max_concurrent_trials=None,
                      fixed={"train.steps": 100, "eval.every": 10, "train.checkpoint_every": 10},
                      params=[Param("train.lr_d", "loguniform", low=1e-5, high=1e-2)],
                      scheduler=Scheduler(name=name, **settings), search=Search(), resources=Resources(),
                      objectives=[("fid", "min")])


@pytest.mark.parametrize("name, tune_class", [("asha", "AsyncHyperBandScheduler"), ("fifo", "FIFOScheduler"),
                                              ("pbt", "SweepPBT"), ("pb2", "SweepPBT")])
def test_every_scheduler_builds_for_tune(tmp_path, name, tune_class):
    space = _space(name, grace_period=10, perturbation_interval=20)
    built = SCHEDULERS[name].build(space, str(tmp_path), lambda trial: "trial", ("optuna_number",))
    assert type(built).__name__ == tune_class
    assert SCHEDULERS[name].population_based == (name in ("pbt", "pb2"))


def test_asha_s_first_rung_defaults_to_the_first_figure_and_must_come_before_the_end():
    space = _space("asha")
    base = space.base_config()
    SCHEDULERS["asha"].check(space, base, "space.yaml")
    assert space.scheduler.grace_period == 10
    with pytest.raises(SpaceError, match="grace_period: 100 must be below train.steps=100"):
        SCHEDULERS["asha"].check(_space("asha", grace_period=100), base, "space.yaml")


def test_asha_and_pbt_refuse_two_objectives():
    two = [("fid", "min"), ("classifier_score", "max")]
    for name, fragment in (("asha", "asha stops trials on one metric"), ("pbt", "pbt clones the best trials")):
        with pytest.raises(SpaceError, match=fragment):
            SCHEDULERS[name].check_search({"scheduler": {"name": name}}, Search(), two, "space.yaml")
    SCHEDULERS["fifo"].check_search({}, Search(), two, "space.yaml")
