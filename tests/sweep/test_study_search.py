"""The sweep's searcher (study_search.StudySearch) as Tune drives it, without Ray: what it pickles (no storage URL),
what it tells Optuna when a trial ends (finished, stopped by the scheduler, failed), and its re-attachment to the study
on --resume after a driver killed at any point around a trial's end."""

import pickle

import optuna
import pytest
from gansweep.sweep import study_search
from gansweep.sweep import sweep_dir as layout

STEPS = 40


def _define(trial) -> None:
    trial.suggest_float("measurement.p", 0.1, 0.9)


@pytest.fixture
def study_url(tmp_path):
    url = f"sqlite:///{tmp_path}/the-study-file.db"
    study_search.STUDY_URLS[str(tmp_path)] = url
    yield url
    del study_search.STUDY_URLS[str(tmp_path)]


def _search(tmp_path, url: str, sweep_dir=None) -> study_search.StudySearch:
    sweep_dir = str(sweep_dir or tmp_path)
    study_search.STUDY_URLS.setdefault(sweep_dir, url)
    return study_search.StudySearch(space=_define, metric="fid", mode="min",
                                    sampler=optuna.samplers.RandomSampler(seed=0),
                                    storage=optuna.storages.RDBStorage(url), study_name="s", sweep_dir=sweep_dir,
                                    steps=STEPS)


def _resumed(search: study_search.StudySearch, saved) -> study_search.StudySearch:
    """What a resumed driver holds: the searcher unpickled from tuner.pkl, then restored from Tune's last save."""
    fresh = pickle.loads(pickle.dumps(search))
    fresh.restore(saved)
    return fresh


def _states(url: str) -> list[tuple[str, float | None]]:
    study = optuna.load_study(study_name="s", storage=url)
    return [(t.state.name, t.value) for t in study.trials]


def test_what_tune_pickles_of_the_searcher_holds_no_storage_url(tmp_path, study_url):
    search = _search(tmp_path, study_url)
    search.suggest("a")
    saved = tmp_path / "searcher-state.pkl"
    search.save(str(saved))
    for pickled in (saved.read_bytes(), pickle.dumps(search)):
        assert b"the-study-file" not in pickled and b"sqlite" not in pickled
    # Re-attached on resume from the driver's own setting: the running trial reports to its Optuna trial.
    resumed = _resumed(search, saved)
    resumed.on_trial_complete("a", {"fid": 12.5, "step": STEPS})
    assert _states(study_url) == [("COMPLETE", 12.5)]


