"""Errors no retry can help, the one rule: Ray Train's and Tune's retries are for lost workers and nodes, while the
same config, data, checkpoint or settings fail alike on every try, and storage has retried for its bound already
(storage.py). Such an error ends a run at once: on Ray Train through stop_on_final_error, in a one-worker sweep trial
through the run directory's record of it, which Tune's restarts read (sweep.runner.run_trial)."""

from __future__ import annotations

from gansweep.config.errors import ConfigError
from gansweep.data.source_base import DataSourceError
from gansweep.nets.measurements import MeasurementError
from gansweep.storage import StorageError


class TrainingDiverged(RuntimeError):
    """The losses turned NaN or infinite: the run stopped (not retried: it would diverge again)."""

    @classmethod
    def at(cls, diverged: dict) -> TrainingDiverged:
        """The error for a run's divergence record (run_dir.read_diverged)."""
        return cls(f"the losses turned non-finite at step {diverged['step']}: {diverged['losses']}; "
                   "lower the learning rates or change the G/D balance")


class RetryCannotHelp(RuntimeError):
    """A sweep trial's earlier attempt failed with an error no retry can help: each later attempt fails at once with
    it."""


FINAL_ERRORS = (ConfigError, DataSourceError, MeasurementError, StorageError, TrainingDiverged, RetryCannotHelp)


def stop_on_final_error():
    """A Ray Train callback that ends a run at once on a worker's final error, not after FailureConfig's retries:
    raised in Train's controller, a callback's error fails the run unretried, as a ControllerError whose
    controller_failure is the worker's error."""
    from ray.train import UserCallback

    class StopOnFinalError(UserCallback):
        def after_exception(self, run_context, worker_exceptions):
            for error in worker_exceptions.values():
                if isinstance(error, FINAL_ERRORS):
                    raise error

    return StopOnFinalError()
