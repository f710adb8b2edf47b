"""A space's `seeds:` (each point on several training seeds) and its `search.algorithm` gp and cmaes: what they sample
and what they refuse before Ray starts (exit 2)."""

import textwrap
import warnings

import optuna
import pytest
from conftest import needs_fashion
from gansweep.sweep import samplers
from gansweep.sweep.space import SpaceError
from gansweep.sweep.space_file import load_space

pytestmark = needs_fashion  # every space is checked against its data

NUMERIC = "space: {measurement.p: {uniform: [0.1, 0.9]}}\n"
GRID = textwrap.dedent("""\
    search: {algorithm: grid}
    fixed: {train.steps: 2000, train.seed: 10}
    space:
      measurement.name: {choice: [block_pixel, block_patch]}
      mode: {choice: [ambient, ignore]}
""")


def _load(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return load_space(path)


def _error(tmp_path, text, *fragments):
    with pytest.raises(SpaceError) as info:
        _load(tmp_path, text)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_seeds_train_each_point_on_the_base_seed_and_the_next_ones_with_every_trial_to_its_end(tmp_path):
    space = _load(tmp_path, "num_samples: 4\nseeds: 3\nfixed: {train.seed: 5}\n" + NUMERIC)
    assert space.seeds == 3 and space.seed_values({"measurement.p": 0.5}) == [5, 6, 7]
    assert space.trial_count() == 12
    assert space.scheduler.name == "fifo"  # ASHA would stop a point's seeds one by one
    one = _load(tmp_path, "num_samples: 4\n" + NUMERIC)
    assert one.seeds == 1 and one.seed_values({}) == [None] and one.trial_count() == 4  # unchanged: its own seed


def test_a_grid_s_exclude_may_drop_some_seeds_of_some_points(tmp_path):
    space = _load(tmp_path, GRID + "seeds: 3\nexclude:\n  - {mode: [ignore], train.seed: [11, 12]}\n")
    assert space.num_samples == 4  # points
    assert space.seed_values({"measurement.name": "block_pixel", "mode": "ambient"}) == [10, 11, 12]
    assert space.seed_values({"measurement.name": "block_pixel", "mode": "ignore"}) == [10]
    assert space.trial_count() == 2 * 3 + 2 * 1


@pytest.mark.parametrize("text, fragments", [
    ("num_samples: 2\nseeds: 0\n" + NUMERIC, ["seeds: must be an integer >= 1"]),
    ("num_samples: 2\nseeds: true\n" + NUMERIC, ["seeds: must be an integer >= 1"]),
    ("num_samples: 2\nseeds: 2\nspace: {train.seed: {choice: [0, 1]}}\n", ["space.train.seed", "seeds: 2", "keep one"]),
    ("num_samples: 2\nseeds: 2\nspace: {arm: {choice: {a: {train.seed: 3}, b: {mode: ignore}}}}\n",
     ["space.arm: sets train.seed"]),
    ("num_samples: 2\nseeds: 2\nscheduler: {name: asha}\n" + NUMERIC, ["scheduler asha", "ASHA stops each seed",
                                                                       "name: fifo"]),
    ("num_samples: 2\nseeds: 2\nscheduler: {name: pbt, perturbation_interval: 500}\nsearch: {algorithm: random}\n"
     "fixed: {train.steps: 2000, eval.every: 250, train.checkpoint_every: 250}\n"
     "space: {train.lr_d: {loguniform: [1.0e-4, 1.0e-3]}}\n", ["scheduler pbt", "population"]),
    (GRID + "seeds: 3\nexclude:\n  - {mode: [ignore], train.seed: [7]}\n", ["exclude[0].train.seed", "7"]),
    (GRID + "seeds: 2\nexclude:\n  - {mode: [ignore], train.seed: [10, 11]}\n", ["drops every seed", "leave "
                                                                                 "train.seed out"]),
    (GRID + "exclude:\n  - {mode: [ignore], train.seed: [0]}\n", ["exclude[0].train.seed", "not a choice key"]),
])
def test_seeds_that_cannot_run_are_refused(tmp_path, text, fragments):
    _error(tmp_path, text, *fragments)


def test_gp_and_cmaes_build_their_samplers_seeded_by_the_search_seed(tmp_path):
    gp = _load(tmp_path, "num_samples: 4\nsearch: {algorithm: gp, seed: 3}\n" + NUMERIC)
    assert isinstance(samplers.sampler(gp.search), optuna.samplers.GPSampler)
    cmaes = _load(tmp_path, "num_samples: 4\nsearch: {algorithm: cmaes, seed: 3, startup_trials: 2}\n" + NUMERIC)
    sampler = samplers.sampler(cmaes.search)
    assert isinstance(sampler, optuna.samplers.CmaEsSampler) and sampler._with_margin
    assert sampler._n_startup_trials == 2
    # Seeded: the same search seed asks the same first points
    def first(space):
        study = optuna.create_study(sampler=samplers.sampler(space.search))
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]
    assert first(gp) == first(gp) and first(cmaes) == first(cmaes)
    # GP takes two objectives (expected hypervolume improvement)
    assert _load(tmp_path, "num_samples: 4\nmetric: [fid, classifier_score]\nsearch: {algorithm: gp}\n"
                 + NUMERIC).search.algorithm == "gp"


@pytest.mark.parametrize("text, fragments", [
    ("num_samples: 4\nsearch: {algorithm: cmaes}\nspace: {mode: {choice: [ambient, ignore]}}\n",
     ["cmaes searches numeric keys", "only choices"]),
    ("num_samples: 4\nmetric: [fid, classifier_score]\nsearch: {algorithm: cmaes}\n" + NUMERIC,
     ["cmaes optimises one metric"]),
    ("num_samples: 4\nsearch: {algorithm: bayes}\n" + NUMERIC, ["search.algorithm", "tpe, random, grid, gp, cmaes"]),
    ("num_samples: 4\nsearch: {algorithm: tpe, startup_trials: -1}\n" + NUMERIC, ["search.startup_trials"]),
])
def test_samplers_that_cannot_search_the_space_are_refused(tmp_path, text, fragments):
    _error(tmp_path, text, *fragments)


def test_cmaes_on_numbers_and_choices_says_once_that_it_draws_the_choices_at_random(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _load(tmp_path, "num_samples: 4\nsearch: {algorithm: cmaes}\nspace:\n  measurement.p: {uniform: [0.1, 0.9]}\n"
                        "  mode: {choice: [ambient, ignore]}\n")
    assert [str(w.message) for w in caught if "cmaes" in str(w.message)] == [
        f"{tmp_path / 'space.yaml'}: search.algorithm cmaes searches measurement.p; it draws mode at random (CMA-ES "
        "has no model of choices)"]
