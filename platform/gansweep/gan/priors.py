"""Latent priors, what G is fed during training: N(0, I); KDE-GAN's kernel density over reversed codes (Kilcher et
al., section 3.2), refreshed from the training data; and ACL's codes C(z). No Ray here.

Every prior draws G's codes with ``sample(n, rng)`` on the device of RNG (the trainer's z stream), says with
``due(step)`` whether it is re-estimated before that step, and owns its checkpoint keys (``state_dict``). The priors
prior.name chooses are in REGISTRY, each building itself for a run (``build``) and restoring from a checkpoint what
a sampler draws from (``sampling_prior``); ACL's CodePrior is chosen by acl.variant instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from gansweep.data.thetas import concat_thetas, keyed_theta, thetas_to
from gansweep.gan.reversal import reverse
from gansweep.gan.runtime import unwrap
from gansweep.nets.pixels import to_unit

if TYPE_CHECKING:
    from gansweep.config.schema import Config
    from gansweep.gan.runtime import RandomStreams
    from gansweep.nets.measurements import Measurement


CODE_GENERATOR_KEY = "C"  # ACL's C in a checkpoint
PRIOR_CODES_KEY = "prior_codes"  # the codes of KDE-GAN's KDE in a checkpoint (absent or empty: N(0, I))


class KDEPrior:
    """p(z) = (1 - w) (1/n) sum_i N(z; z_i, h^2 I) + w N(z; 0, I): an RBF kernel density of bandwidth h over
    the codes z_i, mixed with the background Gaussian with weight w. The bandwidth trades generalisation
    (wide kernels) against memorising the reversed training codes (h -> 0)."""

    def __init__(self, codes: torch.Tensor, bandwidth: float, background_weight: float = 0.0):
        if codes.dim() != 2 or len(codes) < 1:
            raise ValueError(f"KDEPrior needs codes of shape (n, z_dim), got {tuple(codes.shape)}")
        if bandwidth <= 0:
            raise ValueError(f"the KDE bandwidth must be > 0, got {bandwidth}")
        if not 0 <= background_weight <= 1:
            raise ValueError(f"the background weight must be in [0, 1], got {background_weight}")
        self.codes = codes.detach()
        self.bandwidth = float(bandwidth)
        self.background_weight = float(background_weight)

    @property
    def z_dim(self) -> int:
        return self.codes.shape[1]

    def sample(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """N codes on the codes' device: a stored code plus N(0, h^2 I) noise, or (with probability w) a background
        draw. Drawn by RNG on its own device: the z stream's in training, a CPU generator for an evaluation (the same
        draws whatever device the codes are on)."""
        device, draws = self.codes.device, rng.device if rng is not None else self.codes.device
        pick = torch.randint(len(self.codes), (n,), generator=rng, device=draws).to(device)
        z = self.codes[pick] + self.bandwidth * torch.randn(n, self.z_dim, generator=rng, device=draws).to(device)
        if self.background_weight > 0:
            background = (torch.rand(n, generator=rng, device=draws) < self.background_weight).to(device)
            z[background] = torch.randn(int(background.sum()), self.z_dim, generator=rng, device=draws).to(device)
        return z

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for each row of Z (natural log, densities in R^z_dim)."""
        d, h = self.z_dim, self.bandwidth
        squared = torch.cdist(z, self.codes).square()
        log_kernels = -squared / (2 * h * h) - d * math.log(h) - d / 2 * math.log(2 * math.pi)
        kde = torch.logsumexp(log_kernels, dim=1) - math.log(len(self.codes))
        if self.background_weight == 0:
            return kde
        background = -z.square().sum(dim=1) / 2 - d / 2 * math.log(2 * math.pi)
        if self.background_weight == 1:
            return background
        return torch.logaddexp(kde + math.log1p(-self.background_weight), background + math.log(self.background_weight))

    @classmethod
    def from_checkpoint(cls, codes: torch.Tensor | None, prior_config) -> KDEPrior | None:
        """The prior a checkpoint's `prior_codes` describe under the run's prior.* settings (PRIOR_CONFIG);
        None for N(0, I), which a checkpoint records as no codes."""
        if codes is None or not len(codes):
            return None
        return cls(codes, prior_config.bandwidth, prior_config.background_weight)

    def holdout_log_likelihood(self, codes: torch.Tensor) -> float:
        """Mean log-density of held-out codes (e.g. reversed test images): the paper's Fig. 10."""
        return float(self.log_prob(codes).mean())


