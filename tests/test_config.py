"""The config: typed keys, YAML and --set overrides, and clear errors before any Ray work."""

import re
import textwrap
from pathlib import Path

import pytest
from conftest import _cli
from gansweep.config.checks import check_shapes, validate
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.config.parsing import load_yaml, set_key
from gansweep.config.schema import Config, all_keys

# A "billion laughs" YAML list: each anchor lists nine aliases of the one before, 9**9 strings once expanded, 400
# bytes as written.
BOMB = "[" + ", ".join(f"&{name} [{', '.join([f'*{prev}' if prev else 'lol'] * 9)}]"
                       for prev, name in zip(["", *"abcdefgh"], "abcdefghi")) + "]"
REFUSED = "its YAML aliases expand past 10,000 nodes (an anchor bomb?); refused"


def test_defaults_and_overrides_are_typed(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("mode: ignore\nmeasurement: {name: block_patch, patch: 7}\ntrain: {steps: 50}\n")
    cfg = load_config(path, ["train.batch_size=32", "measurement.p=0.25", "train.use_gpu=false", "data.limit=300"])
    assert cfg.mode == "ignore"
    assert cfg.measurement.name == "block_patch" and cfg.measurement.patch == 7
    assert cfg.train.steps == 50 and isinstance(cfg.train.steps, int)
    assert cfg.train.batch_size == 32 and isinstance(cfg.train.batch_size, int)
    assert cfg.measurement.p == 0.25 and isinstance(cfg.measurement.p, float)
    assert cfg.train.use_gpu is False
    assert cfg.data.limit == 300
    assert cfg.train.lr_g == Config().train.lr_g  # untouched keys keep their defaults


def test_every_issue_key_exists():
    keys = set(all_keys())
    for key in (
        "data.name data.root data.limit data.validation_size data.validation_seed mode measurement.name measurement.p "
        "measurement.patch hidden.inject_at hidden.measurement.name hidden.measurement.p hidden.measurement.unit "
        "hidden.fake_measurement train.steps train.batch_size train.workers train.use_gpu train.seed train.ema "
        "train.ema_start eval.every eval.n_samples eval.features "
        "unmeasure.inpaint"
    ).split():
        assert key in keys


def _check_shapes(cfg, *args, **kwargs):
    check_shapes(cfg, validate(cfg), *args, **kwargs)  # the measurements as the driver has them: validate's


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.step=5"], "did you mean 'train.steps'"),
        (["measurment.p=0.5"], "did you mean 'measurement.p'"),
        (["train.steps=many"], "train.steps must be an integer"),
        (["train.steps=0"], "train.steps=0 must be >= 1"),
        (["data.validation_size=1"], "data.validation_size=1 must be 0 (none: select on the test split) or >= 2"),
        (["measurement.p=abc"], "measurement.p must be a number"),
        (["mode=dream"], "mode='dream' is not one of"),
        (["data.name=cifar"], "data.name='cifar' is not one of"),
        (["measurement.name=blur"], "measurement.name='blur' is not one of"),
        (["train.batch_size=10", "train.workers=3"], "must be divisible by train.workers"),
        (["hidden.inject_at=up1"], "hidden.inject_at and hidden.measurement.name go together"),
        (["eval.every=-1"], "eval.every=-1 must be >= 0 (0 turns it off)"),
        (["eval.cheap_samples=1"], "eval.cheap_samples=1 must be >= 2"),
        (["eval.n_samples=1"], "eval.n_samples=1 must be 0 (skip) or >= 2"),
        (["eval.features=[classifier, clip]"], "eval.features: 'clip' is not one of classifier, inception"),
        (["eval.features=[inception]"], "eval.features=['inception'] must include classifier"),
        (["eval.features=[classifier, classifier]"], "names a network twice"),
        (["eval.features=inception"], "eval.features must be a list"),
        (["mode=clean", "hidden.inject_at=up1", "hidden.measurement.name=block_pixel"], "only in mode=ambient"),
        (["mode=ambient", "measurement.name=none"], "mode=ambient needs a measurement"),
        (["hidden.fake_measurement=paper"], "hidden.fake_measurement='paper' is not one of both, hidden_only"),
        (["hidden.fake_measurement=hidden_only"], "hidden.fake_measurement=hidden_only needs hidden.inject_at"),
        (["measurement.name=extract_patch", "hidden.inject_at=up1", "hidden.measurement.name=block_pixel",
          "hidden.fake_measurement=hidden_only"],
         "hidden.fake_measurement=hidden_only with measurement.name=extract_patch: D would compare measured reals of "
         "another shape with unmeasured fakes"),
        (["mode=ignore", "measurement.name=none"], "mode=ignore trains on lossy data"),
        (["measurement.name=cascade"], "needs a non-empty measurement.steps"),
        (["train.use_gpu=maybe"], "train.use_gpu must be true or false"),
        (["train"], "--set expects KEY=VALUE"),
        # measurement parameters, as each measurement declares them
        (["measurement.p=1.5"], "measurement.p=1.5 is outside [0, 1]"),
        (["measurement.unit=pixel"], "measurement.unit='pixel' is not one of element, channel"),
        (["measurement.name=block_patch", "measurement.patch=0"], "measurement.patch=0 must be >= 1"),
        (["hidden.inject_at=up1", "hidden.measurement.name=block_pixel", "hidden.measurement.p=-1"],
         "hidden.measurement.p=-1.0 is outside [0, 1]"),
        (["measurement.name=cascade", "measurement.steps=[{name: block_pixel}, {name: keep_patch, patch: 0}]"],
         "measurement.steps[1].patch=0 must be >= 1"),
        (["measurement.name=cascade", "measurement.steps=[{name: block_pixel, pp: 0.5}]"],
         "unknown config key 'measurement.steps[0].pp'"),
        (["measurement.name=cascade", "measurement.steps=[block_pixel]"], "measurement.steps[0] must be a mapping"),
        (["mode=unmeasure", "measurement.name=extract_patch"], "measurement.name=extract_patch has no restoration"),
        # names listed by the modules that implement them
        (["train.ema=1"], "train.ema=1.0 must be in [0, 1) (the EMA's decay; 0 turns it off)"),
        (["train.ema=-0.5"], "train.ema=-0.5 must be in [0, 1)"),
        (["train.ema_start=-1"], "train.ema_start=-1 must be >= 0"),
        (["train.loss=wgan"], "train.loss='wgan' is not one of non_saturating, minimax, wgan_gp, hinge"),
        (["model.d_norm=group"], "model.d_norm='group' is not one of batch, layer, none"),
        (["mode=unmeasure", "unmeasure.inpaint=fast"], "unmeasure.inpaint='fast' is not one of telea, navier_stokes"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


# --- check_shapes: the rules that need the images' shape and classes, not the images ---------------------


@pytest.mark.parametrize("overrides, shape, classes, n_images, message", [
    ([], (3, 40, 40), 10, None, "data: Generator supports image shapes (1, 28, 28)"),
    ([], (3, 40, 40), 10, None, "got (3, 40, 40); resize the images with data.image_size (28, 32 or 64)"),
    (["measurement.name=block_patch", "measurement.patch=40"], (1, 28, 28), 10, None,
     "measurement.patch=40 is larger than the 28x28 map; allowed [1, 28]"),
    (["mode=ignore", "measurement.name=keep_patch", "measurement.patch=29"], (1, 28, 28), 10, None,
     "measurement.patch=29 is larger than the 28x28 map"),  # the lossy set is measured in mode ignore too
    (["mode=ignore", "measurement.name=extract_patch"], (1, 28, 28), 10, None,
     "mode=ignore with measurement.name=extract_patch: the lossy data are not images of shape (1, 28, 28)"),
    (["hidden.inject_at=nowhere", "hidden.measurement.name=block_pixel"], (1, 28, 28), 10, None,
     "hidden.inject_at: unknown injection point 'nowhere': use one of ['project', 'up1', 'up2']"),
    (["hidden.inject_at=up3", "hidden.measurement.name=block_pixel"], (1, 28, 28), 10, None,
     "hidden.inject_at: unknown injection point 'up3'"),  # 28x28 images: G has no up3 (32x32 ones have)
    (["hidden.inject_at=up1", "hidden.measurement.name=extract_patch", "hidden.measurement.patch=3"], (1, 28, 28), 10,
     None, "hidden.measurement.name=extract_patch changes the feature map's shape"),
    (["hidden.inject_at=0", "hidden.measurement.name=block_patch", "hidden.measurement.patch=8"], (1, 28, 28), 10,
     None, "hidden.measurement.patch=8 is larger than the 7x7 map"),
    (["model.conditional=true"], (1, 28, 28), 0, None, "model.conditional needs every training image labelled"),
    (["model.conditional=true"], (1, 28, 28), 1, None, "has 1 classes"),
    (["train.batch_size=64", "train.workers=2"], (1, 28, 28), 10, 63, "fewer than one batch of 32 per worker"),
])
def test_check_shapes_refuses_what_cannot_run_on_that_data(overrides, shape, classes, n_images, message):
    cfg = load_config(None, overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        _check_shapes(cfg, shape, classes, n_images)


def test_check_shapes_passes_what_can_run():
    _check_shapes(load_config(None, []), (1, 28, 28), 10, 64)
    _check_shapes(load_config(None, ["measurement.name=extract_patch", "measurement.patch=32"]), (3, 32, 32), 0)
    # mode clean measures nothing, so the patch does not meet the images
    _check_shapes(load_config(None, ["mode=clean", "measurement.name=block_patch", "measurement.patch=40"]),
                 (1, 28, 28), 10)
    _check_shapes(load_config(None, ["hidden.inject_at=up3", "hidden.measurement.name=block_patch"]),
                  (3, 32, 32), 0)
    _check_shapes(load_config(None, ["hidden.inject_at=up1", "hidden.measurement.name=block_pixel",
                                     "hidden.fake_measurement=hidden_only"]), (1, 28, 28), 10)
    with pytest.raises(ConfigError, match="and unlabelled images"):
        _check_shapes((load_config(None, ["model.conditional=true"])), (1, 28, 28), 10, unlabelled=True)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--set", "trian.steps=5"], "unknown config key 'trian.steps'; did you mean 'train.steps'?"),
        (["train", "--set", "prior.name=kde", "--set", "prior.bandwidth=-0.1"], "prior.bandwidth=-0.1 must be > 0"),
        (["train", "--set", "reversal.mmd_threshold=-1"], "reversal.mmd_threshold=-1.0 must be >= 0"),
        (["train", "--set", "prior.name=flow"], "prior.name='flow' is not one of normal, kde"),
        (["train", "--set", "acl.variant=vae"], "acl.variant='vae' is not one of none, gan, ae"),
        (["train", "--set", "measurement.p=1.5"], "measurement.p=1.5 is outside [0, 1]"),  # as the config loads
        (
            ["train", "--set", "measurement.name=block_patch", "--set", "measurement.patch=40", "--set", "data.limit=128"],
            "measurement.patch=40 is larger than the 28x28 map",
        ),
        (
            [
                "train",
                "--set", "data.limit=128",
                "--set", "hidden.inject_at=project",
                "--set", "hidden.measurement.name=block_patch",
                "--set", "hidden.measurement.patch=14",
            ],
            "hidden.measurement.patch=14 is larger than the 7x7 map",
        ),
        (["train", "--set", "hidden.inject_at=nowhere", "--set", "hidden.measurement.name=block_pixel",
          "--set", "data.limit=128"], "hidden.inject_at: "),
        (["train", "--set", "mode=ignore", "--set", "measurement.name=extract_patch", "--set", "data.limit=128"],
         "mode=ignore with measurement.name=extract_patch"),
        (["train", "--set", "hidden.fake_measurement=hidden_only"],
         "hidden.fake_measurement=hidden_only needs hidden.inject_at"),
        (["train", "--set", "data.name=mnist", "--set", "data.root=/no/such/dir"], "/no/such/dir"),
        (["train", "--set", "data.limit=16", "--set", "train.batch_size=64"], "fewer than one batch"),
    ],
)
def test_cli_bad_input_exits_2_before_ray(tmp_path, args, message):
    result = _cli(*args, "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not (tmp_path / "run").exists()  # nothing was started or written


def test_cli_data_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path))
    unknown = _cli("data", "prepare", "cifar", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown data source 'cifar'" in unknown.stderr
    missing = _cli("data", "prepare", "mnist", "--root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere does not exist" in missing.stderr
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        ready = _cli("data", "prepare", "fashion_mnist", cwd=tmp_path)
        assert ready.returncode == 0, ready.stderr
        assert (tmp_path / "torchvision" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_cli_unsupported_image_size_names_the_fix(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40), (i, i, i)).save(tmp_path / "images" / f"{i}.png")
    result = _cli("train", "--set", "data.name=image_folder", "--set", f"data.root={tmp_path / 'images'}",
                  "--set", "train.batch_size=2", "--set", "data.validation_size=2", cwd=tmp_path)
    assert result.returncode == 2
    assert "got (3, 40, 40)" in result.stderr and "data.image_size" in result.stderr


# --- YAML refused while it loads, and values too large to quote whole --------------------------------------------


@pytest.mark.parametrize("text", [
    "measurement:\n  name: cascade\n  steps: BOMB\n",  # walked step by step: hung for minutes
    "measurement:\n  p: BOMB\n",  # quoted in "must be a number": a MemoryError
    "lol: BOMB\n",
])
def test_an_anchor_bomb_in_a_config_file_is_refused_while_loading(tmp_path, text):
    path = tmp_path / "bomb.yaml"
    path.write_text(text.replace("BOMB", BOMB))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"config file {path}: {REFUSED}"


def test_an_anchor_bomb_in_set_is_refused_naming_a_prefix_of_the_override():
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"measurement.steps={BOMB}"])
    message = str(info.value)
    assert message.startswith("--set 'measurement.steps=[&a [lol, lol,") and message.endswith(REFUSED), message
    assert len(message) < 300


