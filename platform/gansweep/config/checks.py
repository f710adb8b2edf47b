"""Whether a config can run. ``validate``: every check that needs no data or Ray (it builds the run's measurements,
which is how their parameters are checked, and returns them); ``check_shapes``: those that need the images' shape
and classes, not the images."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

from gansweep.config.errors import ConfigError, quoted
from gansweep.config.mmd_rule import mmd_look_level
from gansweep.config.schema import (
    ACL_REC_TRAINS,
    ACL_VARIANTS,
    FEATURE_NETWORKS,
    HIDDEN_BN_STATS,
    HIDDEN_FAKE_MEASUREMENTS,
    MODES,
    PRIORS,
    Config,
    MeasurementConfig,
)
from gansweep.data.restoration import INPAINT_METHODS, check_restorable
from gansweep.data.source_base import SOURCES
from gansweep.nets.losses import REGISTRY as LOSS_REGISTRY
from gansweep.nets.measurements import REGISTRY as MEASUREMENT_REGISTRY
from gansweep.nets.measurements import Measurement, MeasurementError, build_measurement
from gansweep.nets.models import D_NORMS, ModelError, block_shapes, inject_point


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@contextlib.contextmanager
def _as_config_error():
    """MeasurementErrors name the config key already: raised on as ConfigErrors, their message unchanged."""
    try:
        yield
    except MeasurementError as exc:
        raise ConfigError(str(exc)) from None


def _built_measurement(m: MeasurementConfig, key: str) -> Measurement | None:
    """M built, which checks its name, parameters and cascade steps as nets.measurements declares them."""
    with _as_config_error():
        return build_measurement(asdict(m), key)


def _validate_prior(cfg: Config) -> None:
    prior, r = cfg.prior, cfg.reversal
    _check(prior.name in PRIORS, f"prior.name={quoted(prior.name)} is not one of {', '.join(PRIORS)}")
    _check(prior.bandwidth > 0, f"prior.bandwidth={prior.bandwidth} must be > 0")
    _check(0 <= prior.background_weight <= 1, f"prior.background_weight={prior.background_weight} must be in [0, 1]")
    _check(prior.refresh_every >= 1, f"prior.refresh_every={prior.refresh_every} must be >= 1")
    _check(prior.pool >= 1, f"prior.pool={prior.pool} must be >= 1")
    _check(r.lr > 0, f"reversal.lr={r.lr} must be > 0")
    _check(r.max_steps >= 1, f"reversal.max_steps={r.max_steps} must be >= 1")
    _check(r.init_std >= 0, f"reversal.init_std={r.init_std} must be >= 0")
    _check(r.mmd_bandwidth is None or r.mmd_bandwidth > 0, f"reversal.mmd_bandwidth={r.mmd_bandwidth} must be > 0")
    _check(r.mmd_threshold >= 0, f"reversal.mmd_threshold={r.mmd_threshold} must be >= 0 (0: no MMD rule)")
    alpha = r.mmd_alpha or 0.0
    _check(0 <= alpha < 1, f"reversal.mmd_alpha={r.mmd_alpha} must be in (0, 1) (0 or none: no MMD test)")
    _check(not (alpha and r.mmd_threshold),
           f"reversal.mmd_threshold={r.mmd_threshold} and reversal.mmd_alpha={r.mmd_alpha}: the MMD rule is a raw "
           "threshold or a two-sample test, not both; set the other to 0")
    _check(r.mmd_permutations >= 19, f"reversal.mmd_permutations={r.mmd_permutations} must be >= 19")
    _check(0 <= r.mmd_looks <= r.max_steps,
           f"reversal.mmd_looks={r.mmd_looks} must be in [0, reversal.max_steps={r.max_steps}] (0: every step)")
    if alpha:
        try:
            mmd_look_level(alpha, r.mmd_looks or r.max_steps, r.mmd_permutations)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    # The test is exact when a real and a fake get their codes alike; a warm start's fakes have no banked code and
    # start on other reals', so mid-way they differ by their start alone (benchmarks/BENCHMARKS.md).
    _check(not (alpha and r.warm_start),
           f"reversal.warm_start=true with reversal.mmd_alpha={r.mmd_alpha}: the fakes have no banked codes and start "
           "on other reals', so the test tells them apart by their start alone (99% of warm reversals of one "
           "distribution stopped at reversal.lr=0.5); use one of the two")
    # KDE-GAN in mode ambient takes any measurement: a real's theta is recomputed from its index (data/thetas.py),
    # not kept.


def _check_features(features: list) -> None:
    """eval.features: known networks, each once, the classifier among them (the protocol's network: the cheap
    evaluation, the classifier score and what a search selects on are computed on it)."""
    names = ", ".join(FEATURE_NETWORKS)
    for name in features:
        _check(isinstance(name, str) and name in FEATURE_NETWORKS,
               f"eval.features: {quoted(name)} is not one of {names}")
    _check(len(set(features)) == len(features), f"eval.features={features} names a network twice")
    _check("classifier" in features, f"eval.features={features} must include classifier (the protocol's network)")


def _validate_acl(cfg: Config) -> None:
    a = cfg.acl
    _check(a.variant in ACL_VARIANTS, f"acl.variant={quoted(a.variant)} is not one of {', '.join(ACL_VARIANTS)}")
    for key in ("rec_weight", "gan_weight", "code_weight"):
        _check(getattr(a, key) >= 0, f"acl.{key}={getattr(a, key)} must be >= 0")
    _check(a.code_width >= 1, f"acl.code_width={a.code_width} must be >= 1")
    _check(a.rec_trains in ACL_REC_TRAINS,
           f"acl.rec_trains={quoted(a.rec_trains)} is not one of {', '.join(ACL_REC_TRAINS)}")
    if a.variant == "none":
        return
    if a.rec_trains == "encoder":  # G's one other loss is ACL-GAN's image GAN loss: without it G would not train
        _check(a.variant == "gan", f"acl.rec_trains=encoder with acl.variant={a.variant}: ACL-AE's decoder G learns "
               "from the reconstruction alone and would not train; use acl.rec_trains=encoder_and_generator")
        _check(a.gan_weight > 0, f"acl.rec_trains=encoder with acl.gan_weight={a.gan_weight}: G learns from its GAN "
               "loss alone and would not train; use acl.gan_weight > 0 or acl.rec_trains=encoder_and_generator")
    _check(
        cfg.mode != "ambient",
        f"acl.variant={a.variant} with mode=ambient: ACL's encoder codes the images D sees and G is trained to "
        "reconstruct them, which measured reals do not allow; use mode clean, ignore or unmeasure",
    )
    _check(
        cfg.prior.name == "normal",
        f"acl.variant={a.variant} with prior.name={cfg.prior.name}: ACL learns G's input distribution itself "
        "(G(C(z)), z ~ N(0, I)); use one or the other",
    )


def _check_fake_measurement(cfg: Config, image: Measurement | None) -> None:
    """hidden.fake_measurement: a known name; hidden_only names the hidden arm's fakes, so it needs hidden.inject_at,
    and D then compares measured reals with unmeasured images, which must have the same shape."""
    h = cfg.hidden
    _check(h.fake_measurement in HIDDEN_FAKE_MEASUREMENTS, f"hidden.fake_measurement={quoted(h.fake_measurement)} "
           f"is not one of {', '.join(HIDDEN_FAKE_MEASUREMENTS)}")
    if h.fake_measurement != "hidden_only":
        return
    _check(h.inject_at is not None, "hidden.fake_measurement=hidden_only needs hidden.inject_at and "
           "hidden.measurement.name: it is the hidden arm's form of the fakes")
    _check(image is None or not image.changes_shape,
           f"hidden.fake_measurement=hidden_only with measurement.name={cfg.measurement.name}: D would compare "
           "measured reals of another shape with unmeasured fakes; use hidden.fake_measurement=both")


def validate(cfg: Config) -> Measurements:
    """Checks that need neither data nor Ray; those that need the images' shape are ``check_shapes``. Returns the
    run's measurements, built by the checks."""
    _check(cfg.mode in MODES, f"mode={quoted(cfg.mode)} is not one of {', '.join(MODES)}")
    _check(cfg.data.name in SOURCES, f"data.name={quoted(cfg.data.name)} is not one of {', '.join(SOURCES)}")
    _check(cfg.data.limit is None or cfg.data.limit >= 1, f"data.limit={cfg.data.limit} must be >= 1")
    _check(cfg.data.image_size is None or cfg.data.image_size >= 4, "data.image_size must be >= 4")
    _check(cfg.data.validation_size == 0 or cfg.data.validation_size >= 2,
           f"data.validation_size={cfg.data.validation_size} must be 0 (none: select on the test split) or >= 2 "
           "(FID needs a covariance)")
    image = _built_measurement(cfg.measurement, "measurement")
    hidden = _built_measurement(cfg.hidden.measurement, "hidden.measurement")

    if cfg.mode == "ambient":
        _check(
            cfg.measurement.name != "none" or cfg.hidden.inject_at is not None,
            "mode=ambient needs a measurement: set measurement.name, or hidden.inject_at with hidden.measurement.name",
        )
    for mode in ("ignore", "unmeasure"):
        _check(
            cfg.mode != mode or cfg.measurement.name != "none",
            f"mode={mode} trains on lossy data: it needs measurement.name",
        )
    if cfg.mode == "unmeasure":
        with _as_config_error():
            check_restorable(cfg.measurement.name)
    _check(
        cfg.unmeasure.inpaint in INPAINT_METHODS,
        f"unmeasure.inpaint={quoted(cfg.unmeasure.inpaint)} is not one of {', '.join(INPAINT_METHODS)}",
    )
    _check(cfg.unmeasure.inpaint_radius >= 1, f"unmeasure.inpaint_radius={cfg.unmeasure.inpaint_radius} must be >= 1")
    e = cfg.eval
    for key in ("every", "n_samples"):
        _check(getattr(e, key) >= 0, f"eval.{key}={getattr(e, key)} must be >= 0 (0 turns it off)")
    _check(e.cheap_samples >= 2, f"eval.cheap_samples={e.cheap_samples} must be >= 2 (FID needs a covariance)")
    _check(e.n_samples == 0 or e.n_samples >= 2, f"eval.n_samples={e.n_samples} must be 0 (skip) or >= 2")
    _check_features(e.features)
    _check(cfg.hidden.bn_stats in HIDDEN_BN_STATS,
           f"hidden.bn_stats={quoted(cfg.hidden.bn_stats)} is not one of {', '.join(HIDDEN_BN_STATS)}")
    hidden_on = cfg.hidden.inject_at is not None
    hidden_named = cfg.hidden.measurement.name != "none"
    _check(
        hidden_on == hidden_named,
        "hidden.inject_at and hidden.measurement.name go together: set both or neither",
    )
    _check(
        not hidden_on or cfg.mode == "ambient",
        f"hidden.inject_at applies only in mode=ambient (mode is {quoted(cfg.mode)})",
    )
    _check_fake_measurement(cfg, image)

    t = cfg.train
    for key in ("steps", "batch_size", "workers", "d_steps", "checkpoint_every", "log_every", "image_every"):
        _check(getattr(t, key) >= 1, f"train.{key}={getattr(t, key)} must be >= 1")
    for key in ("lr_g", "lr_d"):
        _check(getattr(t, key) > 0, f"train.{key}={getattr(t, key)} must be > 0")
    for key in ("beta1", "beta2"):
        _check(0 <= getattr(t, key) < 1, f"train.{key}={getattr(t, key)} must be in [0, 1)")
    _check(0 <= t.ema < 1, f"train.ema={t.ema} must be in [0, 1) (the EMA's decay; 0 turns it off)")
    _check(t.ema_start >= 0, f"train.ema_start={t.ema_start} must be >= 0 (the generator step the EMA starts at)")
    _check(
        t.batch_size % t.workers == 0,
        f"train.batch_size={t.batch_size} must be divisible by train.workers={t.workers} (it is the global batch)",
    )
    _check(t.cpus_per_worker is None or t.cpus_per_worker > 0, "train.cpus_per_worker must be > 0")
    _check(t.gpus_per_worker > 0, "train.gpus_per_worker must be > 0")
    for key in ("z_dim", "g_width", "d_width"):
        _check(getattr(cfg.model, key) >= 1, f"model.{key} must be >= 1")
    _validate_prior(cfg)
    _validate_acl(cfg)
    if cfg.model.conditional:  # reversing or encoding an image would need its class as well
        _check(cfg.prior.name != "kde", "model.conditional with prior.name=kde: reversing an image would need its "
                                        "class as well; not supported")
        _check(cfg.acl.variant == "none", f"model.conditional with acl.variant={cfg.acl.variant}: encoding an image "
                                          "would need its class as well; not supported")
    _check(t.loss in LOSS_REGISTRY, f"train.loss={quoted(t.loss)} is not one of {', '.join(LOSS_REGISTRY)}")
    _check(t.gp_weight >= 0, f"train.gp_weight={t.gp_weight} must be >= 0")
    _check(cfg.model.d_norm in D_NORMS, f"model.d_norm={quoted(cfg.model.d_norm)} is not one of {', '.join(D_NORMS)}")
    _check(
        t.loss != "wgan_gp" or cfg.model.d_norm != "batch",
        "train.loss=wgan_gp penalises each sample's gradient, which BatchNorm mixes across the batch: "
        "set model.d_norm=layer (or none)",
    )
    return Measurements(image, hidden if cfg.hidden.inject_at is not None else None)


