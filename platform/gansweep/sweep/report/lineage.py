"""Population-based training's lineage, from trials.json: each trial's exploits (a restart from a donor trial's
checkpoint, with the donor's params perturbed), as rows for the report's table and as a plot of who cloned whom
when, with each perturbed numeric parameter's value per trial over training; with summary.md's section on them.

A trials.json entry's "lineage" lists its exploits in order, each {"step", "donor", "params"}: the donor
checkpoint's training step, the donor's name and the trial's full params from then on; the entry's "params" stay
the ones first sampled. No lineage, or an empty one: the trial never exploited."""

from __future__ import annotations

from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from gansweep.sweep.report.trials_table import fmt, md_table

LINEAGE_PNG = "pbt_lineage.png"
ARROW_SPREAD = 0.006  # of the step axis: arrows of one perturbation round, side by side rather than on each other


def exploits(trials: list[dict]) -> list[dict]:
    """One row per exploit, by trial number then in lineage order: {"trial", "step", "donor", "changed"}, changed
    being {param: (old, new)} for the params that differ from the trial's before it (first sampled, or the previous
    exploit's), in the order the trial lists them."""
    rows = []
    for trial in sorted(trials, key=lambda t: t["number"]):
        before = trial["params"]
        for entry in trial.get("lineage") or []:
            after = entry["params"]
            keys = [*before, *(key for key in after if key not in before)]
            changed = {key: (before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)}
            rows.append({"trial": trial["name"], "step": entry["step"], "donor": entry["donor"], "changed": changed})
            before = after
    return rows


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def perturbed_numeric_params(rows: list[dict]) -> list[str]:
    """The params some exploit changed, whose values before and after every change are numbers: those plotted."""
    keys = list(dict.fromkeys(key for row in rows for key in row["changed"]))
    return [key for key in keys if all(_is_number(value) for row in rows for value in row["changed"].get(key, ()))]


def param_timeline(trial: dict, key: str, last_step: int) -> list[tuple[int, object]]:
    """(step, value) of KEY in TRIAL: its first sampled value at step 0, each exploit's from its step, held until
    LAST_STEP (None where the trial has no value for KEY)."""
    points = [(0, trial["params"].get(key))]
    points += [(entry["step"], entry["params"].get(key)) for entry in trial.get("lineage") or []]
    return points + [(last_step, points[-1][1])]


def _last_step(trial: dict) -> int | None:
    steps = [(trial.get("metrics") or {}).get("step"), *(entry["step"] for entry in trial.get("lineage") or [])]
    known = [step for step in steps if isinstance(step, (int, float))]
    return max(known) if known else None


def plot_lineage(path: Path, trials: list[dict], rows: list[dict]) -> None:
    """A row per trial over the training steps, an arrow from the donor's row to the trial's at each exploit (ROWS,
    from exploits), in the donor's colour; under it a panel per perturbed numeric param: its value per trial."""
    ordered = sorted(trials, key=lambda t: t["number"])
    names = [t["name"] for t in ordered]
    names += list(dict.fromkeys(row["donor"] for row in rows if row["donor"] not in names))  # donors not in trials.json
    row_of = {name: i for i, name in enumerate(names)}
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    colour = {name: palette(i % palette.N) for i, name in enumerate(names)}
    last = {t["name"]: _last_step(t) for t in ordered}
    end = max([0, *(step for step in last.values() if step is not None)])
    params = perturbed_numeric_params(rows)

    heights = [1.0 + 0.35 * len(names), *(2.4 for _ in params)]
    fig = Figure(figsize=(7.2, sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(heights), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    ax = axes[0]
    for name in names:
        ax.hlines(row_of[name], 0, last.get(name) or end, color=colour[name], linewidth=2, alpha=0.7)
    rounds = {}
    for row in rows:
        k = rounds[row["step"]] = rounds.get(row["step"], -1) + 1  # the k-th exploit at this step
        x = row["step"] + k * ARROW_SPREAD * max(end, 1)
        ax.annotate("", xy=(x, row_of[row["trial"]]), xytext=(x, row_of[row["donor"]]),
                    arrowprops={"arrowstyle": "-|>", "color": colour[row["donor"]], "linewidth": 1.5,
                                "shrinkA": 2, "shrinkB": 2})
        ax.scatter([x], [row_of[row["trial"]]], color=colour[row["donor"]], edgecolors="black", s=30, zorder=3)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for label in ax.get_yticklabels():  # the key to the colours of the panels below
        label.set_color(colour[label.get_text()])
    ax.set_ylim(len(names) - 0.5, -0.5)  # the first trial on top
    ax.set_title(f"PBT lineage: {len(rows)} exploit(s)\neach arrow: a trial restarting from the donor's checkpoint "
                 "at that step\n(arrow and dot in the donor's colour)", fontsize=9)

    for ax, key in zip(axes[1:], params):
        values = []
        for t in ordered:
            timeline = param_timeline(t, key, last[t["name"]] or end)
            points = [(step, value) for step, value in timeline if value is not None]
            if points:
                ax.step(*zip(*points), where="post", color=colour[t["name"]], linewidth=1.5, alpha=0.8)
                values += [value for _, value in points]
        # A decade or more apart: a log axis, on which PBT's multiplicative perturbations are even steps.
        if values and min(values) > 0 and max(values) >= 10 * min(values):
            ax.set_yscale("log")
        ax.set_ylabel(key, fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("training step")
    fig.savefig(path, dpi=100)


def write_lineage(out: Path, sweep: dict, trials: list[dict]) -> list[str]:
    """Draw OUT/pbt_lineage.png (plot_lineage) and return summary.md's section on PBT's exploits, a table row each;
    [] for a sweep whose trials never exploited."""
    rows = exploits(trials)
    (out / LINEAGE_PNG).unlink(missing_ok=True)
    if not rows:
        return []
    plot_lineage(out / LINEAGE_PNG, trials, rows)
    scheduler = sweep.get("scheduler") or {}  # sweep.json files written before PBT name no scheduler
    interval = scheduler.get("perturbation_interval") if isinstance(scheduler, dict) else None
    table = [[row["trial"], row["step"], row["donor"],
              ", ".join(f"{key}: {fmt(old, 3) or 'unset'} -> {fmt(new, 3) or 'unset'}"
                        for key, (old, new) in row["changed"].items())] for row in rows]
    return ["## PBT lineage", "",
            (f"Population-based training{f' (perturbation interval {interval} steps)' if interval else ''}: "
             f"{len(rows)} exploit(s). At each, the trial restarted from the donor's checkpoint of that training "
             "step with the donor's params, perturbed; `changed` lists the params that differ from the trial's "
             "before it (old -> new). trials.json's `params` (and the tables above) are the ones first sampled."), "",
            md_table(["trial", "step", "donor", "changed"], table), "",
            f"![PBT lineage]({LINEAGE_PNG})", ""]