def test_aliases_may_add_up_to_ten_thousand_nodes():
    anchor = "[" + ", ".join(["x"] * 99) + "]"  # a list of 99 items: 100 nodes

    def document(aliases: int) -> str:
        return f"a: &a {anchor}\nb: [{', '.join(['*a'] * aliases)}]\n"

    assert len(load_yaml(document(100), "doc")["b"]) == 100  # 100 copies of 100 nodes
    with pytest.raises(ConfigError, match=re.escape(f"doc: {REFUSED}")):
        load_yaml(document(101), "doc")


@pytest.mark.parametrize("text, message", [
    ("a: &a [1, *a]\n", REFUSED),  # an alias inside its own anchor expands without end
    ("[" * 600 + "]" * 600, "YAML nested too deeply; refused"),  # past Python's recursion limit
])
def test_endless_and_deep_yaml_is_refused(text, message):
    with pytest.raises(ConfigError, match=re.escape(f"doc: {message}")):
        load_yaml(text, "doc")


def test_a_config_with_anchors_aliases_and_merge_keys_loads(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(textwrap.dedent("""\
        measurement:
          name: cascade
          steps:
            - &pixel {name: block_pixel, p: 0.3}
            - {<<: *pixel, p: 0.6}
        hidden:
          inject_at: up1
          measurement: *pixel
    """))
    cfg = load_config(path)
    assert cfg.measurement.steps == [{"name": "block_pixel", "p": 0.3}, {"name": "block_pixel", "p": 0.6}]
    assert cfg.hidden.measurement.name == "block_pixel" and cfg.hidden.measurement.p == 0.3


@pytest.mark.parametrize("key, value, start", [
    ("train.steps", "x" * 10**7, "train.steps must be an integer, got 'xxxx"),  # 10 MB
    ("train.use_gpu", list(range(10**6)), "train.use_gpu must be true or false, got [0, 1, 2,"),
    ("train.beta1", [[list(range(1000))] * 1000], "train.beta1 must be a number, got [[[0, 1, 2,"),
    ("mode", "m" * 10**7, "mode='mmmm"),  # in validate's "is not one of"
])
def test_a_huge_value_is_quoted_as_a_bounded_prefix(key, value, start):
    cfg = Config()
    with pytest.raises(ConfigError) as info:
        set_key(cfg, key, value)
        validate(cfg)
    message = str(info.value)
    assert message.startswith(start) and len(message) < 400, message[:1000]


def test_cli_refuses_an_anchor_bomb_with_one_line_before_ray(tmp_path):
    (tmp_path / "bomb.yaml").write_text(f"measurement:\n  name: cascade\n  steps: {BOMB}\n")
    result = _cli("train", "bomb.yaml", "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"gansweep: error: config file bomb.yaml: {REFUSED}"]
    assert not (tmp_path / "run").exists()


def test_eval_features_default_to_the_classifier_and_take_inception():
    assert load_config(None, []).eval.features == ["classifier"]
    assert load_config(None, ["eval.features=[classifier, inception]"]).eval.features == ["classifier", "inception"]
