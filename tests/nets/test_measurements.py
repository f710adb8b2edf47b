"""Behaviour of the lossy measurements f_theta on images and on generator feature maps."""

from __future__ import annotations

import math
import re
from dataclasses import asdict

import pytest
import torch
from gansweep.config.schema import MeasurementConfig
from gansweep.nets.measurements import (
    DEFAULTS,
    REGISTRY,
    BlockPatch,
    BlockPixel,
    ConvolveNoise,
    ExtractPatch,
    GaussianProjection,
    KeepPatch,
    MeasurementError,
    build_measurement,
)

# patch=5 fits both 28x28 images and 7x7 feature maps.
SPECS = {
    "block_pixel": {"name": "block_pixel", "p": 0.5},
    "block_pixel_channel": {"name": "block_pixel", "p": 0.5, "unit": "channel"},
    "block_patch": {"name": "block_patch", "patch": 5},
    "keep_patch": {"name": "keep_patch", "patch": 5},
    "extract_patch": {"name": "extract_patch", "patch": 5},
    "block_patch_channel": {"name": "block_patch", "patch": 5, "unit": "channel"},
    "keep_patch_channel": {"name": "keep_patch", "patch": 5, "unit": "channel"},
    "extract_patch_channel": {"name": "extract_patch", "patch": 5, "unit": "channel"},
    "gaussian_projection": {"name": "gaussian_projection", "projections": 20},
    "convolve_noise": {"name": "convolve_noise", "blur_radius": 1.0, "noise_std": 0.1},
    "cascade": {"name": "cascade", "steps": [{"name": "block_pixel", "p": 0.3}, {"name": "block_patch", "patch": 5}]},
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def positive(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random values in [0.1, 1.1): never zero, so zeros in the output come from the measurement."""
    return torch.rand(*shape, generator=gen(seed)) + 0.1


def patch_region(h: int, w: int, corner: torch.Tensor, k: int) -> torch.Tensor:
    """(H, W) bool mask of the k x k patch at `corner`, built by slicing (the obvious way)."""
    region = torch.zeros(h, w, dtype=torch.bool)
    r, c = corner.tolist()
    region[r : r + k, c : c + k] = True
    return region


# ---- Block-Pixel ----


@pytest.mark.parametrize("p", [0.0, 0.3, 0.8, 1.0])
def test_block_pixel_element_drops_with_probability_p(p):
    y = BlockPixel(p=p)(torch.ones(256, 1, 28, 28), gen())
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.01  # 200k elements: the std of the fraction is ~0.001
    assert torch.all((y == 0) | (y == 1))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7, 1.0])
def test_block_pixel_channel_drops_whole_maps(p):
    x = positive(64, 32, 7, 7)
    y = BlockPixel(p=p, unit="channel")(x, gen())
    zeroed = (y == 0).flatten(2).all(dim=2)
    unchanged = (y == x).flatten(2).all(dim=2)
    assert torch.all(zeroed ^ unchanged)  # each (n, c) map: all zero or untouched, never partly
    assert abs(zeroed.float().mean().item() - p) < 0.035  # 2048 maps: std of the fraction <= 0.011
    if 0 < p < 1:
        assert len({tuple(row) for row in zeroed.tolist()}) > 50  # each sample draws its own channels


# ---- patches ----


@pytest.mark.parametrize("k", [1, 5, 14, 27, 28])
def test_block_patch_zeroes_exactly_one_square(k):
    m = BlockPatch(patch=k)
    x = torch.ones(16, 3, 28, 28)
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    zeros = y == 0
    assert torch.equal(zeros, zeros[:, :1].expand_as(zeros))  # the same place in every channel
    for n in range(len(x)):
        z = zeros[n, 0]
        assert z.sum().item() == k * k
        rows, cols = z.any(dim=1).nonzero().flatten(), z.any(dim=0).nonzero().flatten()
        # k*k zeros within a k-row, k-column bounding box: a contiguous k x k square.
        assert len(rows) == k and len(cols) == k and rows[-1] - rows[0] == k - 1 and cols[-1] - cols[0] == k - 1
        assert torch.equal(z, patch_region(28, 28, theta["corners"][n], k))


@pytest.mark.parametrize("k", [1, 6, 14, 28])
def test_keep_patch_keeps_only_the_patch(k):
    m = KeepPatch(patch=k)
    x = positive(16, 3, 28, 28)
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    assert y.shape == x.shape
    for n in range(len(x)):
        inside = patch_region(28, 28, theta["corners"][n], k).expand(3, 28, 28)
        assert torch.all(y[n][~inside] == 0)
        assert torch.equal(y[n][inside], x[n][inside])


def test_extract_patch_returns_the_slice_at_the_corner():
    k = 7
    m = ExtractPatch(patch=k)
    x = positive(64, 3, 28, 20)  # not square, to catch swapped rows and columns
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    assert y.shape == (64, 3, k, k)
    for n, (r, c) in enumerate(theta["corners"].tolist()):
        assert 0 <= r <= 28 - k and 0 <= c <= 20 - k
        assert torch.equal(y[n], x[n, :, r : r + k, c : c + k])
    assert len({tuple(c) for c in theta["corners"].tolist()}) > 10  # corners vary across samples


def test_patch_corners_cover_all_valid_positions():
    corners = BlockPatch(patch=3).sample_theta(torch.ones(2000, 1, 5, 5), gen())["corners"]
    assert corners.dtype == torch.int64 and corners.shape == (2000, 2)
    assert set(corners[:, 0].tolist()) == {0, 1, 2} and set(corners[:, 1].tolist()) == {0, 1, 2}


def test_patch_unit_channel_draws_a_corner_per_feature_map():
    m = BlockPatch(patch=3, unit="channel")
    corners = m.sample_theta(torch.ones(64, 8, 10, 12), gen())["corners"]
    assert corners.dtype == torch.int64 and corners.shape == (64, 8, 2)
    assert corners[..., 0].max() <= 7 and corners[..., 1].max() <= 9 and corners.min() >= 0
    # Different feature maps of one sample get different patches (for every sample, with 8 channels).
    assert all((corners[n] != corners[n, :1]).any() for n in range(64))


@pytest.mark.parametrize("cls", [BlockPatch, KeepPatch])
def test_patch_unit_channel_masks_each_feature_map_on_its_own(cls):
    k, x = 4, positive(16, 8, 12, 10)
    m = cls(patch=k, unit="channel")
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    lost = m.lost_mask(y, theta)
    assert y.shape == x.shape and lost.shape == x.shape
    for n in range(16):
        for ch in range(8):
            inside = patch_region(12, 10, theta["corners"][n, ch], k)
            kept = ~inside if cls is BlockPatch else inside
            assert torch.equal(y[n, ch][kept], x[n, ch][kept]) and torch.all(y[n, ch][~kept] == 0)
            assert torch.equal(lost[n, ch].bool(), ~kept)
    zeros = (y == 0).sum(dim=(2, 3))
    assert torch.all(zeros == (k * k if cls is BlockPatch else 12 * 10 - k * k))  # per feature map


def test_extract_patch_unit_channel_takes_each_feature_map_s_own_patch():
    k, x = 5, positive(16, 6, 14, 11)  # not square, to catch swapped rows and columns
    m = ExtractPatch(patch=k, unit="channel")
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    assert y.shape == (16, 6, k, k) and m.output_shape((6, 14, 11)) == (6, k, k)
    for n in range(16):
        for ch, (r, c) in enumerate(theta["corners"][n].tolist()):
            assert torch.equal(y[n, ch], x[n, ch, r : r + k, c : c + k])


@pytest.mark.parametrize("cls", [BlockPatch, KeepPatch, ExtractPatch])
def test_patch_unit_channel_is_seeded(cls):
    m, x = cls(patch=3, unit="channel"), positive(8, 4, 9, 9)
    assert torch.equal(m(x, gen(3)), m(x, gen(3)))
    assert not torch.equal(m(x, gen(3)), m(x, gen(4)))


def test_patch_unit_sample_is_the_default_with_the_same_draws():
    # The default draws exactly as before: N rows, then N columns, from the generator; one patch for all channels.
    k, x = 4, positive(32, 3, 10, 9)
    assert BlockPatch(k).unit == KeepPatch(k).unit == ExtractPatch(k).unit == "sample"
    g = gen(7)
    rows = torch.randint(0, 10 - k + 1, (32,), generator=g)
    cols = torch.randint(0, 9 - k + 1, (32,), generator=g)
    mask = torch.zeros(32, 1, 10, 9)
    for n in range(32):
        mask[n, 0, rows[n] : rows[n] + k, cols[n] : cols[n] + k] = 1
    assert torch.equal(BlockPatch(k)(x, gen(7)), x * (1 - mask))
    assert torch.equal(KeepPatch(k)(x, gen(7)), x * mask)
    assert torch.equal(BlockPatch(k, unit="sample")(x, gen(7)), x * (1 - mask))
    theta = BlockPatch(k).sample_theta(x, gen(7))
    assert torch.equal(theta["corners"], torch.stack([rows, cols], dim=1))
    assert torch.equal(BlockPatch(k).lost_mask(x, theta), mask)


def test_patch_unit_errors_name_the_key():
    for name in ("block_patch", "keep_patch", "extract_patch"):
        with pytest.raises(MeasurementError, match=re.escape("hidden.measurement.unit='pixel' is not one of sample")):
            build_measurement({"name": name, "unit": "pixel"}, key="hidden.measurement")
    with pytest.raises(MeasurementError, match=re.escape("measurement.unit='sample' is not one of element, channel")):
        build_measurement({"name": "block_pixel", "unit": "sample"})


def test_the_flat_config_unit_default_is_each_measurement_s_own():
    # Block-Pixel's unit defaults to "element", the patches' to "sample": the config's one "unit" key defaults to
    # None, which each reads as its own default.
    assert DEFAULTS["unit"] is None and MeasurementConfig().unit is None
    assert build_measurement(asdict(MeasurementConfig(name="block_pixel"))).unit == "element"
    assert build_measurement(asdict(MeasurementConfig(name="block_patch", patch=5))).unit == "sample"
    m = build_measurement(asdict(MeasurementConfig(name="keep_patch", patch=5, unit="channel")), "hidden.measurement")
    assert m.unit == "channel"


# ---- Gaussian projection ----


def _explicit_back_projection(x: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """(D/m) A^T A x with A drawn as a matrix, N(0, 1/D) entries, one per sample: the reference."""
    flat = x.flatten(1)
    d = flat.shape[1]
    a = torch.randn(len(x), m, d, generator=generator) / math.sqrt(d)
    return (d / m) * torch.bmm(a.transpose(1, 2), torch.bmm(a, flat.unsqueeze(2))).squeeze(2)


def test_gaussian_projection_has_the_law_of_the_matrix_back_projection():
    # One image measured 100,000 times: the mean is x and the covariance (||x||^2/m)(I + u u^T), as for the
    # back-projection through an explicit Gaussian matrix (checked alongside, so the formula is not taken on trust).
    m, n = 5, 100_000
    x = positive(1, 3, 2, 2)
    batch = x.expand(n, -1, -1, -1)
    flat = x.flatten()
    u = flat / flat.norm()
    covariance = flat.norm() ** 2 / m * (torch.eye(12) + torch.outer(u, u))
    measured = GaussianProjection(projections=m)(batch, gen(1))
    assert measured.shape == batch.shape
    for sample in (measured.flatten(1), _explicit_back_projection(batch, m, gen(2))):
        assert torch.allclose(sample.mean(0), flat, atol=0.03)
        assert torch.allclose(torch.cov(sample.T), covariance, atol=0.03)
    # Along x the output is ||x|| D/m times a chi-square over D, in both: the same quantiles.
    along = [(s.flatten(1) @ u) for s in (measured, _explicit_back_projection(batch, m, gen(3)))]
    levels = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    assert torch.allclose(torch.quantile(along[0], levels), torch.quantile(along[1], levels), rtol=0.03)


def test_gaussian_projection_tells_apart_images_of_the_same_norm():
    # Two image distributions with equal norms (a point mass each; y = Ax alone would be N(0, ||x||^2/D I) for
    # both): a linear D trained on their measurements tells them apart on fresh ones.
    m = GaussianProjection(projections=20)
    a = torch.zeros(1, 1, 28, 28)
    a[..., :14, :] = 0.5
    b = a.flip(-2)  # the same pixels upside down: the same norm
    assert torch.isclose(a.norm(), b.norm())
    torch.manual_seed(0)
    d = torch.nn.Linear(784, 1)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    labels = torch.cat([torch.ones(64), torch.zeros(64)])
    stream = gen(4)

    def measured() -> torch.Tensor:
        return m(torch.cat([a.expand(64, -1, -1, -1), b.expand(64, -1, -1, -1)]), stream).flatten(1)

    for _ in range(100):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(d(measured()).squeeze(1), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = ((d(measured()).squeeze(1) > 0).float() == labels).float().mean().item()
    assert accuracy > 0.95


def test_gaussian_projection_draws_m_plus_d_normals_per_sample():
    m = GaussianProjection(projections=30)
    x = positive(8, 3, 10, 10, seed=1)
    theta = m.sample_theta(x, gen())
    assert theta["scale"].shape == (8, 1) and theta["noise"].shape == x.shape
    # s = ||g||^2 with g ~ N(0, I_m / D): mean m / D.
    scales = m.sample_theta(positive(20_000, 3, 10, 10), gen(1))["scale"]
    assert abs(scales.mean().item() / (30 / 300) - 1) < 0.02
    assert not torch.allclose(theta["noise"][0], theta["noise"][1])  # a new draw per sample


def test_gaussian_projection_of_a_blank_map_is_blank_with_finite_gradients():
    x = torch.zeros(2, 4, 5, 5, requires_grad=True)
    y = GaussianProjection(projections=3)(x, gen())
    assert torch.equal(y, torch.zeros_like(y))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


# ---- Convolve + noise ----


def test_convolve_noise_without_blur_adds_noise_of_noise_std():
    x = positive(64, 1, 28, 28)
    y = ConvolveNoise(blur_radius=0.0, noise_std=0.2)(x, gen())
    assert abs((y - x).std().item() - 0.2) < 0.005
    assert abs((y - x).mean().item()) < 0.005


def test_convolve_noise_blur_keeps_constants_and_smooths():
    m = ConvolveNoise(blur_radius=1.5, noise_std=0.0)
    constant = torch.full((4, 2, 28, 28), 0.7)
    assert torch.allclose(m(constant, gen())[..., 3:-3, 3:-3], constant[..., 3:-3, 3:-3], atol=1e-6)
    assert torch.allclose(m(constant, gen()), constant, atol=1e-6)  # replicate padding: borders too
    noise = torch.randn(4, 2, 28, 28, generator=gen(3))
    blurred = m(noise, gen())
    assert blurred.shape == noise.shape
    assert blurred.var().item() < 0.3 * noise.var().item()
    assert m.kernel_1d.numel() == 2 * math.ceil(2 * 1.5) + 1
    assert abs(m.kernel_1d.sum().item() - 1) < 1e-6


def test_convolve_noise_has_nothing_trainable():
    m = ConvolveNoise(blur_radius=1.0, noise_std=0.1)
    assert not isinstance(m, torch.nn.Module)
    x = positive(2, 3, 8, 8).requires_grad_()
    m(x, gen()).sum().backward()
    tensors = [v for v in vars(m).values() if isinstance(v, torch.Tensor)]
    tensors += list(m._kernels.values())
    assert tensors and all(not t.requires_grad and t.grad is None for t in tensors)


def _tensors_in(value, seen=None):
    """Every tensor reachable from value's attributes, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    else:
        children = []
    return [t for child in children for t in _tensors_in(child, seen)]


@pytest.mark.parametrize("key", SPECS)
def test_no_trainable_parameter_anywhere(key):
    m = build_measurement(SPECS[key])
    x = positive(2, 3, 16, 16).requires_grad_()
    m(x, gen()).sum().backward()  # builds ConvolveNoise's per-device kernel cache too
    assert not isinstance(m, torch.nn.Module)
    tensors = _tensors_in(m)
    assert not any(isinstance(t, torch.nn.Parameter) or t.requires_grad for t in tensors)
    if key == "convolve_noise":
        assert tensors  # the kernel is there, as a plain tensor


@pytest.mark.parametrize("blur_radius", [1.0, 3.0])  # 3.0: a 13-wide kernel on a 7x7 map
def test_convolve_noise_on_feature_maps_keeps_the_shape(blur_radius):
    m = ConvolveNoise(blur_radius=blur_radius, noise_std=0.0)
    constant = torch.full((4, 64, 7, 7), -0.4)
    assert m(constant, gen()).shape == (4, 64, 7, 7)
    assert torch.allclose(m(constant, gen()), constant, atol=1e-6)
    h = torch.randn(4, 64, 7, 7, generator=gen(2))
    assert m(h, gen()).var().item() < 0.5 * h.var().item()
    assert ConvolveNoise(blur_radius=blur_radius, noise_std=0.1).output_shape((64, 7, 7)) == (64, 7, 7)


# ---- Cascade ----


def test_cascade_half_the_pixels_then_a_10x10_patch():
    m = build_measurement(
        {"name": "cascade", "steps": [{"name": "block_pixel", "p": 0.5}, {"name": "block_patch", "patch": 10}]}
    )
    x = positive(64, 1, 28, 28)
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    assert y.shape == (64, 1, 28, 28) and m.output_shape((1, 28, 28)) == (1, 28, 28)
    rest_zeros = []
    for n, corner in enumerate(theta["steps"][1]["corners"]):
        region = patch_region(28, 28, corner, 10)
        assert torch.all(y[n, 0][region] == 0)
        rest_zeros.append((y[n, 0][~region] == 0).float())
    assert abs(torch.cat(rest_zeros).mean().item() - 0.5) < 0.02  # 64 * 684 pixels outside the patches
    assert torch.equal(m.measure(x, m.sample_theta(x, gen(3))), m(x, gen(3)))


def test_cascade_block_pixel_then_block_patch():
    m = build_measurement(SPECS["cascade"])
    x = positive(32, 1, 28, 28)
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    assert y.shape == x.shape and m.output_shape((1, 28, 28)) == (1, 28, 28)
    pixel_mask, corners = theta["steps"][0]["mask"], theta["steps"][1]["corners"]
    for n in range(len(x)):
        region = patch_region(28, 28, corners[n], 5)
        assert torch.all(y[n, 0][region] == 0)
        assert torch.equal(y[n, 0][~region] == 0, pixel_mask[n, 0][~region] == 0)
    assert (y == 0).float().mean().item() > 0.3  # about 0.3 + 0.7 * 25/784


def test_cascade_chains_shapes():
    m = build_measurement(
        {"name": "cascade", "steps": [{"name": "extract_patch", "patch": 10}, {"name": "gaussian_projection", "projections": 7}]}
    )
    assert m.changes_shape and m.output_shape((3, 28, 28)) == (3, 10, 10)
    x = positive(4, 3, 28, 28)
    assert m(x, gen()).shape == (4, 3, 10, 10)
    theta = m.sample_theta(x, gen())  # each step's theta fits that step's input: the patch, not the image
    assert theta["steps"][1]["noise"].shape == (4, 3, 10, 10)
    assert torch.equal(m.measure(x, theta), m(x, gen()))


# ---- properties shared by all measurements ----


@pytest.mark.parametrize("key", SPECS)
def test_gradients_flow_to_x(key):
    m = build_measurement(SPECS[key])
    x = positive(4, 3, 16, 16).requires_grad_()
    theta = m.sample_theta(x, gen())
    y = m.measure(x, theta)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    if key in ("block_pixel", "block_pixel_channel", "block_patch", "keep_patch", "cascade", "block_patch_channel",
               "keep_patch_channel"):
        # A mask: gradient one exactly where x was kept, zero where it was dropped.
        assert torch.equal(x.grad, (y != 0).float())
    if key == "extract_patch":
        for n, corner in enumerate(theta["corners"]):
            assert torch.equal(x.grad[n], patch_region(16, 16, corner, 5).float().expand(3, 16, 16))
    if key == "extract_patch_channel":
        for n, ch in ((n, ch) for n in range(4) for ch in range(3)):
            assert torch.equal(x.grad[n, ch], patch_region(16, 16, theta["corners"][n, ch], 5).float())


@pytest.mark.parametrize("key", SPECS)
def test_same_seed_same_draws_other_seed_other_draws(key):
    m = build_measurement(SPECS[key])
    x = positive(16, 3, 16, 16)

    def flat(theta):
        return [t for s in theta.get("steps", [theta]) for t in s.values()]

    a, b, c = (flat(m.sample_theta(x, gen(seed))) for seed in (0, 0, 1))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    assert torch.equal(m(x, gen(0)), m(x, gen(0)))
    assert not torch.equal(m(x, gen(0)), m(x, gen(1)))
    # __call__ is measure(x, sample_theta(x, g)), draw for draw.
    assert torch.equal(m(x, gen(5)), m.measure(x, m.sample_theta(x, gen(5))))


DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("key", SPECS)
@pytest.mark.parametrize("device", DEVICES)
def test_theta_lives_on_x_device(key, device):
    # "meta" tensors have a device but no data: a theta created without device=x.device lands on the CPU.
    m = build_measurement(SPECS[key])
    x = torch.ones(4, 3, 16, 16, device=device)
    generator = torch.Generator(device if device == "cuda" else "cpu").manual_seed(0)
    theta = m.sample_theta(x, generator)
    tensors = [t for step in theta.get("steps", [theta]) for t in step.values()]
    assert tensors and all(t.device == x.device for t in tensors)
    assert m.measure(x, theta).device == x.device


@pytest.mark.parametrize("key", SPECS)
def test_draws_come_from_the_given_generator_only(key):
    m = build_measurement(SPECS[key])
    x = positive(8, 3, 16, 16)
    with torch.random.fork_rng():  # the global seed is put back afterwards
        torch.manual_seed(123)
        a = m(x, gen(0))
        torch.manual_seed(456)
        b = m(x, gen(0))
        assert torch.equal(a, b)  # the global seed changes nothing
        untouched = torch.get_rng_state()
        m(x, gen(0))
        assert torch.equal(torch.get_rng_state(), untouched)  # nor is the global generator advanced


@pytest.mark.parametrize("key", SPECS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (64, 7, 7)])
def test_output_shape_matches_output(key, shape):
    m = build_measurement(SPECS[key])
    y = m(positive(3, *shape), gen())
    assert tuple(y.shape[1:]) == m.output_shape(shape)
    assert m.changes_shape == (tuple(y.shape[1:]) != shape)


@pytest.mark.parametrize("key", [k for k in SPECS if k != "gaussian_projection"])  # any shape: below
def test_feature_maps(key):
    m = build_measurement(SPECS[key])
    h = positive(8, 64, 7, 7).requires_grad_()
    y = m(h, gen())
    expected = (8, 64, 5, 5) if key.startswith("extract_patch") else (8, 64, 7, 7)
    assert y.shape == expected and torch.isfinite(y).all()
    y.sum().backward()
    assert h.grad.abs().sum() > 0


# ---- building and validation ----


def test_build_from_config_dict():
    assert build_measurement(None) is None
    assert build_measurement({"name": "none"}) is None
    assert build_measurement({"name": "none", "p": 5.0}) is None  # unused keys of "none" are not checked
    assert build_measurement(asdict(MeasurementConfig())) is None  # name "none"
    m = build_measurement(asdict(MeasurementConfig(name="block_patch", patch=9)))  # unused keys ignored
    assert isinstance(m, BlockPatch) and m.patch == 9
    m = build_measurement(asdict(MeasurementConfig(name="block_pixel", p=0.25, unit="channel")))
    assert (m.p, m.unit) == (0.25, "channel")


@pytest.mark.parametrize(
    "measurement",
    [BlockPixel(0.5), BlockPixel(0.5, unit="channel"), BlockPatch(5), KeepPatch(5), BlockPatch(5, unit="channel"),
     KeepPatch(5, unit="channel")],
    ids=repr,
)
def test_lost_mask_marks_exactly_the_destroyed_elements(measurement):
    x = torch.rand(16, 3, 12, 12) + 0.1  # no element is zero before the measurement
    theta = measurement.sample_theta(x, torch.Generator().manual_seed(0))
    y = measurement.measure(x, theta)
    lost = measurement.lost_mask(y, theta).expand_as(y).bool()
    assert lost.any() and (~lost).any()
    assert torch.all(y[lost] == 0) and torch.equal(y[~lost], x[~lost])


def test_lost_mask_is_none_when_no_element_is_lost():
    x = torch.rand(2, 1, 8, 8)
    measurement = ConvolveNoise(1.0, 0.1)
    assert measurement.lost_mask(x, measurement.sample_theta(x, torch.Generator())) is None


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"name": "block_pixel", "p": 1.5}, ["measurement.p=1.5 is outside [0, 1]"]),
        ({"name": "block_pixel", "p": -0.1}, ["measurement.p=-0.1 is outside [0, 1]"]),
        ({"name": "block_pixel", "p": float("nan")}, ["measurement.p=nan"]),
        ({"name": "block_pixel", "p": "half"}, ["measurement.p='half' must be a number"]),
        ({"name": "block_pixel", "unit": "pixel"}, ["measurement.unit='pixel' is not one of element, channel"]),
        ({"name": "block_patch", "patch": 0}, ["measurement.patch=0 must be >= 1"]),
        ({"name": "keep_patch", "unit": "element"}, ["measurement.unit='element' is not one of sample, channel"]),
        ({"name": "block_patch", "patch": 4.5}, ["measurement.patch=4.5 must be an integer"]),
        ({"name": "extract_patch", "patch": -2}, ["measurement.patch=-2"]),
        ({"name": "gaussian_projection", "projections": 0}, ["measurement.projections=0 must be >= 1"]),
        ({"name": "convolve_noise", "blur_radius": -1}, ["measurement.blur_radius=-1 must be >= 0"]),
        ({"name": "convolve_noise", "noise_std": -1}, ["measurement.noise_std=-1 must be >= 0"]),
        ({"name": "blur"}, ["measurement.name='blur' is not one of none, block_pixel", "cascade"]),
        ({"name": "cascade", "steps": []}, ["measurement.name=cascade needs a non-empty measurement.steps"]),
        ({"name": "cascade", "steps": [{"name": "none"}]}, ["measurement.steps[0]", "none"]),
        ({"name": "cascade", "steps": [{"name": "block_pixel"}, {"name": "none"}]}, ["measurement.steps[1]", "none"]),
        ({"name": "cascade", "steps": [{"name": "block_pixel", "p": 2}]}, ["measurement.steps[0].p=2 is outside"]),
        ({"name": "cascade", "steps": ["block_pixel"]}, ["measurement.steps[0] must be a mapping"]),
    ],
)
def test_constructor_errors_name_the_parameter(spec, expected):
    with pytest.raises(MeasurementError) as err:
        build_measurement(spec)
    for text in expected:
        assert text in str(err.value)


