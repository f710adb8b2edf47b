"""What a sweep's trials can conclude about its main categorical choice (the quickstart's question: how much does
training through the measurement, mode ambient, gain over a plain GAN on the lossy data, mode ignore, and how does the
gain change with p?): the paired gain of the choice's first value over each other one where their trials share a
point (every other swept key equal, and the seed), and where they do not, which values the trials have, so that the
report says the gain cannot be estimated rather than let a reader read a trend into unpaired trials. gain.png and
summary.md's section."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from gansweep.evaluation.intervals import Interval, interval
from gansweep.sweep.report.colours import Colours, axis_kind, is_number
from gansweep.sweep.report.points import trial_value
from gansweep.sweep.report.plots import numeric_x_axis
from gansweep.sweep.report.trials_table import fmt, md_table

GAIN_PNG = "gain.png"
# Paired points (distinct values of the other keys) from which the gain's change against them is read: one is a
# single difference, with nothing to compare it to.
MIN_PAIRED_POINTS = 2


def _values_text(key: str, values: list) -> str:
    """'p 0.69-0.8' (numbers: their range) or 'prior gaussian, kde'."""
    short = key.split(".")[-1]
    if values and all(is_number(v) for v in values):
        lo, hi = min(values), max(values)
        return f"{short} {fmt(lo, 3)}" if lo == hi else f"{short} {fmt(lo, 3)}-{fmt(hi, 3)}"
    return f"{short} " + ", ".join(str(v) for v in dict.fromkeys(values))


def _cells(trials: list[dict], key: str, others: list[str]) -> dict:
    """(the other keys' values) -> value of KEY -> {seed: the trial's value}, over the trials that have a value."""
    cells: dict = {}
    for trial in trials:
        value = trial_value(trial)
        if key in trial["params"] and value is not None:
            where = tuple(trial["params"].get(other) for other in others)
            cells.setdefault(where, {}).setdefault(trial["params"][key], {})[trial.get("seed")] = value
    return cells


def _matches(shared: tuple, where: tuple) -> bool:
    """Whether a cell at SHARED holds for one at WHERE: equal in every key, a key the trials lack (None: inactive
    under `when`, like a clean arm's row) standing for any value, as the table's shared column does."""
    return all(s is None or s == w for s, w in zip(shared, where))


def paired_gains(trials: list[dict], key: str, others: list[str], reference,
                 mode: str) -> dict[object, dict[tuple, Interval]]:
    """Each other value of KEY -> (the other keys' values) -> its gain against REFERENCE at that point: over the
    seeds both have, the other's value minus the reference's (mode min; the reverse for max), so > 0 always means the
    reference is better. A reference trial without one of the other keys pairs at each of its values."""
    sign = 1.0 if mode == "min" else -1.0
    cells = _cells(trials, key, others)
    gains: dict = {}
    for where, by_value in sorted(cells.items(), key=lambda item: str(item[0])):
        base = {seed: v for shared, at in cells.items() if _matches(shared, where)
                for seed, v in at.get(reference, {}).items()}
        for value, seeds in by_value.items():
            shared = [seed for seed in seeds if seed in base]
            if value != reference and shared:
                gains.setdefault(value, {})[where] = interval(sign * (seeds[s] - base[s]) for s in shared)
    return gains


def _plot_gain(path: Path, param: str, spec: dict | None, gains: dict, reference, colours: Colours, metric: str,
               mode: str) -> None:
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for value, at in gains.items():
        points = sorted((float(where[0]), gain) for where, gain in at.items())
        xs, ys = [x for x, _ in points], [g.mean for _, g in points]
        errors = [g.half_width or 0.0 for _, g in points]
        ax.errorbar(xs, ys, yerr=errors if any(errors) else None, fmt="o-", color=colours.of_value(value), capsize=3,
                    label=f"{colours.key} = {value} against {reference} ({len(points)} paired)")
    ax.axhline(0, color="0.3", linewidth=1, linestyle="--")
    numeric_x_axis(ax, axis_kind(spec, []), spec, [float(where[0]) for at in gains.values() for where in at])
    other = str(next(iter(gains))) if len(gains) == 1 else "the other's"
    other = f"{other}'s" if len(gains) == 1 else other
    difference = f"{other} minus {reference}'s" if mode == "min" else f"{reference}'s minus {other}"
    bars = any(g.half_width for at in gains.values() for g in at.values())
    ax.set_title(f"Gain of {colours.key} = {reference} in val {metric} at each {param} where both trained\n"
                 f"({difference}: > 0, {reference} better" + ("; bars: 95% interval over seeds)" if bars else ")"),
                 fontsize=9)
    ax.set_xlabel(param)
    ax.set_ylabel(f"gain in val {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=100)


def write_gain(out: Path, sweep: dict, params: list[str], trials: list[dict], colours: Colours) -> list[str]:
    """Draw OUT/gain.png where the gain can be plotted against one numeric key; return summary.md's section ([]: the
    sweep has no categorical choice of two or more values)."""
    (out / GAIN_PNG).unlink(missing_ok=True)  # a stale plot from an earlier report would contradict this one
    key, metric, mode = colours.key, sweep["metric"], sweep["mode"]
    if key is None or len(colours.values) < 2:
        return []
    space = sweep.get("space") or {}
    others = [p for p in params if p != key]
    reference = colours.values[0]
    gains = paired_gains(trials, key, others, reference, mode)
    where_text = ", ".join(f"`{o}`" for o in others) or "nothing else"
    lines = ["## What the trials can conclude", "",
             (f"The gain of `{key} = {reference}` over each other `{key}`: where trials share a point ({where_text} "
              f"equal, and the seed; a trial without one of them, as a clean arm has no row, pairs at each of its "
              f"values), the other's val `{metric}` {'minus' if mode == 'min' else 'subtracted from'} "
              f"{reference}'s, so > 0 means {reference} is better. A trial's value is its val `{metric}` at its last "
              "step, where it trained all its steps; stopped, failed and running trials have none and pair with "
              "nothing."), ""]
    for value in colours.values[1:]:
        at = gains.get(value, {})
        if at:
            header = [*others, f"{reference}'s gain over {value}", "n"]
            lines += [md_table(header, [[*where, gain.text(), gain.n] for where, gain in at.items()]), ""]
        lines += [_conclusion(trials, key, others, reference, value, at), ""]
    numeric = [o for o in others if axis_kind(space.get(o), []) != "categorical"]
    if len(others) == 1 and numeric and any(len(at) >= MIN_PAIRED_POINTS for at in gains.values()):
        _plot_gain(out / GAIN_PNG, others[0], space.get(others[0]), gains, reference, colours, metric, mode)
        lines += [f"![gain against {others[0]}]({GAIN_PNG})", ""]
    return lines


def _conclusion(trials: list[dict], key: str, others: list[str], reference, value, at: dict) -> str:
    """Whether the gain of REFERENCE over VALUE against the other keys can be estimated, and from what."""
    against = " and ".join(o.split(".")[-1] for o in others) or "the other keys"
    if len(at) >= MIN_PAIRED_POINTS:
        single = all(gain.n == 1 for gain in at.values())
        return (f"**{reference} against {value}: the gain against {against} can be estimated** from {len(at)} "
                "paired points (the table above)" + (": one seed each, so without an interval; `seeds:` in the space "
                                                     "would show how much of it is noise." if single else "."))
    described = []
    for side in (reference, value):
        valued = [t for t in trials if t["params"].get(key) == side and trial_value(t) is not None]
        spread = "; ".join(_values_text(o, had) for o in others
                           if (had := [t["params"][o] for t in valued if o in t["params"]]))
        place = f" at {spread}" if valued and spread else ""
        described.append(f"{side}: {len(valued)} trial(s) with a value{place}")
    paired = f"only {len(at)} paired point" if at else "no trials share a point"
    return (f"**{reference} against {value}: the gain against {against} cannot be estimated** ({paired}; at least "
            f"{MIN_PAIRED_POINTS} are needed). " + "; ".join(described) + ".")
