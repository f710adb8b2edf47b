"""DCGAN generator and discriminator. No Ray here.

The generator is a chain of named blocks so that Hidden AmbientGAN can split it as G = G1 ∘ G2 at
any block boundary: in training the fake is G1(f_hidden(G2(z))); sampling applies no measurement.
The discriminator takes whatever the image-space measurement produces: images or small patches (every
measurement's output is an image, Gaussian-Projection's back-projection included).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class ModelError(ValueError):
    """A model built for, or called with, shapes or injection points it does not support."""


# Per output size: (spatial size of the projected map, channel multiples of `width` for the
# projection and then each upsampling block). Each upsampling block doubles the spatial size.
_PLANS = {
    28: (7, (4, 2, 1)),
    32: (4, (4, 2, 1, 1)),
    64: (4, (8, 4, 2, 1, 1)),
}
SUPPORTED_IMAGE_SHAPES = ((1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64))
D_NORMS = ("batch", "layer", "none")  # model.d_norm: the discriminator's normalisation (conv_body)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation of `module` and all its submodules, in place."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _as_shape(shape) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ModelError(f"a shape must be a sequence of ints, got {shape!r}") from None


def with_labels(x: torch.Tensor, labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """A conditional GAN's input (Mirza & Osindero, as in the lecture notes): the one-hot label concatenated to a
    vector, or to an image as K constant channels. X unchanged for an unconditional net (num_classes 0)."""
    if num_classes == 0:
        return x
    if labels is None or labels.shape != (len(x),):
        got = "none" if labels is None else tuple(labels.shape)
        raise ModelError(f"a conditional net needs one class label per sample: {len(x)} samples, labels {got}")
    one_hot = nn.functional.one_hot(labels.long(), num_classes).to(x.dtype)
    if x.dim() == 4:
        one_hot = one_hot[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, one_hot], dim=1)


def class_cycle(n: int, num_classes: int) -> torch.Tensor | None:
    """Labels 0, 1, ..., K-1, 0, 1, ... for n samples of a conditional generator (every class equally often);
    None for an unconditional one."""
    return torch.arange(n) % num_classes if num_classes else None


def block_shapes(image_shape: tuple[int, int, int], width: int) -> dict[str, tuple[int, int, int]]:
    """The generator's blocks for images of IMAGE_SHAPE, in order, each with its per-sample output shape:
    what Generator builds, known without building it (the checks before a run or sweep use it)."""
    image_shape = _as_shape(image_shape)
    if image_shape not in SUPPORTED_IMAGE_SHAPES:
        raise ModelError(
            f"Generator supports image shapes {', '.join(map(str, SUPPORTED_IMAGE_SHAPES))}; got {image_shape}"
        )
    start, mults = _PLANS[image_shape[1]]
    shapes = {"project": (mults[0] * width, start, start)}
    for i, mult in enumerate(mults[1:], start=1):
        shapes[f"up{i}"] = (mult * width, start * 2**i, start * 2**i)
    shapes["to_image"] = image_shape
    return shapes


def injection_points(blocks) -> list[str]:
    """The names of BLOCKS (a generator's, in order) after which a hidden measurement may go: all but the last."""
    return list(blocks)[:-1]


def inject_point(blocks, at: str | int) -> str:
    """The injection point AT (a block name, or an index into the injection points) names among BLOCKS."""
    points = injection_points(blocks)
    if isinstance(at, str) and at in points:
        return at
    # bool is an int subclass; True is no injection point.
    if isinstance(at, int) and not isinstance(at, bool) and -len(points) <= at < len(points):
        return points[at]
    raise ModelError(
        f"unknown injection point {at!r}: use one of {points} or an index in [{-len(points)}, {len(points) - 1}]"
    )


class Generator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], z_dim: int = 64, width: int = 64, num_classes: int = 0):
        super().__init__()
        if z_dim < 1 or width < 1:
            raise ModelError(f"z_dim and width must be positive, got z_dim={z_dim}, width={width}")
        shapes = block_shapes(image_shape, width)  # per-sample output shape of each block
        self.image_shape = shapes["to_image"]
        self.z_dim = z_dim
        self.num_classes = num_classes  # > 0: conditional, G(z | y) with y one-hot next to z

        blocks: dict[str, nn.Module] = {}
        c, start, _ = shapes["project"]
        # No bias before BatchNorm: its shift makes a bias redundant.
        blocks["project"] = nn.Sequential(
            nn.Linear(z_dim + num_classes, c * start * start, bias=False),
            nn.Unflatten(1, (c, start, start)),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        )
        for name in list(shapes)[1:-1]:  # the upsampling blocks
            c_out = shapes[name][0]
            blocks[name] = nn.Sequential(
                nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            )
            c = c_out
        blocks["to_image"] = nn.Sequential(nn.Conv2d(c, self.image_shape[0], 3, padding=1), nn.Tanh())

        self.blocks = nn.ModuleDict(blocks)
        self._shapes = shapes
        init_weights(self)

    def inject_points(self) -> list[str]:
        return injection_points(self.blocks)

    def resolve_inject_point(self, at: str | int) -> str:
        return inject_point(self.blocks, at)

    def feature_shape(self, at: str | int) -> tuple[int, int, int]:
        """Per-sample (C, H, W) of the feature map after block `at`."""
        return self._shapes[self.resolve_inject_point(at)]

    def forward(
        self,
        z: torch.Tensor,
        hidden: tuple[str | int, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        return_hidden: bool = False,
        *,
        labels: torch.Tensor | None = None,
    ):
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ModelError(f"Generator expects z of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        inject_at, fn = (self.resolve_inject_point(hidden[0]), hidden[1]) if hidden is not None else (None, None)
        measured = None
        h = with_labels(z, labels, self.num_classes)
        for name, block in self.blocks.items():
            h = block(h)
            if name == inject_at:
                out = fn(h)
                # The next block was built for this shape; a different one would fail obscurely inside it.
                if not isinstance(out, torch.Tensor) or out.shape != h.shape:
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise ModelError(
                        f"the hidden measurement after block '{name}' must keep the feature map's shape "
                        f"{tuple(h.shape)}, but returned {got}"
                    )
                h = measured = out
        return (h, measured) if return_hidden else h


def conv_body(shape: tuple[int, int, int], width: int, norm: str) -> tuple[nn.Module, int]:
    """Strided convolutions down to a map smaller than 8x8, flattened: (body, number of features). Shared by
    the discriminator and ACL's encoder."""
    c, h, w = shape
    if norm not in D_NORMS:
        raise ModelError(f"unknown normalisation {norm!r}: use one of {', '.join(D_NORMS)}")
    if c < 1 or h < 2 or w < 2:
        raise ModelError(f"a convolutional body needs images of at least 1 channel and 2x2 pixels, got {shape}")
    layers: list[nn.Module] = []
    c_out = width
    first = True
    # Halve the spatial size while it is >= 8, doubling channels; a normalisation on all but the first
    # layer (and a conv bias only where none follows). "layer" normalises each sample on its own
    # (GroupNorm with one group), as a per-sample gradient penalty needs.
    while min(h, w) >= 8:
        normalised = not first and norm != "none"
        layers.append(nn.Conv2d(c, c_out, 4, stride=2, padding=1, bias=not normalised))
        if normalised:
            layers.append(nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(1, c_out))
        layers.append(nn.LeakyReLU(0.2))
        c, h, w, c_out, first = c_out, h // 2, w // 2, c_out * 2, False
    if not layers:
        # Patches smaller than 8x8: one size-preserving conv so D still learns local features.
        layers += [nn.Conv2d(c, c_out, 3, stride=1, padding=1), nn.LeakyReLU(0.2)]
        c = c_out
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c * h * w


class Discriminator(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], width: int = 64, norm: str = "batch", num_classes: int = 0):
        super().__init__()
        input_shape = _as_shape(input_shape)
        if width < 1:
            raise ModelError(f"width must be positive, got {width}")
        self.num_classes = num_classes  # > 0: conditional, D(x | y) with y one-hot next to x
        if len(input_shape) != 3:
            raise ModelError(f"Discriminator takes images (C, H, W), got input shape {input_shape}")
        c, h, w = input_shape
        self.body, n_features = conv_body((c + num_classes, h, w), width, norm)
        self.input_shape = input_shape
        self.head = nn.Linear(n_features, 1)
        init_weights(self)

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Penultimate features (N, F), for evaluation and feature matching."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ModelError(
                f"Discriminator built for inputs {self.input_shape} got a batch of shape {tuple(x.shape)}"
            )
        return self.body(with_labels(x, labels, self.num_classes))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape (N,)."""
        return self.head(self.features(x, labels)).squeeze(1)


def random_generator(seed: int, width: int, z_dim: int = 64, shape: tuple[int, int, int] = (1, 28, 28)) -> Generator:
    """A G of random weights whose images respond to z (the KDE-GAN paper's section 2.2: reversal experiments need no
    training): PyTorch's default initialisation (DCGAN's N(0, 0.02) leaves a near-constant image), BatchNorm's running
    statistics those of its own activations, as training leaves them; eval mode, as a reversal runs G."""
    torch.manual_seed(seed)
    generator = Generator(shape, z_dim=z_dim, width=width)
    for module in generator.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            module.reset_parameters()
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a cumulative average
    with torch.no_grad():
        for _ in range(10):
            generator(torch.randn(256, z_dim))
    return generator.eval()