@dataclass
class Measurements:
    """A run's measurements, built from its config once per process: the driver builds them, checks them against
    the data's shapes, measures the training set with them, and ships them to the workers in the run's plan."""

    image: Measurement | None  # f_theta of the images (None: measurement.name none)
    hidden: Measurement | None  # inside G after hidden.inject_at (None without it)


def check_shapes(cfg: Config, measurements: Measurements, clean_shape: tuple[int, ...], num_classes: int,
                 n_images: int | None = None, *, unlabelled: bool = False) -> None:
    """The checks of a validated CFG that need the training images' shape and classes, not the images: the generator
    makes images of CLEAN_SHAPE, each measurement fits the shape it meets (the image measurement the images, the
    hidden one the feature map after hidden.inject_at), a conditional GAN has labels (UNLABELLED: some image has
    none), and, given N_IMAGES (those the run trains on), every worker gets a batch. Raises ConfigError.

    The trainer calls it before loading the training set, the sweep on every trial, both with the source's
    description (data.sources.describe_source); MEASUREMENTS: the run's, as ``validate`` returned them."""
    clean_shape = tuple(clean_shape)
    try:
        blocks = block_shapes(clean_shape, cfg.model.g_width)
    except ModelError as exc:
        raise ConfigError(f"data: {exc}; resize the images with data.image_size (28, 32 or 64)") from None
    with _as_config_error():
        _check_measurement_shapes(cfg, clean_shape, blocks, measurements)
    _check(
        not cfg.model.conditional or (num_classes >= 2 and not unlabelled),
        f"model.conditional needs every training image labelled with one of >= 2 classes; data.name={cfg.data.name} "
        f"has {num_classes} classes" + (" and unlabelled images" if unlabelled else ""),
    )
    per_worker = cfg.train.batch_size // cfg.train.workers
    _check(
        n_images is None or n_images // cfg.train.workers >= per_worker,
        f"data.limit gives {n_images} images: fewer than one batch of {per_worker} per worker "
        f"(train.batch_size={cfg.train.batch_size}, train.workers={cfg.train.workers})",
    )


def _check_measurement_shapes(cfg: Config, clean_shape: tuple[int, ...], blocks: dict[str, tuple],
                              measurements: Measurements) -> None:
    if cfg.measures_reals:
        image = measurements.image
        image.output_shape(clean_shape)
        _check(
            cfg.mode != "ignore" or not image.changes_shape,
            f"mode=ignore with measurement.name={cfg.measurement.name}: the lossy data are not images of "
            f"shape {clean_shape}, so a plain generator cannot be trained on them; use mode=ambient",
        )
    if cfg.hidden.inject_at is not None:
        hidden = measurements.hidden
        _check(
            not hidden.changes_shape,
            f"hidden.measurement.name={cfg.hidden.measurement.name} changes the feature map's shape, but the "
            "generator's next block needs the shape it was built for; use one that keeps it at a hidden layer: "
            + ", ".join(name for name, cls in MEASUREMENT_REGISTRY.items() if not cls.changes_shape),
        )
        try:
            at = inject_point(blocks, cfg.hidden.inject_point)
        except ModelError as exc:
            raise ConfigError(f"hidden.inject_at: {exc}") from None
        hidden.validate(blocks[at])