def test_errors_name_the_config_key_the_caller_gives():
    with pytest.raises(MeasurementError, match=re.escape("hidden.measurement.p=1.5 is outside [0, 1]")):
        build_measurement({"name": "block_pixel", "p": 1.5}, key="hidden.measurement")
    hidden = build_measurement({"name": "block_patch", "patch": 5}, key="hidden.measurement")
    with pytest.raises(MeasurementError, match=re.escape("hidden.measurement.patch=5 is larger than the 4x4 map")):
        hidden.validate((8, 4, 4))
    cascade = build_measurement({"name": "cascade", "steps": [{"name": "extract_patch", "patch": 14},
                                                              {"name": "block_patch", "patch": 20}]})
    with pytest.raises(MeasurementError, match=re.escape("measurement.steps[1].patch=20 is larger than the 14x14")):
        cascade.output_shape((1, 28, 28))
    with pytest.raises(MeasurementError, match=re.escape("block_pixel.p=2 is outside [0, 1]")):
        BlockPixel(p=2)  # built directly: named by the measurement


def test_parameters_are_declared_once_with_their_defaults():
    # Positional in declaration order, or by name; left out: the declared default.
    assert (BlockPixel(0.25).p, BlockPixel(0.25).unit) == (0.25, BlockPixel.params["unit"].default)
    assert ConvolveNoise(2.0, noise_std=0.0).blur_radius == 2.0
    assert BlockPatch().patch == BlockPatch.params["patch"].default
    assert build_measurement({"name": "keep_patch"}).patch == 14  # a spec's missing keys take the declared defaults
    with pytest.raises(TypeError, match="radius"):
        ConvolveNoise(radius=1.0)
    with pytest.raises(TypeError):
        BlockPatch(5, "sample", 6)
    # The config's defaults are the declared ones, and it has a key for every declared parameter.
    assert set(DEFAULTS) == set(asdict(MeasurementConfig())) - {"name", "steps"}
    assert all(getattr(MeasurementConfig(), param) == default for param, default in DEFAULTS.items())
    assert set(REGISTRY) == {"block_pixel", "block_patch", "keep_patch", "extract_patch", "gaussian_projection",
                             "convolve_noise", "cascade"}


