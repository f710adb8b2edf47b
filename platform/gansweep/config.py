"""One typed configuration object: defaults live here, YAML and --set override only what differs.

Keys are dotted (``train.batch_size``). Every value is coerced to its field's type, so numbers given on
the command line arrive as numbers. Every check that needs no data or Ray runs in ``validate``; those that need
the images' shape and classes, but not the images, in ``check_shapes``. The names a key may take are listed by
the module that implements them (measurements, losses, sources, ...), and checked against those lists here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import reprlib
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from gansweep.data.restoration import INPAINT_METHODS, check_restorable
from gansweep.data.sources import SOURCES
from gansweep.nets.losses import LOSSES
from gansweep.nets.measurements import (
    DEFAULTS,
    Measurement,
    MeasurementError,
    build_measurement,
)
from gansweep.nets.measurements import REGISTRY as MEASUREMENT_REGISTRY
from gansweep.nets.models import D_NORMS, ModelError, block_shapes, inject_point

MODES = ("ambient", "ignore", "unmeasure", "clean")
HIDDEN_BN_STATS = ("clean", "measured")
PRIORS = ("normal", "kde")
ACL_VARIANTS = ("none", "gan", "ae")  # see acl.py
ACL_REC_TRAINS = ("encoder_and_generator", "encoder")  # Eq. 4 and 6 | Algorithm 1, line 11


class ConfigError(ValueError):
    """A config key, value or combination that cannot run; the message names it."""


# How a message quotes a user's value: its repr, cut short. A value may be huge (a 10 MB string, a list of a million
# items), and its whole repr would flood the terminal or, nested, take minutes and gigabytes to build; reprlib stops
# after a few items per level and a few levels (a long string: its start and end), whatever the value.
MAX_QUOTED_CHARS = 200
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel = 3
_QUOTE.maxdict = _QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxset = 10
_QUOTE.maxstring = _QUOTE.maxother = MAX_QUOTED_CHARS


def quoted(value: Any) -> str:
    """VALUE's repr as an error message shows it: at most MAX_QUOTED_CHARS characters, then "…"."""
    text = _QUOTE.repr(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "…"


@dataclass
class MeasurementConfig:
    """A measurement as build_measurement takes it; each measurement declares its parameters' defaults and ranges."""

    name: str = "none"
    p: float = DEFAULTS["p"]  # Block-Pixel: probability that an element (or a channel) is zeroed
    # Block-Pixel: "element" or "channel" (whole feature maps); the patches: "sample" (one patch in every channel) or
    # "channel" (each feature map its own). None: each measurement's own default.
    unit: str | None = DEFAULTS["unit"]
    patch: int = DEFAULTS["patch"]  # k of the k x k patch (Block-, Keep-, Extract-Patch)
    projections: int = DEFAULTS["projections"]  # m of Gaussian-Projection
    blur_radius: float = DEFAULTS["blur_radius"]  # sigma of Convolve+Noise's Gaussian blur
    noise_std: float = DEFAULTS["noise_std"]  # std of Convolve+Noise's additive noise
    steps: list = field(default_factory=list)  # Cascade: a list of measurement dicts, applied in order


@dataclass
class DataConfig:
    name: str = "fashion_mnist"
    root: str | None = None  # None: the source's default (Debian's dataset-fashion-mnist)
    limit: int | None = None  # use the first `limit` training images (quick runs)
    image_size: int | None = None  # resize image_folder / parquet sources to this square size
    seed: int = 0  # seed of the lossy training set y = f_theta(x): the same for every trial
    cache_dir: str | None = None  # None: $GANSWEEP_CACHE or ~/.cache/gansweep


@dataclass
class HiddenConfig:
    inject_at: str | None = None  # a generator block name, or its index ("1", "-1")
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    # G's BatchNorm statistics for sampling: "clean", recomputed on clean forwards before G is sampled, reversed or
    # saved; "measured", those training accumulates on measured feature maps (the shift the sampler then meets).
    bn_stats: str = "clean"

    @property
    def inject_point(self) -> str | int | None:
        """inject_at as the generator takes it: an index when it is a number, else a block name."""
        at = self.inject_at
        return int(at) if at is not None and at.lstrip("-").isdigit() else at


@dataclass
class ModelConfig:
    z_dim: int = 64
    g_width: int = 64
    d_width: int = 64
    d_norm: str = "batch"  # normalisation in D: batch, layer (one group per sample: WGAN-GP's choice) or none
    conditional: bool = False  # G(z | y) and D(x | y), the class label y one-hot next to z and x (labelled data)


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch_size: int = 64  # global batch, split evenly across workers
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float | None = None  # None: computed from the cluster's CPUs
    gpus_per_worker: float = 1.0  # with use_gpu; a fraction packs several small trials on one GPU
    seed: int = 0
    d_steps: int = 1  # discriminator steps per generator step (WGAN-GP's n_critic)
    loss: str = "non_saturating"  # non_saturating | minimax | wgan_gp | hinge (see losses.py)
    gp_weight: float = 10.0  # WGAN-GP's lambda
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    checkpoint_every: int = 200
    log_every: int = 10
    image_every: int = 200


@dataclass
class UnmeasureConfig:
    """The `unmeasure` baseline: the lossy set is restored, then a plain GAN is trained on it."""

    inpaint: str = "telea"  # OpenCV inpainting of the blocked pixels: telea or navier_stokes
    inpaint_radius: int = 3  # pixels around a lost one that the inpainting looks at


@dataclass
class EvalConfig:
    every: int = 500  # a cheap evaluation (fid, classifier_score) every N generator steps and at the end; 0: never
    cheap_samples: int = 1000  # samples of each cheap evaluation
    n_samples: int = 10_000  # samples of the full evaluation after training, into result.json; 0: skip it
    inception_weights: str | None = None  # a local torchvision Inception-V3 state dict: adds fid_inception


@dataclass
class ReversalConfig:
    """Generator reversal (Kilcher et al.): codes z of real images by gradient descent on ||G(z) - x||^2."""

    # Gradient-descent step size, on the error of images in [0, 1] (the same in every mode): 0.012 there is the step
    # that 0.003 was on [-1, 1] images, the scale of clean modes before.
    lr: float = 0.012
    max_steps: int = 20  # steps per reversal, unless the MMD rule stops it earlier
    # Std of the initial codes: the paper's 1e-4 leaves a BatchNorm G's ReLUs dead at z ~ 0 (no gradient).
    init_std: float = 1.0
    mmd_bandwidth: float | None = None  # RBF bandwidth of the MMD^2 of the codes; None: their median distance
    # The MMD rule (the paper's Claim 4), at most one of the two; neither: always max_steps.
    mmd_threshold: float = 0.0  # raw: stop once that MMD^2 exceeds it; 0: off
    # A two-sample test: stop at the first step whose permutation p-value is below this level; 0 or None: off.
    mmd_alpha: float | None = None
    mmd_permutations: int = 200  # random splits per test: p-values in steps of 1 / (mmd_permutations + 1)
    warm_start: bool = False  # start each image's code from the last time it was reversed (this run, this rank)


# `gansweep invert` and `holdout` reverse given images once, to convergence, rather than a batch per training step
# (their lr and init_std are ReversalConfig's defaults).
TOOL_REVERSAL_STEPS = 200
DEVICES = ("auto", "cpu", "cuda")  # what evaluate, invert and holdout take as --device


def resolve_device(name: str) -> torch.device:
    """The device a command runs on: "auto" is the GPU where there is one, else the CPU; "cuda" without a GPU is
    refused."""
    if name not in DEVICES:
        raise ConfigError(f"--device {quoted(name)}: one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this machine has no CUDA GPU (torch.cuda.is_available() is False)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@dataclass
class PriorConfig:
    """The code distribution G is fed: the standard normal, or a KDE over reversed codes (KDE-GAN)."""

    name: str = "normal"  # normal | kde
    bandwidth: float = 0.1  # KDE: the RBF kernel's bandwidth
    background_weight: float = 0.0  # KDE: weight of N(0, I) in the mixture, against memorisation
    refresh_every: int = 1  # KDE: re-estimate the prior from a reversed real batch every N steps (1: Algorithm 2)
    # KDE: pool the codes of the last N refreshes (1: this batch's codes only, Algorithm 2 as written). One batch
    # makes a KDE of batch_size modes, which caps the diversity of every sample drawn from it.
    pool: int = 1


@dataclass
class ACLConfig:
    """Adversarial code learning (Yuan et al.): G is fed codes C(z) trained to match an encoder's codes E(x)."""

    variant: str = "none"  # none | gan (ACL-GAN, Eq. 6; ACL-GAN-GP with train.loss=wgan_gp) | ae (ACL-AE, Eq. 3)
    rec_weight: float = 1.0  # lambda_2: reconstruction, ||Phi(x) - Phi(G(E(x)))||^2 (gan) or ||x - G(E(x))||^2 (ae)
    gan_weight: float = 1.0  # lambda_3: the image GAN loss of G on G(C(z)) (gan only)
    code_weight: float = 1.0  # lambda_4 (lambda_1 of ACL-AE): the code GAN of C and D_c, Eq. 1
    code_width: int = 256  # hidden units of the two-layer MLPs C and D_c
    # What the reconstruction trains: encoder_and_generator (E and G, as Eq. 4 and 6 minimise it) | encoder (E only,
    # as Algorithm 1 updates it; G then learns from its GAN loss alone, so ACL-GAN only)
    rec_trains: str = "encoder_and_generator"


@dataclass
class Config:
    mode: str = "ambient"
    data: DataConfig = field(default_factory=DataConfig)
    measurement: MeasurementConfig = field(default_factory=lambda: MeasurementConfig(name="block_pixel"))
    hidden: HiddenConfig = field(default_factory=HiddenConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    unmeasure: UnmeasureConfig = field(default_factory=UnmeasureConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    reversal: ReversalConfig = field(default_factory=ReversalConfig)
    acl: ACLConfig = field(default_factory=ACLConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def measures_reals(self) -> bool:
        """Whether the training set comes from the lossy y = f_theta(x) (restored in mode unmeasure), not the clean x."""
        return self.mode in ("ambient", "ignore", "unmeasure") and self.measurement.name != "none"


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the config, for suggestions and documentation."""
    keys = []
    for f in dataclasses.fields(cls):
        ftype = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(ftype):
            keys += all_keys(ftype, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key {quoted(key)}{hint}")


def _coerce(key: str, value: Any, ftype: Any) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or fail naming the key."""
    optional = False
    if isinstance(ftype, types.UnionType) or typing.get_origin(ftype) is typing.Union:
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        optional, ftype = True, args[0]
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{key} must not be empty")
    if typing.get_origin(ftype) is list or ftype is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {quoted(value)}")
        return value
    if ftype is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key} must be true or false, got {quoted(value)}")
    if ftype is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _is_int(value))):
            raise ConfigError(f"{key} must be an integer, got {quoted(value)}")
        return int(value)
    if ftype is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {quoted(value)}") from None
    if ftype is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a single value, got {quoted(value)}")
        return str(value)
    raise TypeError(f"unhandled config type {ftype} for {key}")


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def _apply(obj: Any, data: dict, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in hints:
            while isinstance(value, dict) and len(value) == 1:  # name the whole dotted key: trian.steps
                (sub, value), = value.items()
                key = f"{key}.{sub}"
            raise _unknown_key(key)
        ftype = hints[name]
        if dataclasses.is_dataclass(ftype):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping of keys, got {quoted(value)}")
            _apply(getattr(obj, name), value, f"{key}.")
        else:
            setattr(obj, name, _coerce(key, value, ftype))


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set one dotted key, e.g. ``set_key(cfg, "train.steps", "500")``."""
    parts = key.split(".")
    nested: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    _apply(cfg, nested, "")


# Nodes a YAML document's aliases may add to it once expanded: a few anchors in a real config add tens; an anchor
# bomb ("billion laughs") adds billions.
MAX_ALIAS_NODES = 10_000


def load_yaml(text: str, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """TEXT read as yaml.safe_load reads it (a syntax error raises yaml.YAMLError): the package's one YAML reader.

    A document whose aliases expand past MAX_ALIAS_NODES nodes is refused with ERROR naming WHAT, before any value
    is built: an alias is its anchor's node (and becomes the same Python object), so a bomb loads small, but whatever
    walks the values afterwards (a check, a copy, an error message) walks every copy, for minutes or until memory
    runs out."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[yaml.Node, float] = {}
        if _expanded_size(node, sizes) - len(sizes) > MAX_ALIAS_NODES:  # the nodes its aliases add
            raise error(f"{what}: its YAML aliases expand past {MAX_ALIAS_NODES:,} nodes (an anchor bomb?); refused")
        return loader.construct_document(node)
    except RecursionError:  # the composer and constructor recurse once per level of nesting
        raise error(f"{what}: YAML nested too deeply; refused") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[yaml.Node, float]) -> float:
    """The nodes NODE stands for with every alias expanded, counted once per alias: linear in the distinct nodes
    (SIZES memoises each). An alias inside its own anchor expands without end: infinity."""
    if node in sizes:
        return sizes[node]
    sizes[node] = math.inf  # while its children are counted: met again below it, it is its own alias
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:  # a scalar
        children = []
    sizes[node] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[node]


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; the value is read as YAML (so 0.5 is a float, [a, b] a list)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {quoted(text)}")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml(raw, f"--set {quoted(text)}") if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml_mapping(path: Path, what: str, error: type[ConfigError] = ConfigError) -> dict:
    """A YAML file that must hold a mapping, or ERROR naming WHAT and the file."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        data = load_yaml(path.read_text(), f"{what} {path}", error) or {}
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping of keys")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file, then ``KEY=VALUE`` overrides; validated."""
    cfg = Config()
    if path is not None:
        data = read_yaml_mapping(Path(path), "config file")
        _apply(cfg, data, "")
    for text in overrides:
        set_key(cfg, *parse_override(text))
    validate(cfg)
    return cfg


def from_dict(data: dict) -> Config:
    """Rebuild a Config from ``to_dict()`` output (as a run directory's run.json keeps it)."""
    cfg = Config()
    _apply(cfg, data, "")
    return cfg


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


def _validate_measurement(m: MeasurementConfig, key: str) -> None:
    with _as_config_error():  # the name, the parameters and the cascade steps, as nets.measurements declares them
        build_measurement(asdict(m), key)
    for i, step in enumerate(m.steps if m.name == "cascade" else []):
        nested = MeasurementConfig()
        _apply(nested, step, f"{key}.steps[{i}].")  # a step's keys are config keys too: none unknown, all typed
        _validate_measurement(nested, f"{key}.steps[{i}]")


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
    if alpha:
        _check(1 / (r.mmd_permutations + 1) < alpha,
               f"reversal.mmd_permutations={r.mmd_permutations} cannot reach a p-value below reversal.mmd_alpha="
               f"{r.mmd_alpha} (the smallest is 1 / (mmd_permutations + 1)); use at least {int(1 / alpha)}")
    # KDE-GAN in mode ambient takes any measurement: a real's theta is recomputed from its index (data/thetas.py),
    # not kept.


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


def validate(cfg: Config) -> None:
    """Checks that need neither data nor Ray; those that need the images' shape are ``check_shapes``."""
    _check(cfg.mode in MODES, f"mode={quoted(cfg.mode)} is not one of {', '.join(MODES)}")
    _check(cfg.data.name in SOURCES, f"data.name={quoted(cfg.data.name)} is not one of {', '.join(SOURCES)}")
    _check(cfg.data.limit is None or cfg.data.limit >= 1, f"data.limit={cfg.data.limit} must be >= 1")
    _check(cfg.data.image_size is None or cfg.data.image_size >= 4, "data.image_size must be >= 4")
    _validate_measurement(cfg.measurement, "measurement")
    _validate_measurement(cfg.hidden.measurement, "hidden.measurement")

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

    t = cfg.train
    for key in ("steps", "batch_size", "workers", "d_steps", "checkpoint_every", "log_every", "image_every"):
        _check(getattr(t, key) >= 1, f"train.{key}={getattr(t, key)} must be >= 1")
    for key in ("lr_g", "lr_d"):
        _check(getattr(t, key) > 0, f"train.{key}={getattr(t, key)} must be > 0")
    for key in ("beta1", "beta2"):
        _check(0 <= getattr(t, key) < 1, f"train.{key}={getattr(t, key)} must be in [0, 1)")
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
    _check(t.loss in LOSSES, f"train.loss={quoted(t.loss)} is not one of {', '.join(LOSSES)}")
    _check(t.gp_weight >= 0, f"train.gp_weight={t.gp_weight} must be >= 0")
    _check(cfg.model.d_norm in D_NORMS, f"model.d_norm={quoted(cfg.model.d_norm)} is not one of {', '.join(D_NORMS)}")
    _check(
        t.loss != "wgan_gp" or cfg.model.d_norm != "batch",
        "train.loss=wgan_gp penalises each sample's gradient, which BatchNorm mixes across the batch: "
        "set model.d_norm=layer (or none)",
    )


@dataclass
class Measurements:
    """A run's measurements, built from its config once per process: the driver builds them, checks them against
    the data's shapes, measures the training set with them, and ships them to the workers in the run's plan."""

    image: Measurement | None  # f_theta of the images (None: measurement.name none)
    hidden: Measurement | None  # inside G after hidden.inject_at (None without it)


def build_measurements(cfg: Config) -> Measurements:
    """CFG's measurements (validated: their parameters are the declared ones)."""
    with _as_config_error():
        image = build_measurement(asdict(cfg.measurement), "measurement")
        hidden = build_measurement(asdict(cfg.hidden.measurement), "hidden.measurement")
    return Measurements(image, hidden if cfg.hidden.inject_at is not None else None)


def check_shapes(cfg: Config, clean_shape: tuple[int, ...], num_classes: int, n_images: int | None = None, *,
                 unlabelled: bool = False, measurements: Measurements | None = None) -> None:
    """The checks of a validated CFG that need the training images' shape and classes, not the images: the generator
    makes images of CLEAN_SHAPE, each measurement fits the shape it meets (the image measurement the images, the
    hidden one the feature map after hidden.inject_at), a conditional GAN has labels (UNLABELLED: some image has
    none), and, given N_IMAGES (those the run trains on), every worker gets a batch. Raises ConfigError.

    The trainer calls it before loading the training set, the sweep on every trial, both with the source's
    description (data.sources.describe_source); MEASUREMENTS: the run's, when already built."""
    clean_shape = tuple(clean_shape)
    try:
        blocks = block_shapes(clean_shape, cfg.model.g_width)
    except ModelError as exc:
        raise ConfigError(f"data: {exc}; resize the images with data.image_size (28, 32 or 64)") from None
    with _as_config_error():
        _check_measurement_shapes(cfg, clean_shape, blocks, measurements or build_measurements(cfg))
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
