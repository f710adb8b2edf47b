"""The sweep's searcher: Ray's OptunaSearch over the sweep's Optuna study, kept true to what became of each trial, and
never pickled with the study's storage URL (it may hold a password). A point of a space with `seeds:` runs as one Tune
trial per seed, grouped here under the point's one Optuna trial, which is told their mean.

Why our own grouping and not Tune's Repeater (ray.tune.search.Repeater, which wraps a searcher alike): Repeater saves
and restores only the searcher it wraps, so after --resume its groups are gone and a resumed trial's end raises a
KeyError; it tells the searcher {metric: mean} without the step, so the pruning rule below would take every point as
stopped; it reads one metric (no two objectives); and it gives every repeat the same config, so Tune would name them
alike (their directories would collide). Here the groups are pickled with the searcher, and restore() closes a
group's Optuna trial from trials.json like any other.
"""

from __future__ import annotations

import pickle
import warnings

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from gansweep import storage
from gansweep.evaluation import figures
from gansweep.sweep import sweep_dir as layout

# A sweep directory's resolved storage URL, for its searcher: Tune pickles the searcher (into tuner.pkl and each
# searcher-state file) and unpickles it on --resume, and the URL may hold a password, so the pickles hold none and
# the searcher re-attaches to its study from here, in the driver that set it (run_sweep).
STUDY_URLS: dict[str, str] = {}
SWEEP_ATTR = "sweep"  # an Optuna trial's user attribute: the sweep directory whose driver asked for it
SEED = "seed"  # a Tune trial's config key: its training seed, where the space has several per point