@pytest.mark.parametrize("name", ["block_patch", "keep_patch", "extract_patch"])
def test_patch_larger_than_the_map(name):
    m = build_measurement({"name": name, "patch": 40})
    for check in (lambda: m.output_shape((1, 28, 28)), lambda: m(torch.ones(2, 1, 28, 28), gen())):
        with pytest.raises(MeasurementError) as err:
            check()
        assert all(text in str(err.value) for text in ("patch=40", "28x28", "[1, 28]"))
    m = build_measurement({"name": name, "patch": 5})  # fits the image, not a 4x4 feature map
    with pytest.raises(MeasurementError, match="patch=5.*4x4"):
        m(torch.ones(2, 8, 4, 4), gen())


@pytest.mark.parametrize("key", ["block_pixel_channel", "block_patch", "keep_patch", "extract_patch", "convolve_noise"])
def test_spatial_measurements_need_4d(key):
    m = build_measurement(SPECS[key])
    with pytest.raises(MeasurementError, match=r"\(N, C, H, W\).*\(784,\)"):
        m(torch.ones(2, 784), gen())
    with pytest.raises(MeasurementError):
        m.output_shape((28, 28))


def test_flat_inputs_where_they_make_sense():
    x = torch.ones(4, 784)
    assert GaussianProjection(projections=5)(x, gen()).shape == (4, 784)
    assert BlockPixel(p=0.5)(x, gen()).shape == (4, 784)
    with pytest.raises(MeasurementError, match="gaussian_projection"):
        GaussianProjection().output_shape(())
