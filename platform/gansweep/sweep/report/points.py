"""The sampled points of a sweep, each with its trials: one per training seed where the space has `seeds:`, else one.
What the report's trials table and best-trial section rank and show: every figure of a point as its seeds' mean, 95%
interval and n (evaluation/intervals.py). They rank on the sweep's one objective, each trial's value as trials.json
records it (sweep_dir.trial_value) and a point's the mean of its seeds' (sweep_dir.point_value)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gansweep.evaluation.intervals import Interval, interval
from gansweep.sweep import sweep_dir as layout


@dataclass
class Point:
    name: str  # the group trials.json gives its trials
    trials: list[dict]  # its seeds' entries, in trial order

    @property
    def number(self) -> int:
        return self.trials[0]["number"]

    @property
    def params(self) -> dict:
        return self.trials[0]["params"]

    @property
    def seeds(self) -> list:
        return [trial.get("seed") for trial in self.trials]

    def figure(self, read: Callable[[dict], float | None]) -> Interval | None:
        """The interval over the point's trials of what READ gives of each (None: a trial without it)."""
        return interval(read(trial) for trial in self.trials)

    def status(self) -> str:
        """The trials' status where they agree, else their counts ("2 finished, 1 running")."""
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.get("status", "unknown")] = counts.get(trial.get("status", "unknown"), 0) + 1
        return next(iter(counts)) if len(counts) == 1 else ", ".join(f"{n} {s}" for s, n in counts.items())


def trial_value(trial: dict) -> float | None:
    """The trial's value (sweep_dir.trial_value: the metric of its last report, a finished trial's only)."""
    return trial.get("value")


def points(trials: list[dict]) -> list[Point]:
    """TRIALS grouped by point, in the order of each point's first trial."""
    grouped: dict[str, Point] = {}
    for trial in sorted(trials, key=lambda t: (t["number"], t.get("seed") or 0)):
        name = layout.point_of(trial)
        grouped.setdefault(name, Point(name, [])).trials.append(trial)
    return list(grouped.values())


def ranked(trials: list[dict], mode: str) -> list[Point]:
    """The points, best first by their value (sweep_dir.point_value); points without one last, by number."""
    def key(point: Point) -> tuple:
        mean = layout.point_value(point.trials)
        if mean is None:
            return (1, 0.0, point.number)
        return (0, mean if mode == "min" else -mean, point.number)

    return sorted(points(trials), key=key)


def seeded(all_points: list[Point]) -> bool:
    """Whether some point has several trials (a space with seeds:): then every figure says its n."""
    return any(len(point.trials) > 1 for point in all_points)


def value_interval(point: Point) -> Interval | None:
    """What the report's plots draw of a point: its trials' values (trial_value: finished trials only), their mean,
    95% interval and n; None when none of its trials has one."""
    return point.figure(trial_value)


def value_label(metric: str, mode: str) -> str:
    """The axis label of a trial's value: the validation figure at its last step."""
    return f"val {metric} at the last step ({'lower' if mode == 'min' else 'higher'} is better)"