def test_optuna_hears_each_cheap_evaluation_once_at_its_training_step_under_the_metric_s_name(tmp_path, study_url):
    search = _search(tmp_path, study_url)
    search.suggest("a")
    # Tune's results: a report every log_every steps, each carrying the last cheap evaluation again.
    for step, fid, evaluated in ((10, None, None), (20, 50.0, 20), (30, 50.0, 20), (40, 45.0, 40)):
        result = {"step": step, "training_iteration": step // 10}
        search.on_trial_result("a", result if fid is None else {**result, "fid": fid, "fid_step": evaluated})
    saved = tmp_path / "searcher-state.pkl"
    search.save(str(saved))
    resumed = _resumed(search, saved)  # a resumed trial's first report carries its last evaluation again
    resumed.on_trial_result("a", {"step": 40, "fid": 45.0, "fid_step": 40, "training_iteration": 1})
    resumed.on_trial_complete("a", {"fid": 45.0, "step": STEPS})
    (trial,) = optuna.load_study(study_name="s", storage=study_url).trials
    assert trial.intermediate_values == {20: 50.0, 40: 45.0} and trial.value == 45.0
    assert optuna.load_study(study_name="s", storage=study_url).metric_names == ["fid"]


def test_a_trial_stopped_by_the_scheduler_is_pruned_with_the_evaluation_it_was_stopped_on(tmp_path, study_url):
    search = _search(tmp_path, study_url)
    search.suggest("a")
    search.on_trial_result("a", {"step": 10, "fid": 50.0, "fid_step": 10, "training_iteration": 1})
    # Tune hands the result ASHA stopped the trial on to on_trial_complete only.
    search.on_trial_complete("a", {"step": 20, "fid": 60.0, "fid_step": 20, "training_iteration": 2})
    (trial,) = optuna.load_study(study_name="s", storage=study_url).trials
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {10: 50.0, 20: 60.0}


@pytest.mark.parametrize("result, error, expected", [
    ({"fid": 12.5, "step": STEPS}, False, ("COMPLETE", 12.5)),  # trained all its steps
    ({"fid": 30.0, "step": 20}, False, ("PRUNED", None)),  # stopped by ASHA at a rung: its value is partial
    (None, True, ("FAIL", None)),
])
def test_a_trial_s_end_reaches_optuna_as_what_it_was(tmp_path, study_url, result, error, expected):
    search = _search(tmp_path, study_url)
    search.suggest("a")
    search.on_trial_complete("a", result, error=error)
    assert _states(study_url) == [expected]


def test_an_optuna_trial_asked_after_tune_s_last_save_is_failed_on_resume(tmp_path, study_url):
    search = _search(tmp_path, study_url)
    search.suggest("a")
    saved = tmp_path / "searcher-state.pkl"
    search.save(str(saved))  # Tune's last save before the kill
    # Then the driver asked for two more trials, one of which even ended (trials.json says so), and was killed.
    search.suggest("b")
    search.suggest("c")
    layout.write_trials(str(tmp_path), [{"name": "0002_c", "number": 2, "status": "finished",
                                         "metrics": {"fid": 7.0, "step": STEPS}}])
    # Another sweep sharing the study (a second driver on the same PostgreSQL study) has a trial running now.
    other = _search(tmp_path, study_url, sweep_dir=tmp_path / "other")
    other.suggest("x")
    resumed = _resumed(search, saved)
    assert _states(study_url) == [("RUNNING", None), ("FAIL", None), ("COMPLETE", 7.0), ("RUNNING", None)]
    resumed.on_trial_complete("a", {"fid": 12.5, "step": STEPS})  # the trial Tune resumes, re-attached
    assert _states(study_url)[0] == ("COMPLETE", 12.5)


def test_a_trial_told_before_the_kill_is_not_told_again_when_tune_reruns_it(tmp_path, study_url, caplog):
    search = _search(tmp_path, study_url)
    search.suggest("a")
    saved = tmp_path / "searcher-state.pkl"
    search.save(str(saved))
    search.on_trial_complete("a", {"fid": 12.5, "step": STEPS})  # told, then killed before Tune saved again
    resumed = _resumed(search, saved)
    # Tune reruns the trial: a finished run reports its last figures again (run.loop), and Optuna keeps its record.
    resumed.on_trial_complete("a", {"fid": 12.5, "step": STEPS})
    assert _states(study_url) == [("COMPLETE", 12.5)]
    assert "already finished" not in caplog.text and "Cannot tell" not in caplog.text


# --- a space with seeds: a point's trials grouped under its one Optuna trial ------------------------------------


def _seeded(tmp_path, url: str) -> study_search.StudySearch:
    study_search.STUDY_URLS.setdefault(str(tmp_path), url)
    return study_search.StudySearch(space=_define, metric="fid", mode="min",
                                    sampler=optuna.samplers.RandomSampler(seed=0),
                                    storage=optuna.storages.RDBStorage(url), study_name="s", sweep_dir=str(tmp_path),
                                    steps=STEPS, seeds_of=_three_seeds)


def _three_seeds(point: dict) -> list[int]:
    return [0, 1, 2]


def test_a_point_s_seeds_are_one_optuna_trial_told_their_mean_once_all_have_ended(tmp_path, study_url):
    search = _seeded(tmp_path, study_url)
    configs = [search.suggest(trial_id) for trial_id in "abcd"]
    assert [config["seed"] for config in configs] == [0, 1, 2, 0]
    assert configs[0]["measurement.p"] == configs[2]["measurement.p"] != configs[3]["measurement.p"]
    assert len(optuna.load_study(study_name="s", storage=study_url).trials) == 2  # two points asked of Optuna
    search.on_trial_complete("b", {"fid": 12.0, "step": STEPS})
    search.on_trial_complete("a", {"fid": 10.0, "step": STEPS})
    assert _states(study_url) == [("RUNNING", None), ("RUNNING", None)]  # the point's third seed still trains
    search.on_trial_complete("c", {"fid": 14.0, "step": STEPS})
    assert _states(study_url) == [("COMPLETE", 12.0), ("RUNNING", None)]


@pytest.mark.parametrize("ends, expected", [
    ([({"fid": 10.0, "step": STEPS}, False), (None, True), ({"fid": 14.0, "step": STEPS}, False)], ("FAIL", None)),
    ([({"fid": 10.0, "step": STEPS}, False), ({"fid": 30.0, "step": 20}, False), ({"fid": 14.0, "step": STEPS}, False)],
     ("PRUNED", None)),
])
def test_a_point_with_a_failed_or_stopped_seed_is_failed_or_pruned(tmp_path, study_url, ends, expected):
    search = _seeded(tmp_path, study_url)
    for trial_id, (result, error) in zip("abc", ends):
        search.suggest(trial_id)
    for trial_id, (result, error) in zip("abc", ends):
        search.on_trial_complete(trial_id, result, error=error)
    assert _states(study_url) == [expected]


def test_a_resumed_searcher_goes_on_filling_its_group_and_closes_a_lost_one_from_trials_json(tmp_path, study_url):
    search = _seeded(tmp_path, study_url)
    search.suggest("a")
    search.suggest("b")
    saved = tmp_path / "searcher-state.pkl"
    search.save(str(saved))  # Tune's last save: the point's first two seeds
    search.on_trial_complete("a", {"fid": 10.0, "step": STEPS})  # ended after the save: Tune will run it again
    search.suggest("c")
    for trial_id in "def":  # a second point, all its seeds asked and ended after the save
        search.suggest(trial_id)
    layout.write_trials(str(tmp_path), [
        {"name": f"0001_seed={seed}", "number": 1, "seed": seed, "status": "finished",
         "metrics": {"fid": fid, "step": STEPS}} for seed, fid in enumerate([20.0, 22.0, 24.0])])
    resumed = _resumed(search, saved)
    assert _states(study_url) == [("RUNNING", None), ("COMPLETE", 22.0)]
    third = resumed.suggest("g")  # the first point's third seed, asked again
    assert third["seed"] == 2 and third["measurement.p"] == resumed._groups["a"]["point"]["measurement.p"]
    for trial_id, fid in (("a", 10.0), ("b", 12.0), ("g", 14.0)):
        resumed.on_trial_complete(trial_id, {"fid": fid, "step": STEPS})
    assert _states(study_url) == [("COMPLETE", 12.0), ("COMPLETE", 22.0)]
