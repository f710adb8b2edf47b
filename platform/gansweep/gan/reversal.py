"""Generator reversal (Kilcher et al., "Generator Reversal", Algorithm 1) and its MMD stopping rule (Claim 4).

Reversal finds codes z with G(z) ~ x by plain gradient descent on ||G(z) - x||^2, for a whole batch at
once on the generator's device; each code's gradient is that of its own image's error (G in eval mode
keeps the images independent). The errors reported are means over elements, comparable across shapes.
Through a measurement the error compares ||f_theta(G(z)) - y||^2, with the theta that measured y.

The stopping rule: a batch of generated images is reversed alongside the real one; after every step the
unbiased MMD^2 (RBF kernel) between the codes of the reals and the codes of the fakes is computed, and the
reversal stops once it passes the threshold, i.e. once the two can be told apart in code space: crude
codes early in training, finer ones as the generator improves. Plain torch: no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Reversed:
    codes: torch.Tensor  # (N, z_dim) codes of the targets
    steps: int  # gradient steps taken
    errors: list[float] = field(default_factory=list)  # targets' mean squared error per element, before each step
    mmd2: list[float] = field(default_factory=list)  # after each step, when a generated batch was reversed alongside


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """k(a_i, b_j) = exp(-||a_i - b_j||^2 / (2 bandwidth^2)) for every pair: (len(a), len(b))."""
    return torch.exp(-torch.cdist(a, b).square() / (2 * bandwidth**2))


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """The paper's Eq. 3 (Gretton et al.'s MMD_u^2) for two samples of equal size m >= 2:
    1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i)]."""
    m = len(x)
    if len(y) != m or m < 2:
        raise ValueError(f"mmd2_unbiased needs two samples of one size >= 2, got {len(x)} and {len(y)}")
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=x.device)
    kxx, kyy, kxy = rbf_kernel(x, x, bandwidth), rbf_kernel(y, y, bandwidth), rbf_kernel(x, y, bandwidth)
    terms = kxx + kyy - kxy - kxy.T
    return terms[off_diagonal].sum() / (m * (m - 1))


def reverse(
    generator: nn.Module,
    targets: torch.Tensor,
    *,
    lr: float,
    max_steps: int,
    init_std: float,
    measure: Callable[[torch.Tensor], torch.Tensor] | None = None,
    init: torch.Tensor | None = None,
    fakes: torch.Tensor | None = None,
    mmd_bandwidth: float | None = None,  # None: the median distance between the initial codes
    mmd_threshold: float | None = None,
    rng: torch.Generator | None = None,
) -> Reversed:
    """Codes of TARGETS (images, or measurements when MEASURE maps G's images to what was measured).

    INIT (N, z_dim) warm-starts the codes (e.g. from the last time these images were reversed); otherwise
    they start from N(0, init_std^2). With FAKES (generated targets, as many as TARGETS, measured alike) and
    an MMD threshold, both batches are reversed together and the loop stops once the MMD^2 between their
    codes exceeds the threshold, else after MAX_STEPS. The generator's weights get no gradient."""
    if lr <= 0 or max_steps < 1 or init_std < 0:
        raise ValueError(f"reverse needs lr > 0, max_steps >= 1 and init_std >= 0; got {lr}, {max_steps}, {init_std}")
    use_mmd = fakes is not None and mmd_threshold is not None
    if use_mmd and len(fakes) != len(targets):
        raise ValueError("the MMD stopping rule needs as many fakes as targets")
    n = len(targets)
    device = targets.device
    batch = torch.cat([targets, fakes]) if use_mmd else targets
    z_dim = generator.z_dim
    codes = torch.randn(len(batch), z_dim, generator=rng, device=device) * init_std  # RNG on that device
    if init is not None:
        codes[:n] = init.to(device)
    if use_mmd and mmd_bandwidth is None:  # the median heuristic, fixed for this reversal
        mmd_bandwidth = float(torch.cdist(codes, codes).median())
    codes.requires_grad_(True)
    measure = measure or (lambda images: images)

    requires_grad = [p.requires_grad for p in generator.parameters()]
    generator.requires_grad_(False)  # only the codes move
    errors, mmd2 = [], []
    try:
        steps = 0
        for steps in range(1, max_steps + 1):
            squared = (measure(generator(codes)) - batch).flatten(1).square()
            errors.append(float(squared[:n].detach().mean()))
            (grad,) = torch.autograd.grad(squared.sum(), codes)
            with torch.no_grad():
                codes -= lr * grad
                if use_mmd:
                    mmd2.append(float(mmd2_unbiased(codes[:n], codes[n:], mmd_bandwidth)))
                    if mmd2[-1] > mmd_threshold:
                        break
    finally:
        for p, flag in zip(generator.parameters(), requires_grad):
            p.requires_grad_(flag)
    return Reversed(codes=codes[:n].detach(), steps=steps, errors=errors, mmd2=mmd2)
