"""The sweep directory's files: written as a reader expects them, no password in them, clear errors for others."""

import json

import pytest
from gansweep.sweep import sweep_dir as layout


def test_the_sweep_record_round_trips_with_its_storage_password_masked(tmp_path):
    record = {"name": "s", "metric": "fid", "mode": "min", "storage": "postgresql://ann:s3cret@db:5432/optuna"}
    layout.claim(str(tmp_path), record)
    assert "s3cret" not in (tmp_path / layout.SWEEP_FILE).read_text()
    assert layout.read_sweep_record(tmp_path) == {**record, "storage": "postgresql://ann:***@db:5432/optuna"}
    assert layout.has_sweep_record(tmp_path)


def test_a_directory_is_claimed_by_one_sweep_and_released_before_tune_began(tmp_path):
    record = {"name": "s", "metric": "fid", "mode": "min"}
    layout.claim(str(tmp_path), record)
    with pytest.raises(layout.SweepDirError, match="already holds a sweep: add --resume"):
        layout.claim(str(tmp_path), {**record, "name": "t"})
    assert layout.read_sweep_record(tmp_path)["name"] == "s"
    layout.release(str(tmp_path))  # no tune/ yet: the start failed before Tune began
    layout.claim(str(tmp_path), record)
    (tmp_path / layout.TUNE_DIR).mkdir()
    (tmp_path / layout.TUNE_DIR / "experiment_state.json").write_text("{}")
    layout.release(str(tmp_path))  # Tune began: the sweep is kept for --resume
    assert layout.has_sweep_record(str(tmp_path))


def test_a_storage_password_read_from_the_environment_is_resolved_only_in_memory(monkeypatch):
    url = "postgresql://ann:${GANSWEEP_TEST_DB_PASSWORD}@db:5432/optuna"
    assert layout.masked_url(url) == url  # a reference is no secret: sweep.json keeps it for the report
    with pytest.raises(layout.SweepDirError, match=r"reads \$\{GANSWEEP_TEST_DB_PASSWORD\} .* is not set"):
        layout.study_url(url)
    monkeypatch.setenv("GANSWEEP_TEST_DB_PASSWORD", "s3cret")
    assert layout.study_url(url) == "postgresql://ann:s3cret@db:5432/optuna"
    assert layout.redacted("FATAL: s3cret refused", layout.study_url(url)) == "FATAL: *** refused"


@pytest.mark.parametrize("url", [None, "sqlite:////tmp/x/optuna.db", "postgresql://db/optuna"])
def test_urls_without_a_password_are_kept(url):
    assert layout.masked_url(url) == url


@pytest.mark.parametrize("content, fragment", [
    (None, "not a sweep directory"),
    ("{not json", "cannot read"),
    ('["a list"]', "does not hold a JSON object"),
    ('{"name": "s", "metric": "fid"}', "lacks mode"),
    ('{"name": "s", "metric": "fid", "mode": "up"}', "mode must be 'min' or 'max'"),
])
def test_an_unreadable_sweep_record_is_a_clear_error(tmp_path, content, fragment):
    if content is not None:
        (tmp_path / layout.SWEEP_FILE).write_text(content)
    with pytest.raises(layout.SweepDirError, match=fragment):
        layout.read_sweep_record(tmp_path)


def test_trials_are_written_in_number_order_and_read_back_named(tmp_path):
    assert layout.read_trials(tmp_path) is None  # no trial has started
    layout.write_trials(tmp_path, [{"number": 2, "name": "b", "params": {}}, {"number": 0, "name": "a", "params": {}}])
    assert [t["name"] for t in layout.read_trials(tmp_path)] == ["a", "b"]
    (tmp_path / layout.TRIALS_FILE).write_text(json.dumps({"trials": [{"params": None}]}))
    assert layout.read_trials(tmp_path) == [{"number": 0, "name": "trial_0", "group": "trial_0", "params": {},
                                             "value": None}]
    (tmp_path / layout.TRIALS_FILE).write_text(json.dumps({"runs": []}))
    with pytest.raises(layout.SweepDirError, match="no list under 'trials'"):
        layout.read_trials(tmp_path)


def _valued(number, value, group=None, status="finished"):
    return {"number": number, "name": f"t{number}", "group": group or f"t{number}", "status": status, "value": value}


