"""Generator (named blocks, hidden-space injection) and Discriminator (images and patches)."""

import pytest
import torch
from gansweep.nets.models import (
    Discriminator,
    Generator,
    ModelError,
    block_shapes,
    init_weights,
    inject_point,
)
from torch import nn

W = 8  # small width keeps the file fast; the layout does not depend on it
Z = 16

# Per supported image shape: the injection points and the feature map after each, at width W.
EXPECTED_POINTS = {
    (1, 28, 28): {"project": (4 * W, 7, 7), "up1": (2 * W, 14, 14), "up2": (W, 28, 28)},
    (1, 32, 32): {"project": (4 * W, 4, 4), "up1": (2 * W, 8, 8), "up2": (W, 16, 16), "up3": (W, 32, 32)},
    (3, 32, 32): {"project": (4 * W, 4, 4), "up1": (2 * W, 8, 8), "up2": (W, 16, 16), "up3": (W, 32, 32)},
    (3, 64, 64): {
        "project": (8 * W, 4, 4),
        "up1": (4 * W, 8, 8),
        "up2": (2 * W, 16, 16),
        "up3": (W, 32, 32),
        "up4": (W, 64, 64),
    },
}
SHAPES = list(EXPECTED_POINTS)

# Every injection point of every shape, addressed by name, by index and by negative index.
INJECTIONS = [
    (shape, name, at)
    for shape, points in EXPECTED_POINTS.items()
    for i, name in enumerate(points)
    for at in (name, i, i - len(points))
]


def make_generator(shape):
    torch.manual_seed(0)
    return Generator(shape, z_dim=Z, width=W).eval()


@pytest.mark.parametrize("shape", SHAPES)
def test_generator_output_shape_and_range(shape):
    g = Generator(shape, z_dim=Z, width=W)
    with torch.no_grad():
        g.blocks["to_image"][0].weight *= 1000  # pre-activations far outside [-1, 1]: the range must still hold
    image = g(torch.randn(5, Z))
    assert image.shape == (5, *shape)
    assert image.min() >= -1 and image.max() <= 1
    assert image.std() > 0


@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 64, 64), (1, 16, 16), (28, 28)])
def test_generator_rejects_unsupported_shapes(shape):
    with pytest.raises(ModelError, match=r"\(1, 28, 28\).*\(3, 64, 64\)"):
        Generator(shape, z_dim=Z, width=W)


def test_generator_rejects_wrong_z():
    with pytest.raises(ModelError, match="z of shape"):
        make_generator((1, 28, 28))(torch.randn(4, Z + 1))


@pytest.mark.parametrize("shape", SHAPES)
def test_inject_points_and_feature_shapes(shape):
    g = make_generator(shape)
    expected = EXPECTED_POINTS[shape]
    assert g.inject_points() == list(expected)
    assert list(g.blocks) == [*expected, "to_image"]
    for i, (name, feature_shape) in enumerate(expected.items()):
        assert g.feature_shape(name) == feature_shape
        assert g.feature_shape(i) == feature_shape
        assert g.feature_shape(i - len(expected)) == feature_shape


@pytest.mark.parametrize("shape,name,at", INJECTIONS)
def test_hidden_measurement_is_applied_once_at_the_point_and_never_at_sampling(shape, name, at):
    g = make_generator(shape)
    z = torch.randn(3, Z)
    with torch.no_grad():
        clean = g(z)
        seen = []

        def zero(h):
            seen.append(h.shape)
            return torch.zeros_like(h)

        measured, hidden_map = g(z, hidden=(at, zero), return_hidden=True)
        again = g(z)

    assert g.resolve_inject_point(at) == name
    assert seen == [(3, *g.feature_shape(at))]
    assert tuple(seen[0][1:]) == EXPECTED_POINTS[shape][name]
    assert measured.shape == clean.shape
    assert not torch.allclose(measured, clean)
    assert torch.equal(hidden_map, torch.zeros(3, *EXPECTED_POINTS[shape][name]))
    assert torch.equal(again, clean)  # no measurement without `hidden`


def test_return_hidden_without_measurement_is_none():
    g = make_generator((1, 28, 28))
    z = torch.randn(2, Z)
    image, hidden_map = g(z, return_hidden=True)
    assert hidden_map is None
    assert torch.equal(image, g(z))


def test_hidden_measurement_feeds_the_later_blocks_and_passes_gradients_to_earlier_ones():
    g = make_generator((1, 28, 28)).train()
    mask = torch.ones(1, 4 * W, 7, 7)
    mask[..., :3, :] = 0
    image, hidden_map = g(torch.randn(4, Z), hidden=("project", lambda h: h * mask), return_hidden=True)
    assert torch.all(hidden_map[..., :3, :] == 0) and hidden_map[..., 3:, :].abs().sum() > 0
    image.sum().backward()
    project_grad = g.blocks["project"][0].weight.grad
    assert project_grad is not None and project_grad.abs().sum() > 0