class NormalPrior:
    """z ~ N(0, I): the plain GAN's prior, which the other two build on. No checkpoint keys."""

    def __init__(self, z_dim: int):
        self.z_dim = z_dim

    @classmethod
    def build(cls, cfg: Config, generator: nn.Module, streams: RandomStreams, measurement: Measurement | None,
              clean_shape: tuple[int, int, int]) -> NormalPrior:
        """The prior of a run of CFG, training GENERATOR (plain), which mode ambient measures with MEASUREMENT."""
        return NormalPrior(cfg.model.z_dim)

    @classmethod
    def sampling_prior(cls, cfg: Config, state: dict) -> NormalPrior | KDEPrior:
        """What a sampler of a run of CFG draws z from, restored from a checkpoint's STATE: the KDE over its prior
        codes where it has some (KDE-GAN's, once refreshed), else N(0, I)."""
        kde = KDEPrior.from_checkpoint(state.get(PRIOR_CODES_KEY), cfg.prior)
        return kde if kde is not None else NormalPrior(cfg.model.z_dim)

    def noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """N draws of N(0, I) on RNG's device."""
        return torch.randn(n, self.z_dim, device=rng.device, generator=rng)

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return self.noise(n, rng)

    def due(self, step: int) -> bool:
        """Whether the prior is re-estimated before generator step STEP: only KDE-GAN's is."""
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class CodePrior(NormalPrior):
    """ACL's prior (Yuan et al.): codes C(z) of noise z ~ N(0, I), C the code generator that the code GAN trains to
    match the encoder's codes. Owns the checkpoint key C."""

    def __init__(self, code_generator: nn.Module, z_dim: int):
        super().__init__(z_dim)
        self.C = code_generator  # DDP-wrapped in training: the code GAN's step goes through the wrapper

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """G's input codes C(z), without C's graph: C learns from D_c alone (Algorithm 1)."""
        with torch.no_grad():
            return unwrap(self.C)(self.noise(n, rng))

    def state_dict(self) -> dict:
        return {CODE_GENERATOR_KEY: unwrap(self.C).state_dict()}

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.C).load_state_dict(state[CODE_GENERATOR_KEY])