def test_the_best_point_is_by_its_value_the_mean_of_its_seeds_and_never_a_best_so_far():
    trials = [_valued(0, 3.0), _valued(1, None, status="stopped"), _valued(2, 1.0),
              _valued(3, 0.5, "p"), _valued(4, 2.5, "p")]  # a point of two seeds: mean 1.5
    trials[1]["best"] = {"value": 0.1}  # a best-so-far figure (older trials.json) ranks nothing
    entries, value = layout.best_point(trials, "min")
    assert [e["name"] for e in entries] == ["t2"] and value == 1.0
    entries, value = layout.best_point(trials, "max")
    assert [e["name"] for e in entries] == ["t0"] and value == 3.0
    trials[2]["value"] = None
    entries, value = layout.best_point(trials, "min")
    assert [e["name"] for e in entries] == ["t3", "t4"] and value == 1.5
    trials[4].update(status="stopped", value=None)  # a stopped seed: the point has no value (Optuna: PRUNED)
    assert layout.best_point(trials, "min")[0][0]["name"] == "t0"
    assert layout.best_point([_valued(0, None, status="failed")], "min") is None
    assert layout.best_point([_valued(1, 2.0), _valued(0, 2.0)], "min")[0][0]["name"] == "t0"  # a tie: the first


def test_a_trial_s_value_is_its_last_report_of_a_finished_trial_and_older_trials_json_get_theirs(tmp_path):
    finished = {"status": "finished", "metrics": {"fid": 40.0, "fid_best": 30.0}}
    assert layout.trial_value(finished, "fid") == 40.0
    assert layout.trial_value({**finished, "status": "stopped"}, "fid") is None
    assert layout.trial_value({**finished, "metrics": {"fid": float("nan")}}, "fid") is None
    (tmp_path / layout.SWEEP_FILE).write_text(json.dumps({"name": "s", "metric": "fid", "mode": "min"}))
    layout.write_trials(tmp_path, [{"number": 0, "name": "a", **finished, "best": {"value": 30.0}},
                                   {"number": 1, "name": "b", **finished, "value": 41.0}])
    assert [t["value"] for t in layout.read_trials(tmp_path)] == [40.0, 41.0]  # the recorded value stands


def test_the_pareto_front_keeps_the_finished_trials_nothing_dominates():
    def trial(number, fid, score, status="finished"):
        return {"number": number, "status": status, "metrics": {"fid": fid, "classifier_score": score}}

    trials = [
        trial(0, 30.0, 5.0),  # best FID
        trial(1, 40.0, 7.0),  # best score
        trial(2, 35.0, 6.0),  # between the two: on the front
        trial(3, 36.0, 6.0),  # dominated by 2 (worse FID, same score)
        trial(4, 10.0, 9.0, status="stopped"),  # would dominate all, but its figures are not final
        {"number": 5, "status": "finished", "metrics": {"fid": 20.0}},  # no score: not comparable
    ]
    front = layout.pareto_front(trials, [("fid", "min"), ("classifier_score", "max")])
    assert [t["number"] for t in front] == [0, 2, 1]  # sorted by the first objective
    # the directions matter: maximising FID and minimising the score, 3 dominates 2 and the highest FID comes first
    assert [t["number"] for t in layout.pareto_front(trials, [("fid", "max"), ("classifier_score", "min")])] == [1, 3, 0]
    assert layout.objectives_of({"metric": "fid", "mode": "min"}) == [("fid", "min")]


def test_sweep_json_holds_the_space_and_a_study_only_where_the_sweep_has_one():
    from gansweep.sweep.space import Param, Resources, Scheduler, Search, SweepSpace

    space = SweepSpace(path="space.yaml", name="s", metric="fid", mode="min", num_samples=4, max_concurrent_trials=None,
                       fixed={"train.steps": 100}, params=[Param("train.lr_d", "loguniform", low=1e-5, high=1e-2)],
                       scheduler=Scheduler(), search=Search(), resources=Resources(), objectives=[("fid", "min")])
    record = layout.sweep_record(space, "postgresql://ann:s3cret@db:5432/optuna")
    assert record["space"] == {"train.lr_d": {"loguniform": [1e-5, 1e-2]}}
    assert record["objectives"] == [["fid", "min"]]  # as JSON reads it back, which --resume compares it with
    assert (record["study_name"], record["storage"]) == ("s", "postgresql://ann:***@db:5432/optuna")
    assert record["scheduler"]["name"] == "asha" and record["num_samples"] == 4
    population = layout.sweep_record(space, None)  # a PBT population has no Optuna study
    assert (population["study_name"], population["storage"]) == (None, None)


def test_a_new_trial_entry_is_pending_with_nothing_reported(tmp_path):
    entry = layout.new_trial_entry("0001_lr_d=0.001", 1, {"train.lr_d": 1e-3})
    assert entry["status"] == layout.PENDING and entry["metrics"] == {} and entry["value"] is None
    layout.write_trials(str(tmp_path), [entry])
    assert layout.read_trials(str(tmp_path)) == [entry]
