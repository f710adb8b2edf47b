"""The search space as the sweep uses it, built without a file: each key's Optuna distribution, the grid, and the
config keys a point sets."""

import optuna
import pytest
from gansweep.sweep.space import Bundle, Param, SpaceError, SweepSpace, distribution, grid_points, matches


@pytest.mark.parametrize("param", [
    Param("train.lr_d", "loguniform", low=1e-5, high=1e-2),
    Param("measurement.p", "uniform", low=0.1, high=0.9),
    Param("measurement.p", "uniform", low=0.1, high=0.9, step=0.2),
    Param("train.d_steps", "int", low=1, high=3),
    Param("measurement.patch", "int", low=4, high=14, step=2),
    Param("mode", "choice", choices=["ambient", "ignore"]),
    Param("arm", "choice", choices=["clean", "ambient"],
          bundles={"clean": Bundle({"mode": "clean"}), "ambient": Bundle({"mode": "ambient"})}),
])
def test_a_key_samples_from_the_distribution_its_spec_describes(param):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    param.suggest(trial)
    # the spec as sweep.json stores it (what the report rebuilds a study from) gives the distribution Optuna sampled
    assert trial.distributions[param.key] == distribution(param.describe())


def test_a_spec_of_no_known_kind_has_no_distribution():
    assert distribution({"when": {"mode": ["ambient"]}}) is None


def test_a_conditional_key_multiplies_only_the_points_where_it_is_active_and_exclude_drops_points():
    params = [Param("mode", "choice", choices=["ambient", "ignore"]),
              Param("measurement.patch", "choice", choices=[7, 14], when={"mode": ["ambient"]})]
    assert grid_points(params) == [{"mode": "ambient", "measurement.patch": 7},
                                   {"mode": "ambient", "measurement.patch": 14}, {"mode": "ignore"}]
    assert grid_points(params, [{"measurement.patch": [14]}]) == [{"mode": "ambient", "measurement.patch": 7},
                                                                  {"mode": "ignore"}]
    assert matches({"mode": "ignore"}, {"mode": ["ignore", "ambient"]})
    assert not matches({"mode": "ignore"}, {"measurement.patch": [7]})


def _space(params, fixed=None) -> SweepSpace:
    from gansweep.sweep.space import Resources, Scheduler, Search

    return SweepSpace(path=None, name="s", metric="fid", mode="min", num_samples=1, max_concurrent_trials=None,
                      fixed=fixed or {}, params=params, scheduler=Scheduler(), search=Search(), resources=Resources(),
                      objectives=[("fid", "min")])


def test_a_point_sets_its_keys_and_its_bundles_keys_and_one_key_set_twice_is_an_error():
    arm = Param("arm", "choice", choices=["clean", "hidden"], bundles={
        "clean": Bundle({"mode": "clean"}),
        "hidden": Bundle({"mode": "ambient"}, by={"row": {"bp": {"hidden.measurement.p": 0.8}}}),
    })
    row = Param("row", "choice", choices=["bp"], bundles={"bp": Bundle({"measurement.p": 0.5})})
    space = _space([arm, row, Param("train.lr_d", "loguniform", low=1e-5, high=1e-2)], fixed={"train.steps": 30})
    point = {"arm": "hidden", "row": "bp", "train.lr_d": 1e-3}
    assert space.config_keys(point) == {"mode": "ambient", "hidden.measurement.p": 0.8, "measurement.p": 0.5,
                                        "train.lr_d": 1e-3}
    cfg = space.trial_config(point)
    assert (cfg.train.steps, cfg.mode, cfg.measurement.p, cfg.hidden.measurement.p) == (30, "ambient", 0.5, 0.8)
    twice = Param("mode", "choice", choices=["ignore"])
    with pytest.raises(SpaceError, match="space.arm.choice.clean and space.mode both set mode; keep one"):
        _space([arm, twice]).config_keys({"arm": "clean", "mode": "ignore"})