class KDEGANPrior(NormalPrior):
    """KDE-GAN's prior (Kilcher et al., Algorithm 2): N(0, I) until the first refresh, then the KDE over the codes
    of reversed real batches (the last prior.pool refreshes'). Owns the checkpoint key prior_codes; the warm
    start's code bank (each image's last reversed code, by its index in the training set) is not checkpointed.

    In mode ambient the reals are measurements y, each reversed through f_theta with the theta that measured it,
    recomputed from the image's index and data.seed (data/thetas.py)."""

    def __init__(self, cfg: Config, generator: nn.Module, streams: RandomStreams,
                 measurement: Measurement | None = None, clean_shape: tuple[int, int, int] | None = None):
        super().__init__(generator.z_dim)
        self.reversal, self.prior, self.data_seed = cfg.reversal, cfg.prior, cfg.data.seed
        self.generator = generator  # plain G: reversal is a single-rank pass
        self.streams, self.measurement, self.clean_shape = streams, measurement, clean_shape
        self.kde: KDEPrior | None = None
        self.code_bank: dict[int, torch.Tensor] = {}

    @classmethod
    def build(cls, cfg, generator, streams, measurement, clean_shape) -> KDEGANPrior:  # NormalPrior.build's arguments
        return cls(cfg, generator, streams, measurement, clean_shape)

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return self.kde.sample(n, rng) if self.kde is not None else self.noise(n, rng)

    def due(self, step: int) -> bool:
        """Due before generator step STEP (counted from 1) when there is no KDE yet (a start, or a resume) and every
        prior.refresh_every steps (every step: Algorithm 2)."""
        return self.kde is None or (step - 1) % self.prior.refresh_every == 0

    def refresh(self, reals: torch.Tensor, indices: torch.Tensor | None = None) -> dict[str, float]:
        """Reverse a real batch through G (eval mode: BatchNorm's running statistics keep the images independent)
        and make the KDE over its codes the new prior. With reversal.mmd_threshold or reversal.mmd_alpha, a
        generated batch is reversed alongside and the MMD rule (raw threshold, or two-sample test) stops it.
        INDICES: the images' positions in the training set, on the CPU (the stream's) or on the device.

        One sync with the device, for the figures at the end (plus the MMD rule's checks, and one for INDICES
        when they are on the device)."""
        r, p, z_stream = self.reversal, self.prior, self.streams.z
        # Only the host reads the indices (the thetas' keys, the code bank's): on the CPU this moves nothing.
        index_list = indices.tolist() if indices is not None else None
        self.generator.eval()
        try:
            fakes = None
            if r.mmd_threshold > 0 or r.mmd_alpha:
                with torch.no_grad():
                    fakes = to_unit(self.generator(self.sample(len(reals), z_stream)))
            if self.measurement is None:
                # One scale in every mode: G's images compared in [0, 1], as measurements of them are (in [-1, 1]
                # the error and its gradient were 4x those of mode ambient for the same reversal.lr).
                targets, measure = reals, to_unit
            else:
                targets, fakes, measure = self._measured_targets(reals, index_list, fakes)
            init = None
            if r.warm_start and index_list is not None:
                init = self._warm_codes(index_list, len(reals), with_fakes=fakes is not None)
            result = reverse(self.generator, targets, lr=r.lr, max_steps=r.max_steps, init_std=r.init_std,
                             fakes=fakes, measure=measure, mmd_bandwidth=r.mmd_bandwidth,
                             mmd_threshold=r.mmd_threshold or None, mmd_alpha=r.mmd_alpha or None,
                             mmd_looks=r.mmd_looks, mmd_permutations=r.mmd_permutations, init=init,
                             rng=z_stream)
        finally:
            self.generator.train()
        codes = result.codes
        if self.kde is not None and p.pool > 1:  # the newest codes first, then the last refreshes' (older G)
            codes = torch.cat([codes, self.kde.codes])[: p.pool * len(result.codes)]
        self.kde = KDEPrior(codes, p.bandwidth, p.background_weight)
        if r.warm_start and index_list is not None:
            # Each image's code by its index: rows of this reversal's codes, views on the device (no copy each).
            self.code_bank.update(zip(index_list, result.codes))
        return result.figures()  # on the host at last

    def _measured_targets(
        self, reals: torch.Tensor, indices: list[int] | None, fakes: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, Callable[[torch.Tensor], torch.Tensor]]:
        """An ambient reversal's targets (the measured reals y, in their own [0, 1]), its fakes measured with
        freshly drawn theta, and the measurement that maps G's images to what each target is: f_theta with
        the reals' keyed theta followed by the fakes' (reverse() stacks the fakes after the reals)."""
        if self.clean_shape is None or indices is None:
            raise ValueError("a KDE-GAN reversal in mode ambient needs the clean image shape and the batch's "
                             "indices in the training set")
        theta = thetas_to(keyed_theta(self.measurement, self.clean_shape, indices, self.data_seed),
                          reals.device)
        if fakes is not None:
            fake_theta = self.measurement.sample_theta(fakes, self.streams.theta)
            fakes = self.measurement.measure(fakes, fake_theta)
            theta = concat_thetas([theta, fake_theta])
        # G's clean forward, then the image-space measurement: with hidden.inject_at too, for y was measured
        # from a clean image; the hidden measurement only shapes G's training.
        return reals, fakes, lambda images: self.measurement.measure(to_unit(images), theta)

    def _warm_codes(self, indices: list[int], n: int, with_fakes: bool = False) -> torch.Tensor:
        """Initial codes: each image's last reversed code where it has one, else N(0, init_std^2).

        WITH_FAKES (the MMD rule): the fakes' initial codes follow, on the same footing. The rule asks when the two
        batches' codes can be told apart; reals started from their banked (already reversed) codes and fakes from
        N(0, I) differ before any step, and the rule stopped every warm reversal after one. So where a real starts
        from the bank, a fake starts from one of those banked codes (the banked rows in a random order), elsewhere
        from its own fresh draw, as in a cold start."""
        fresh = self.noise(n, self.streams.z) * self.reversal.init_std
        # One stack of the rows (the bank's where it has the image, the fresh draw's elsewhere): one copy on the
        # device, where filling the known rows one by one is a small copy each, and no index tensor to move there.
        codes = torch.stack([self.code_bank.get(index, row) for index, row in zip(indices, fresh)])
        if not with_fakes:
            return codes
        banked = [row for row, index in enumerate(indices) if index in self.code_bank]
        fake_codes = self.noise(n, self.streams.z) * self.reversal.init_std
        if banked:
            # A permutation of the banked rows from the z stream, on its device (no sync to index with it).
            rows = torch.tensor(banked).to(codes.device)
            order = torch.randperm(len(banked), generator=self.streams.z, device=self.streams.z.device)
            fake_codes[rows] = codes[rows[order.to(codes.device)]]
        return torch.cat([codes, fake_codes])

    def state_dict(self) -> dict:
        # The prior is part of the model: the codes of its KDE (none before the first refresh).
        return {PRIOR_CODES_KEY: self.kde.codes.cpu() if self.kde is not None else torch.empty(0)}

    def load_state_dict(self, state: dict) -> None:
        codes = state.get(PRIOR_CODES_KEY)  # moved to the z stream's device, where it samples the KDE
        self.kde = KDEPrior.from_checkpoint(codes.to(self.streams.z.device) if codes is not None else None, self.prior)


# prior.name's values. config/schema.py's PRIORS lists the same names (config sits below gan and cannot import this),
# which tests/gan/test_priors.py asserts; that keeps the name check in config.validate, which the CLI and the
# sweep's check of every trial already run before Ray, with its message unchanged.
REGISTRY: dict[str, type[NormalPrior]] = {"normal": NormalPrior, "kde": KDEGANPrior}