class StudySearch(OptunaSearch):
    """Ray's OptunaSearch, pickled without its storage (see STUDY_URLS), telling Optuna what became of each trial:
    a trial stopped by the scheduler before its last step is PRUNED (Ray would record its partial value as
    COMPLETE), and a study trial a killed driver asked for after Tune's last save is closed on resume (restore). The
    study names its values by the sweep's metrics (the dashboard's "fid", not "Objective 0"); a trial's intermediate
    values are its cheap evaluations, once each at its training step (not Ray's every report at Tune's iteration,
    each repeating the last evaluation). It also publishes a sweep's local
    SQLite study to the bucket (sweep_dir.publish_study) whenever Tune saves its own state: Tune then uploads that
    state, so the two copies a resume reads agree."""

    _DETACHED = ("_storage", "_ot_study", "_ot_trials")

    def __init__(self, *args, sweep_dir: str, steps: int, seeds_of=None, **kwargs):
        """SEEDS_OF: a point's training seeds (SweepSpace.seed_values); None: one trial per point, its own seed."""
        super().__init__(*args, **kwargs)
        self.sweep_dir, self.steps, self.seeds_of = sweep_dir, steps, seeds_of
        self.published = None  # the local study's stamp when last published: unchanged, it is not uploaded again
        # Tune's trial id -> its group: the point's config, its seeds, its first trial's id (the one Optuna knows of),
        # the ids of its trials so far and how each ended. The last group made is filled before Optuna is asked again.
        self._groups: dict[str, dict] = {}
        self._filling: dict | None = None

    def _setup_study(self, mode):
        import optuna

        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line: the sweep's says it
        try:
            super()._setup_study(mode)
        finally:
            optuna.logging.set_verbosity(verbosity)
        with warnings.catch_warnings():  # "set_metric_names is experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names(self._metrics())

    def __getstate__(self) -> dict:
        state = {key: value for key, value in self.__dict__.items() if key not in self._DETACHED}
        # Tune's trial id -> the study's own trial id, what re-attaching needs of an Optuna trial
        state["_ot_trial_ids"] = {tune_id: trial._trial_id for tune_id, trial in self._ot_trials.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        # (a searcher Tune pickled before seeds existed: its trials are groups of one, none of them known here)
        self.__dict__.update({"seeds_of": None, "_groups": {}, "_filling": None, **state})
        self._storage = self._ot_study = None
        self._ot_trials = {}
        if self.sweep_dir in STUDY_URLS:
            self._attach(STUDY_URLS[self.sweep_dir])

    def _attach(self, url: str) -> None:
        import optuna

        self._storage = optuna.storages.RDBStorage(url)
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage, sampler=self._sampler,
                                           pruner=optuna.pruners.NopPruner())
        self._ot_trials = {tune_id: optuna.Trial(self._ot_study, trial_id)
                           for tune_id, trial_id in self.__dict__.pop("_ot_trial_ids", {}).items()}

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as file:  # OptunaSearch.save pickles its __dict__, storage and all
            pickle.dump(self.__getstate__(), file)
        self.published = layout.publish_study(self.sweep_dir, STUDY_URLS[self.sweep_dir], self.published)

    def restore(self, checkpoint_path: str):
        """The state Tune saved last (on --resume). An Optuna trial asked for after that save has no Tune trial that
        will ever report to it: told what trials.json says became of it (a trial that ended before the kill), else
        FAIL; never left RUNNING."""
        with open(checkpoint_path, "rb") as file:
            self.__setstate__(pickle.load(file))
        _close_lost_trials(self)

    def _metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    def _owner(self) -> str:
        return storage.display(self.sweep_dir)

    def suggest(self, trial_id: str) -> dict | None:
        group = self._filling
        if group is None or len(group["trials"]) == len(group["seeds"]):
            point = super().suggest(trial_id)
            if point is None or point == Searcher.FINISHED:
                return point
            self._ot_trials[trial_id].set_user_attr(SWEEP_ATTR, self._owner())
            seeds = self.seeds_of(point) if self.seeds_of else [None]
            group = self._filling = {"point": point, "seeds": seeds, "first": trial_id, "trials": [], "ends": {}}
        seed = group["seeds"][len(group["trials"])]
        group["trials"].append(trial_id)
        self._groups[trial_id] = group
        return group["point"] if seed is None else {**group["point"], SEED: seed}

    def on_trial_result(self, trial_id: str, result: dict):
        group, step = self._groups.get(trial_id), result.get(figures.STEP)
        # A point of several seeds is told their mean at their end only; two objectives have no intermediate values.
        if ((group is not None and len(group["seeds"]) > 1) or isinstance(self.metric, list) or step is None
                or trial_id in self._completed_trials):
            return
        trial = self._ot_trials[trial_id]
        if step not in trial._cached_frozen_trial.intermediate_values:  # (the reports between carry it again)
            trial.report(result[self.metric], step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        group = self._groups.get(trial_id)
        first = group["first"] if group else trial_id
        trial = self._ot_trials.get(first)
        if trial is not None and self._storage.get_trial(trial._trial_id).state.is_finished():
            # A trial Tune ran again after a resume (it ended after Tune's last save): Optuna was told already.
            self._completed_trials.add(trial_id)
            return
        if not error and result is not None and result.get("step", 0) < self.steps:
            self.on_trial_result(trial_id, result)  # the evaluation it was stopped on: Tune gives it here only
            result = None  # stopped by the scheduler: OptunaSearch tells a trial without a value as PRUNED
        if group is None:  # a trial suggested by a searcher pickled before seeds existed
            super().on_trial_complete(trial_id, result, error)
            return
        group["ends"][trial_id] = {"error": error, "values": None if result is None else
                                   [result.get(metric) for metric in self._metrics()]}
        if len(group["ends"]) < len(group["seeds"]):
            return  # the point's other seeds are still to report
        super().on_trial_complete(first, *_point_end(list(group["ends"].values()), self._metrics()))


def _point_end(ends: list[dict], metrics: list[str]) -> tuple[dict | None, bool]:
    """What OptunaSearch is told of a point whose seeds all ENDED: (the means of METRICS, False); (None, True) where a
    seed failed (FAIL); (None, False) where one was stopped early (PRUNED)."""
    if any(end["error"] or (end["values"] is not None and None in end["values"]) for end in ends):
        return None, True
    if any(end["values"] is None for end in ends):
        return None, False
    columns = list(zip(*(end["values"] for end in ends)))
    return {metric: sum(column) / len(column) for metric, column in zip(metrics, columns)}, False


def _close_lost_trials(search: StudySearch) -> None:
    """SEARCH's Optuna trials left RUNNING by a killed driver (StudySearch.restore), told what trials.json says."""
    import optuna

    attached = {trial._trial_id for trial in search._ot_trials.values()}
    recorded: dict[int, list[dict]] = {}  # a point's entries: one per seed
    for entry in layout.read_trials(search.sweep_dir) or []:
        recorded.setdefault(entry["number"], []).append(entry)
    for trial in search._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # (A study may be shared with other sweeps running now: only this one's trials.)
        if trial.user_attrs.get(SWEEP_ATTR) != search._owner() or trial._trial_id in attached:
            continue
        entries = recorded.get(trial.number, [])
        seeds = len(search.seeds_of(trial.params)) if search.seeds_of else 1
        values = [[entry.get("metrics", {}).get(metric) for metric in search._metrics()] for entry in entries]
        if (len(entries) == seeds and all(entry.get("status") == layout.FINISHED for entry in entries)
                and all(None not in v for v in values)):
            means = [sum(column) / len(column) for column in zip(*values)]
            search._ot_study.tell(trial.number, means if len(means) > 1 else means[0])
        else:
            stopped = any(entry.get("status") == layout.STOPPED for entry in entries)
            search._ot_study.tell(trial.number, state=optuna.trial.TrialState.PRUNED if stopped
                                  else optuna.trial.TrialState.FAIL)
