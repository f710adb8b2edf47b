"""Trials' scalars over training, read back from their TensorBoard runs, and the report's plots of them: every
trial's val figure (the sweep's metric) over its steps, coloured by the sweep's main categorical choice; and KDE-GAN's
generator reversal over training (the KDE-GAN paper's Fig. 5, bottom row): the steps each reversal took, and its
error at the stop, against the training step, one line per trial. With summary.md's sections on them."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from gansweep import storage
from gansweep.config.schema import ReversalConfig
from gansweep.run.summaries import VAL
from gansweep.sweep import sweep_dir as layout
from gansweep.sweep.report.colours import Colours
from gansweep.sweep.report.points import value_label

REVERSAL_STEPS_TAG = "prior/reversal_steps"
REVERSAL_ERROR_TAG = "prior/reversal_error"
REVERSAL_PNG = "reversal_steps.png"
VAL_CURVES_PNG = "val_curves.png"
LABELLED_CURVES = 12  # up to this many trials, each line's end names its parameters
SHORT_LABEL_CHARS = 24  # longer parameter texts: the line's end names its trial number instead
OLD_VAL_PREFIX = "eval"  # the val figures' tags in sweeps written before they were named val/
LEGEND_ROWS = 20  # trials per legend column: a legend of many trials spreads sideways, not past the figure
MAX_STEPS_KEY = "reversal.max_steps"


def read_scalars(log_dir: str, tags: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value), ...] by step, for each of TAGS the TensorBoard run at LOG_DIR (a local folder or one on
    object storage) holds; {} for a run not written yet."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory() as scratch:
        folder = log_dir
        if storage.is_uri(log_dir):  # TensorBoard reads no bucket but S3, and that through TensorFlow: a local copy
            storage.download_folder(log_dir, Path(scratch))
            folder = scratch
        elif not Path(log_dir).is_dir():
            return {}
        events = EventAccumulator(folder, size_guidance={"scalars": 0})  # 0: every point, not a sample of them
        events.Reload()
        present = set(events.Tags()["scalars"])
        # Stable by step: a trial resumed from a checkpoint appends a new event file (TensorBoard purges the overlap).
        return {tag: sorted(((e.step, e.value) for e in events.Scalars(tag)), key=lambda point: point[0])
                for tag in tags if tag in present}


def reversal_series(log_dirs: dict[str, str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Trial name -> {REVERSAL_STEPS_TAG: [(step, value), ...], and REVERSAL_ERROR_TAG when logged}, for the trials
    of LOG_DIRS (name -> TensorBoard run, in the plot's order) whose run logged reversal steps: KDE-GAN's."""
    tags = (REVERSAL_STEPS_TAG, REVERSAL_ERROR_TAG)
    series = {name: read_scalars(log_dir, tags) for name, log_dir in log_dirs.items()}
    return {name: scalars for name, scalars in series.items() if REVERSAL_STEPS_TAG in scalars}


def reversal_max_steps(params: dict, fixed: dict) -> int:
    """A trial's reversal.max_steps: sampled, else fixed for the sweep, else the config's default."""
    return int(params.get(MAX_STEPS_KEY, fixed.get(MAX_STEPS_KEY, ReversalConfig().max_steps)))


def plot_reversal(path: Path, series: dict[str, dict[str, list[tuple[int, float]]]], max_steps: dict[str, int]) -> None:
    """Reversal steps against the training step, one coloured line per trial of SERIES (reversal_series), the y axis
    up to the largest of MAX_STEPS (trial name -> reversal.max_steps) with each cap dashed; under it the reversal
    error at the stop, where a trial logged it."""
    with_error = any(REVERSAL_ERROR_TAG in scalars for scalars in series.values())
    columns = math.ceil(len(series) / LEGEND_ROWS)
    fig = Figure(figsize=(6.4 + 1.8 * columns, 6.8 if with_error else 4.4), layout="constrained")
    axes = fig.subplots(2 if with_error else 1, 1, sharex=True, squeeze=False)[:, 0]
    palette = colormaps["tab10" if len(series) <= 10 else "tab20"]
    for i, (name, scalars) in enumerate(series.items()):
        colour = palette(i % palette.N)  # past 20 trials colours repeat: the legend's order tells them apart
        for ax, tag in zip(axes, (REVERSAL_STEPS_TAG, REVERSAL_ERROR_TAG)):
            if tag in scalars:
                steps, values = zip(*scalars[tag])
                ax.plot(steps, values, color=colour, marker=".", markersize=4, linewidth=1, alpha=0.8,
                        label=name if tag == REVERSAL_STEPS_TAG else None)

    caps = sorted({max_steps[name] for name in series if name in max_steps})
    for cap in caps:
        axes[0].axhline(cap, color="0.4", linestyle="--", linewidth=1)
    top = max([*caps, *(value for scalars in series.values() for _, value in scalars[REVERSAL_STEPS_TAG])])
    axes[0].set_ylim(0, top * 1.05 + 0.5)
    axes[0].set_ylabel("reversal steps")
    axes[0].set_title("Generator reversal over training: the steps each prior refresh's reversal took\n(below the cap: "
                      "the MMD test told reals' codes from fakes' at reversal.mmd_alpha over the whole reversal"
                      + (f"; dashed: reversal.max_steps = {', '.join(map(str, caps))}" if caps else "") + ")",
                      fontsize=9)
    if with_error:
        errors = [value for scalars in series.values() for _, value in scalars.get(REVERSAL_ERROR_TAG, [])]
        if min(errors) > 0 and max(errors) >= 10 * min(errors):  # errors spanning a decade: compare them in ratios
            axes[1].set_yscale("log")
        axes[1].set_ylabel("reversal error at the stop")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("training step")
    fig.legend(loc="outside right upper", fontsize=7, ncols=columns, title="trial", title_fontsize=8)
    fig.savefig(path, dpi=100)


