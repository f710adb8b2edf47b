"""The networks of adversarial code learning (Yuan et al., "Adversarial Code Learning for Image Generation"): the
encoder E, the code generator C, the code discriminator D_c, and G(C(z)), the image generator an ACL run samples
with. Plain torch: how they are trained is gan/acl.py's."""

from __future__ import annotations

import torch
from torch import nn

from gansweep.nets.models import conv_body, init_weights


class Encoder(nn.Module):
    """E(x): images (C, H, W) in [0, 1] to codes (z_dim,), a DCGAN discriminator's body with a linear head.

    The codes are standardised per dimension (BatchNorm without affine): a free linear head drifted to codes
    ~3x the scale of N(0, I) within 50 steps on Fashion-MNIST, which C (starting near N(0, I)) then chased
    for hundreds of steps while G learnt from two different input distributions."""

    def __init__(self, image_shape: tuple[int, int, int], z_dim: int, width: int = 64):
        super().__init__()
        self.body, n_features = conv_body(tuple(image_shape), width, "batch")
        self.head = nn.Sequential(nn.Linear(n_features, z_dim), nn.BatchNorm1d(z_dim, affine=False))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class CodeGenerator(nn.Module):
    """C(z) = z + MLP(z): the paper's two-layer MLP as a residual, so C starts at the identity, i.e. at N(0, I),
    the moments of the standardised encoder codes, and the code GAN learns only their shape."""

    def __init__(self, z_dim: int, width: int):
        super().__init__()
        self.z_dim = z_dim
        self.mlp = two_layer_mlp(z_dim, width, z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.mlp(z)


def two_layer_mlp(n_in: int, width: int, n_out: int) -> nn.Sequential:
    """The paper's ACL nets (section 5: "simple 2-layer MLPs"): C (codes out) and D_c (one logit out). PyTorch's
    default initialisation: DCGAN's N(0, 0.02) would start C with codes near 0, far from any encoder's."""
    return nn.Sequential(nn.Linear(n_in, width), nn.LeakyReLU(0.2), nn.Linear(width, n_out))


class CodeToImage(nn.Module):
    """G(C(z)): a generator of noise z ~ N(0, I) like a plain G (z_dim, image_shape, num_classes, forward), which
    is how an ACL run's generator is sampled and reversed."""

    def __init__(self, code_generator: nn.Module, generator: nn.Module):
        super().__init__()
        self.code_generator, self.generator = code_generator, generator
        self.z_dim, self.image_shape, self.num_classes = generator.z_dim, generator.image_shape, generator.num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(self.code_generator(z), labels=labels)
