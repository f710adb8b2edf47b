"""TensorBoard summaries of a run, written by rank 0: scalars and the panels of the seed paper's figures.

A log directory may be on object storage: the event files are written to a local folder and published to it
(storage.Mirror) at every flush (each checkpoint) and at the end, so `tensorboard --logdir s3://...` shows a run
that is still going. Written locally because TensorBoard's own S3 writer rewrites the whole object at every flush
and serves no other scheme."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tensorboard.plugins.hparams import (
    summary_v2 as hp,  # summary_v2: the protos, without TensorFlow
)
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid

from gansweep import storage
from gansweep.evaluation import figures

GRID_SAMPLES = 64
HIDDEN_SAMPLES = 8  # feature maps shown: HIDDEN_SAMPLES samples x HIDDEN_CHANNELS channels
HIDDEN_CHANNELS = 8

SCALAR_TAGS = {
    "loss_d": "loss/d",
    "loss_g": "loss/g",
    "d_real": "d/real",
    "d_fake": "d/fake",
    "loss_rec": "loss/reconstruction",  # ACL
    "loss_code_d": "loss/code_d",
    "loss_code_g": "loss/code_g",
    "images_per_s": "perf/images_per_s",
    "data_wait_frac": "perf/data_wait_frac",
    "eval_s": "perf/eval_s",
    "reversal_steps": "prior/reversal_steps",  # KDE-GAN: the paper's Fig. 5, bottom row
    "reversal_error": "prior/reversal_error",
    "reversal_mmd2": "prior/reversal_mmd2",
    "reversal_mmd_pvalue": "prior/reversal_mmd_pvalue",  # the MMD test's p-value at the stop
}
# Tag prefixes: the cheap figures on the validation split during training (val fid, what a sweep selects on) and the
# full evaluation's on the test split at the end (test fid, the figure to publish).
VAL, TEST = "val", "test"
# The Images tab sorts tags by name: the samples (samples/...) lead, what training saw (training/...) follows.
SAMPLES_TAG = "samples/fixed_z"
CHEAP_KEYS = tuple(key for name in figures.MODES for key in (name, figures.best_key(name)))  # with their best so far
# PREFIX/KEY: the cheap figures, and the full evaluation's (kid, the pixel distance, PRDC and those on Inception
# features: the full one only); with train.ema, G's own beside its moving average's (FIGURE_raw)
_SHOWN = ("kid", "nn_pixel_distance", "precision", "recall", "density", "coverage")
EVAL_KEYS = (*CHEAP_KEYS, *_SHOWN, *figures.INCEPTION,
             *(figures.raw_key(name) for name in (*figures.MODES, *_SHOWN)))


def _image_grid(images: torch.Tensor) -> torch.Tensor | None:
    """A grid of (N, C, H, W) intensities in [0, 1]; None for measurements that are not images."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        return None
    return make_grid(images[:GRID_SAMPLES].float().clamp(0, 1).cpu(), nrow=8, pad_value=0.5)


def _feature_map_grid(hidden: torch.Tensor) -> torch.Tensor:
    """A few channels of a few samples, each map scaled to [0, 1] on its own (zeroed maps stay black)."""
    maps = hidden[:HIDDEN_SAMPLES, :HIDDEN_CHANNELS].float().cpu()
    flat = maps.flatten(2)
    top = flat.abs().amax(dim=2, keepdim=True).clamp_min(1e-8)
    maps = (flat / top).abs().view_as(maps)
    return make_grid(maps.reshape(-1, 1, *maps.shape[2:]), nrow=maps.shape[1], pad_value=0.5)