def write_reversal(out: Path, sweep_dir: str, sweep: dict, trials: list[dict]) -> list[str]:
    """Draw OUT/reversal_steps.png, KDE-GAN's reversal steps over training (plot_reversal), and return summary.md's
    section on it; [] for a sweep whose trials logged none."""
    ordered = sorted(trials, key=lambda t: t["number"])
    series = reversal_series({t["name"]: layout.trial_log_dir(sweep_dir, t["name"]) for t in ordered})
    (out / REVERSAL_PNG).unlink(missing_ok=True)  # a stale plot from an earlier report would contradict this one
    if not series:
        return []
    params = {t["name"]: t["params"] for t in ordered}
    max_steps = {name: reversal_max_steps(params[name], sweep.get("fixed") or {}) for name in series}
    plot_reversal(out / REVERSAL_PNG, series, max_steps)
    with_error = any(REVERSAL_ERROR_TAG in scalars for scalars in series.values())
    return ["## Generator reversal over training", "",
            (f"The steps each prior refresh's generator reversal took, against the training step, one line per "
             f"KDE-GAN trial ({len(series)}), up to `reversal.max_steps` (dashed)"
             + (", and under it the reversal error at the stop" if with_error else "")
             + ": the KDE-GAN paper's Fig. 5 (bottom row), where the number of steps the MMD stopping rule takes "
             "changes as training goes on (crude codes tell reals from fakes early, finer ones as the generator "
             "improves); without the rule every reversal takes `reversal.max_steps`. A stop below the cap means the "
             "MMD two-sample test told the reals' codes from the fakes' at the planned looks (`reversal.mmd_looks`), "
             "with `reversal.mmd_alpha` the chance of such a stop over a whole reversal where they do not differ; "
             "the raw `reversal.mmd_threshold` carries no such guarantee."), "",
            f"![reversal steps over training]({REVERSAL_PNG})", ""]


def val_series(log_dirs: dict[str, str], metric: str) -> dict[str, list[tuple[int, float]]]:
    """Trial name -> [(step, val METRIC), ...] for the trials of LOG_DIRS (name -> TensorBoard run) that logged it."""
    tags = (f"{VAL}/{metric}", f"{OLD_VAL_PREFIX}/{metric}")
    series = {}
    for name, log_dir in log_dirs.items():
        scalars = read_scalars(log_dir, tags)
        found = next((scalars[tag] for tag in tags if tag in scalars), None)
        if found:
            series[name] = found
    return series


def write_val_curves(out: Path, sweep_dir: str, sweep: dict, trials: list[dict], colours: Colours) -> list[str]:
    """Draw OUT/val_curves.png, every trial's val figure over its steps (a line per trial, coloured by the main
    choice; a stopped trial's line ends in a cross, a failed one's in an X), and return summary.md's section on it;
    [] for a sweep whose trials logged none yet."""
    metric = sweep["metric"]
    ordered = sorted(trials, key=lambda t: t["number"])
    series = val_series({t["name"]: layout.trial_log_dir(sweep_dir, t["name"]) for t in ordered}, metric)
    (out / VAL_CURVES_PNG).unlink(missing_ok=True)  # a stale plot from an earlier report would contradict this one
    if not series:
        return []
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    counted: dict = {}
    for trial in ordered:
        if trial["name"] not in series:
            continue
        steps, values = zip(*series[trial["name"]])
        key = trial["params"].get(colours.key) if colours.key else None
        counted[key] = counted.get(key, 0) + 1
        ax.plot(steps, values, color=colours.of(trial["params"]), marker=".", markersize=4, linewidth=1, alpha=0.8)
        if len(series) <= LABELLED_CURVES:  # which of a colour's lines is which: at its end, its other parameters
            rest = colours.rest(trial["params"])  # or, too long to sit beside the others, its number (samples.png's)
            label = rest if len(rest) <= SHORT_LABEL_CHARS else f"#{trial['number']}"
            ax.annotate(label, (steps[-1], values[-1]), xytext=(4, 0), fontsize=7,
                        textcoords="offset points", va="center", color=colours.of(trial["params"]))
        end = {layout.STOPPED: "x", layout.FAILED: "X"}.get(trial.get("status"))
        if end:
            ax.scatter(steps[-1:], values[-1:], color=colours.of(trial["params"]), marker=end, s=60, zorder=3)
    for key, n in counted.items():  # the legend: a line per colour
        label = colours.label(key) if colours.key else "trials"
        ax.plot([], [], color=colours.of_value(key), label=f"{label} ({n})")
    ax.set_title(f"val {metric} over training, a line per trial" + (f" ({colours.title})" if colours.key else ""),
                 fontsize=9)
    ax.set_xlabel("training step")
    ax.set_ylabel(value_label(metric, sweep["mode"]).replace(" at the last step", ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(out / VAL_CURVES_PNG, dpi=100)
    return [f"## val {metric} over training", "",
            (f"Every trial's val `{metric}` at each cheap evaluation ({len(series)} trials, from their TensorBoard "
             "runs); a trial's value is its last point, where it trained all its steps. A cross ends a trial the "
             "scheduler stopped, an X one that failed; a line's end names its parameters, or where they are long its "
             "trial's number (#N: the trials table's N)."), "",
            f"![val {metric} over training]({VAL_CURVES_PNG})", ""]