def test_shape_changing_hidden_measurement_is_rejected():
    g = make_generator((1, 28, 28))
    with pytest.raises(ModelError, match=r"'up1'.*\(2, 16, 14, 14\).*\(2, 16, 7, 7\)"):
        g(torch.randn(2, Z), hidden=("up1", lambda h: h[..., ::2, ::2]))


@pytest.mark.parametrize("bad", ["nope", 99, -4, True, "to_image"])
def test_bad_inject_point_lists_the_valid_ones(bad):
    g = make_generator((1, 28, 28))
    with pytest.raises(ModelError, match=r"\['project', 'up1', 'up2'\].*\[-3, 2\]"):
        g.resolve_inject_point(bad)
    with pytest.raises(ModelError, match="'project', 'up1', 'up2'"):
        g.feature_shape(bad)
    with pytest.raises(ModelError, match="'project', 'up1', 'up2'"):
        g(torch.randn(2, Z), hidden=(bad, lambda h: h))


@pytest.mark.parametrize("shape", SHAPES)
def test_block_shapes_are_the_generators_without_building_it(shape):
    blocks = block_shapes(shape, W)
    g = make_generator(shape)
    assert list(blocks) == list(g.blocks) and blocks["to_image"] == shape
    assert {name: blocks[name] for name in g.inject_points()} == EXPECTED_POINTS[shape]
    for at in (*g.inject_points(), 0, -1):
        assert inject_point(blocks, at) == g.resolve_inject_point(at)
    with pytest.raises(ModelError, match="unknown injection point 'to_image'"):
        inject_point(blocks, "to_image")
    with pytest.raises(ModelError, match=r"\(1, 28, 28\).*got \(3, 28, 28\)"):
        block_shapes((3, 28, 28), W)


D_SHAPES = [(1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64), (1, 4, 4), (3, 8, 8), (1, 14, 14), (1, 2, 2)]


@pytest.mark.parametrize("shape", D_SHAPES)
def test_discriminator_logits_features_and_input_gradients(shape):
    torch.manual_seed(0)
    d = Discriminator(shape, width=W)
    x = torch.randn(4, *shape, requires_grad=True)
    logits = d(x)
    features = d.features(x)
    assert logits.shape == (4,)
    assert features.dim() == 2 and features.shape[0] == 4
    assert torch.allclose(logits, d.head(features).squeeze(1))
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "shape,n_features",
    # Downsampling stops below 8x8; patches that small still get one conv of width W.
    [((1, 28, 28), 2 * W * 7 * 7), ((3, 64, 64), 8 * W * 4 * 4), ((1, 8, 8), W * 4 * 4), ((1, 4, 4), W * 4 * 4)],
)
def test_discriminator_downsamples_while_at_least_8(shape, n_features):
    d = Discriminator(shape, width=W)
    assert d.features(torch.randn(2, *shape)).shape == (2, n_features)


@pytest.mark.parametrize("shape", [(5, 5), (1, 2, 3, 4), (), (1, 1, 1), (0,), (100,)])
def test_discriminator_rejects_bad_input_shapes(shape):
    with pytest.raises(ModelError):
        Discriminator(shape, width=W)


def test_discriminator_rejects_an_unknown_normalisation():
    with pytest.raises(ModelError, match="unknown normalisation 'group': use one of batch, layer, none"):
        Discriminator((1, 28, 28), width=W, norm="group")


def test_discriminator_rejects_batches_of_another_shape():
    d = Discriminator((1, 28, 28), width=W)
    with pytest.raises(ModelError, match=r"\(1, 28, 28\).*\(2, 1, 32, 32\)"):
        d(torch.randn(2, 1, 32, 32))


def test_init_weights_is_dcgan():
    torch.manual_seed(0)
    for model in (Generator((3, 64, 64), z_dim=Z, width=W), Discriminator((3, 64, 64), width=W)):
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert convs and norms
        weights = torch.cat([m.weight.flatten() for m in convs])
        assert abs(weights.mean()) < 2e-3 and abs(weights.std() - 0.02) < 2e-3
        gammas = torch.cat([m.weight for m in norms])
        assert abs(gammas.mean() - 1) < 0.01 and abs(gammas.std() - 0.02) < 0.01
        assert all(torch.all(m.bias == 0) for m in norms + convs if m.bias is not None)

    layer = nn.Linear(100, 100)
    init_weights(layer)
    assert abs(layer.weight.std() - 0.02) < 2e-3 and torch.all(layer.bias == 0)