class RunSummaries:
    def __init__(self, log_dir: str | Path, start_step: int = 0):
        self.mirror = storage.Mirror(log_dir)
        # purge_step drops events past the checkpoint a resumed run restarts from.
        self.writer = SummaryWriter(str(self.mirror.path), purge_step=start_step + 1 if start_step else None)

    def scalars(self, step: int, metrics: dict[str, float]) -> None:
        for key, tag in SCALAR_TAGS.items():
            if key in metrics:
                self.writer.add_scalar(tag, metrics[key], step)

    def evaluation(self, step: int, figures: dict[str, float], prefix: str = VAL) -> None:
        """The cheap evaluation's figures (val/fid, ...: the validation split), or with prefix TEST the full one's."""
        for key in EVAL_KEYS:
            if key in figures:
                self.writer.add_scalar(f"{prefix}/{key}", figures[key], step)

    def images(self, step: int, last: dict[str, torch.Tensor], samples: torch.Tensor) -> torch.Tensor | None:
        """Samples from a fixed z, then what training saw: measured reals, measured fakes, hidden measured feature
        maps. Returns the samples' grid (None: not images)."""
        panels = {SAMPLES_TAG: _image_grid(samples), "training/measured_real": _image_grid(last["real"])}
        if "fake" in last:  # ACL-AE has no fakes in its step
            panels["training/measured_fake"] = _image_grid(last["fake"])
        if "hidden" in last:
            panels["training/hidden_measured"] = _feature_map_grid(last["hidden"])
        if "reconstruction" in last:  # ACL: G(E(x)) of the real batch shown above
            panels["training/reconstructions"] = _image_grid(last["reconstruction"])
        for tag, grid in panels.items():
            if grid is not None:
                self.writer.add_image(tag, grid, step)
        return panels[SAMPLES_TAG]

    def samples_per_class(self, step: int, samples: torch.Tensor, columns: int) -> None:
        """A conditional GAN's samples, one row per class (the same codes in each row)."""
        self.writer.add_image("samples/per_class", make_grid(samples.float().clamp(0, 1).cpu(), nrow=columns,
                                                                    pad_value=0.5), step)

    def flush(self) -> None:
        self.writer.flush()
        self.mirror.publish()

    def close(self) -> None:
        self.writer.close()
        self.mirror.close()


# The HParams plugin compares trials on these scalars (their newest value in each trial's run): those every trial logs
# (ACL's loss/reconstruction is its own); the test figures once a trial finished.
HPARAMS_METRICS = (
    *(f"{VAL}/{key}" for key in CHEAP_KEYS),
    *(f"{TEST}/{name}" for name in (figures.FID, "kid", figures.CLASSIFIER_SCORE)),
    "loss/d", "loss/g",
)
STATUS_HPARAM = "status"  # a trial's end in the HParams table: finished, stopped at step N, failed


def _domain(param):
    """The HParams domain of a search-space parameter (its kind, bounds or choices)."""
    if param.kind == "int":
        return hp.IntInterval(int(param.low), int(param.high))
    if param.kind in ("uniform", "loguniform"):
        return hp.RealInterval(float(param.low), float(param.high))
    if len({type(c) for c in param.choices}) == 1 and isinstance(param.choices[0], (str, int, float, bool)):
        return hp.Discrete(param.choices)
    return None  # mixed types: the plugin shows the values without a domain


def write_trial_hparams(log_dir: str | Path, trial_name: str, values: dict, status: str, params: list,
                        metric: str) -> None:
    """A trial's HParams session, written into its own TensorBoard run once it ended: its sampled VALUES and its
    STATUS, beside the sweep's experiment (the swept PARAMS, the status, the metrics, the sweep's METRIC first). The
    plugin reads the experiment from whichever run holds it; at the root of the sweep's TensorBoard folder it would
    show as an extra run named ".". A run keeps the first session written into it: written at the end, it holds the
    status."""
    metrics = sorted(HPARAMS_METRICS, key=lambda tag: tag != f"{VAL}/{metric}")
    config = hp.hparams_config_pb(
        hparams=[hp.HParam(param.key, _domain(param)) for param in params] + [hp.HParam(STATUS_HPARAM)],
        metrics=[hp.Metric(tag, display_name=tag) for tag in metrics],
    )
    session = hp.hparams_pb({**values, STATUS_HPARAM: status}, trial_id=trial_name, start_time_secs=time.time())
    with storage.Mirror(log_dir) as folder, SummaryWriter(str(folder)) as writer:
        writer.file_writer.add_summary(config)
        writer.file_writer.add_summary(session)
