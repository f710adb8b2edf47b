"""The sweep's searcher: Ray's OptunaSearch over the sweep's Optuna study, kept true to what became of each trial, and
never pickled with the study's storage URL (it may hold a password)."""

from __future__ import annotations

import pickle

from ray.tune.search.optuna import OptunaSearch

from gansweep import storage
from gansweep.sweep import sweep_dir as layout

# A sweep directory's resolved storage URL, for its searcher: Tune pickles the searcher (into tuner.pkl and each
# searcher-state file) and unpickles it on --resume, and the URL may hold a password, so the pickles hold none and
# the searcher re-attaches to its study from here, in the driver that set it (run_sweep).
STUDY_URLS: dict[str, str] = {}
SWEEP_ATTR = "sweep"  # an Optuna trial's user attribute: the sweep directory whose driver asked for it


class StudySearch(OptunaSearch):
    """Ray's OptunaSearch, pickled without its storage (see STUDY_URLS), telling Optuna what became of each trial:
    a trial stopped by the scheduler before its last step is PRUNED (Ray would record its partial value as
    COMPLETE), and a study trial a killed driver asked for after Tune's last save is closed on resume (restore). It also
    publishes a sweep's local SQLite study to the bucket (sweep_dir.publish_study) whenever Tune saves its own state:
    Tune then uploads that state, so the two copies a resume reads agree."""

    _DETACHED = ("_storage", "_ot_study", "_ot_trials")

    def __init__(self, *args, sweep_dir: str, steps: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.sweep_dir, self.steps = sweep_dir, steps
        self.published = None  # the local study's stamp when last published: unchanged, it is not uploaded again

    def __getstate__(self) -> dict:
        state = {key: value for key, value in self.__dict__.items() if key not in self._DETACHED}
        # Tune's trial id -> the study's own trial id, what re-attaching needs of an Optuna trial
        state["_ot_trial_ids"] = {tune_id: trial._trial_id for tune_id, trial in self._ot_trials.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
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
        import optuna

        with open(checkpoint_path, "rb") as file:
            self.__setstate__(pickle.load(file))
        attached = {trial._trial_id for trial in self._ot_trials.values()}
        recorded = {entry["number"]: entry for entry in layout.read_trials(self.sweep_dir) or []}
        for trial in self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # (A study may be shared with other sweeps running now: only this one's trials.)
            if trial.user_attrs.get(SWEEP_ATTR) != self._owner() or trial._trial_id in attached:
                continue
            entry = recorded.get(trial.number, {})
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [entry.get("metrics", {}).get(metric) for metric in metrics]
            if entry.get("status") == layout.FINISHED and None not in values:
                self._ot_study.tell(trial.number, values if len(values) > 1 else values[0])
            else:
                self._ot_study.tell(trial.number, state=optuna.trial.TrialState.PRUNED
                                    if entry.get("status") == layout.STOPPED else optuna.trial.TrialState.FAIL)

    def _owner(self) -> str:
        return storage.display(self.sweep_dir)

    def suggest(self, trial_id: str) -> dict | None:
        point = super().suggest(trial_id)
        self._ot_trials[trial_id].set_user_attr(SWEEP_ATTR, self._owner())
        return point

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        trial = self._ot_trials.get(trial_id)
        if trial is not None and self._storage.get_trial(trial._trial_id).state.is_finished():
            # A trial Tune ran again after a resume (it ended after Tune's last save): Optuna was told already.
            self._completed_trials.add(trial_id)
            return
        if not error and result is not None and result.get("step", 0) < self.steps:
            result = None  # stopped by the scheduler: OptunaSearch tells a trial without a value as PRUNED
        super().on_trial_complete(trial_id, result, error)
