"""Conditional GANs (the lecture notes: labels one-hot, concatenated to z and to D's input): shapes, that G learns to
use the label, the per-class samples in TensorBoard, and clear errors."""


import pytest
import torch
from conftest import _cli, _events, _train, needs_fashion
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.gan.build import build_gan
from gansweep.nets.models import (
    Discriminator,
    Generator,
    ModelError,
    class_cycle,
    with_labels,
)
from gansweep.run.run_dir import load_sampler, read_run_record, resolve_checkpoint
from gansweep.tools.invert import invert

CONDITIONAL = ["mode=clean", "measurement.name=none", "model.conditional=true", "model.g_width=8", "model.d_width=8"]


def test_labels_are_concatenated_one_hot_to_vectors_and_as_constant_channels_to_images():
    labels = torch.tensor([2, 0])
    vectors = with_labels(torch.zeros(2, 5), labels, 3)
    assert vectors.shape == (2, 8) and vectors[:, 5:].tolist() == [[0, 0, 1], [1, 0, 0]]
    images = with_labels(torch.zeros(2, 1, 4, 4), labels, 3)
    assert images.shape == (2, 4, 4, 4)
    assert torch.equal(images[0, 3], torch.ones(4, 4)) and torch.equal(images[0, 1:3], torch.zeros(2, 4, 4))
    assert torch.equal(with_labels(torch.ones(2, 5), None, 0), torch.ones(2, 5))  # unconditional: unchanged


def test_conditional_nets_take_labels_and_refuse_to_run_without():
    generator = Generator((1, 28, 28), z_dim=16, width=8, num_classes=10)
    images = generator(torch.randn(4, 16), labels=torch.arange(4))
    assert images.shape == (4, 1, 28, 28)
    for shape in ((1, 28, 28), (1, 5, 5)):  # images, and extracted patches
        discriminator = Discriminator(shape, width=8, num_classes=10)
        assert discriminator(torch.rand(4, *shape), labels=torch.arange(4)).shape == (4,)
    with pytest.raises(ModelError, match="one class label per sample: 4 samples, labels none"):
        generator(torch.randn(4, 16))
    with pytest.raises(ModelError, match=r"labels \(3,\)"):
        Discriminator((1, 28, 28), width=8, num_classes=10)(torch.rand(4, 1, 28, 28), labels=torch.arange(3))


def test_every_class_equally_often_in_evaluations():
    assert class_cycle(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0] and class_cycle(5, 0) is None


def test_a_conditional_gan_learns_to_draw_the_class_it_is_asked_for():
    # Class 0: dark images, class 1: bright ones. The label is the only thing that tells G which to draw.
    torch.manual_seed(0)
    cfg = load_config(None, CONDITIONAL + ["model.z_dim=8", "train.lr_g=1e-3", "train.lr_d=1e-3"])
    gan = build_gan(cfg, (1, 28, 28), num_classes=2)
    for _ in range(60):
        labels = torch.randint(2, (32,))
        reals = (0.15 + 0.7 * labels.float())[:, None, None, None] + 0.05 * torch.randn(32, 1, 28, 28)
        figures = gan.step([reals.clamp(0, 1)], [labels])
    assert all(torch.isfinite(v) for v in figures.values())
    z = torch.randn(200, 8)
    dark, bright = (float(gan.sampler.images(z, torch.full((200,), c)).mean()) for c in (0, 1))
    assert bright - dark > 0.4, (dark, bright)


def test_a_conditional_gan_needs_labelled_classes():
    cfg = load_config(None, CONDITIONAL)
    with pytest.raises(ConfigError, match="model.conditional needs every training image labelled.*has 0 classes"):
        build_gan(cfg, (1, 28, 28))


@pytest.mark.parametrize("other", ["prior.name=kde", "acl.variant=gan"])
def test_conditional_is_refused_with_kde_and_acl(other):
    with pytest.raises(ConfigError, match=f"model.conditional with {other}"):
        load_config(None, CONDITIONAL + [other])


def test_unlabelled_data_exit_2(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i in range(8):
        Image.new("L", (28, 28), i).save(tmp_path / "images" / f"{i}.png")
    result = _cli("train", "--set", "data.name=image_folder", "--set", f"data.root={tmp_path / 'images'}",
                  "--set", "train.batch_size=4", *[arg for item in CONDITIONAL for arg in ("--set", item)],
                  "--set", "data.validation_size=2", "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "model.conditional needs every training image labelled" in result.stderr


@needs_fashion
@pytest.mark.slow  # a minute on Ray, on 2 cores; the parts are tested in-process above (run with -m slow)
def test_a_conditional_run_shows_samples_per_class_and_evaluates_every_class(tmp_path):
    run = tmp_path / "run"
    _train(run, *CONDITIONAL, "data.limit=256", "train.batch_size=32", "train.steps=4", "train.log_every=2",
           "train.image_every=4", "train.checkpoint_every=4", cache=tmp_path / "cache")
    assert read_run_record(run).num_classes == 10
    events = _events(run)
    assert {"samples/per_class", "samples/fixed_z"} <= set(events.Tags()["images"])
    per_class = events.Images("samples/per_class")[-1]
    assert per_class.height > 9 * per_class.width / 8  # ten rows of eight

    sampler, _, step = load_sampler(*resolve_checkpoint(run))
    assert sampler.num_classes == 10 and step == 4
    assert sampler.draw(20, seed=0).shape == (20, 1, 28, 28)
    with pytest.raises(ConfigError, match="conditional GAN"):
        invert(run, tmp_path / "unused.npy", tmp_path / "invert")
