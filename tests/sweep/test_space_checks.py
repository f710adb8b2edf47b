"""The checks a space passes past its file's syntax, before Ray starts: every trial it may sample makes a valid config
that fits its data (described once per data settings), and the CLI refuses one that does not before any Ray work."""

import textwrap
from pathlib import Path

import gansweep.sweep.space_checks as space_module
import pytest
from conftest import _cli, needs_fashion
from gansweep.sweep.space_file import load_space

pytestmark = needs_fashion  # every space is checked against its data (Fashion-MNIST)

OK = "num_samples: 4\nfixed: {train.steps: 2000}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _load(tmp_path: Path, text: str):
    return load_space(_write(tmp_path, text))


def test_each_trials_data_is_described_once(tmp_path, monkeypatch):
    described = []
    original = space_module.describe_source
    monkeypatch.setattr(space_module, "describe_source", lambda *args: described.append(args) or original(*args))
    _load(tmp_path, OK + "space:\n  data.limit: {choice: [1000, 2000]}\n  mode: {choice: [ambient, ignore, clean]}\n"
                         "  measurement.p: {uniform: [0.1, 0.9]}\n")
    assert [args[3] for args in described] == [None, 1000, 2000]  # data.limit: the base config's, then the trials'


@pytest.mark.parametrize("fixed, space, message", [
    ("hidden.measurement.name: block_pixel", "hidden.inject_at: {choice: [up1, nowhere]}",
     "hidden.inject_at: unknown injection point 'nowhere'"),
    ("measurement.name: block_patch", "measurement.patch: {int: [4, 40]}",
     "measurement.patch=40 is larger than the 28x28 map"),
    ("mode: ambient", "measurement.p: {uniform: [0.1, 1.5]}", "measurement.p=1.5 is outside [0, 1]"),
    ("hidden.inject_at: up1", "hidden.measurement.name: {choice: [block_pixel, extract_patch]}",
     "hidden.measurement.name=extract_patch changes the feature map's shape"),
])
def test_the_cli_refuses_a_trial_that_cannot_run_before_ray_starts(tmp_path, fixed, space, message):
    path = _write(tmp_path, f"num_samples: 4\nfixed: {{train.steps: 2000, {fixed}}}\nspace: {{{space}}}\n")
    out = tmp_path / "out"
    result = _cli("sweep", str(path), "--output", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not out.exists()  # no sweep directory, no trial directory


def test_a_valid_combination_of_choices_loads(tmp_path):
    # ambient and clean are both valid with the default Block-Pixel measurement
    space = _load(tmp_path, OK + "space: {mode: {choice: [ambient, clean]}}\n")
    assert [p.choices for p in space.params] == [["ambient", "clean"]]
    # and the hidden measurement is fine while every trial stays ambient
    _load(tmp_path, OK.replace("{", "{hidden.inject_at: project, hidden.measurement.name: block_pixel, ")
          + "space: {hidden.measurement.p: {uniform: [0.1, 0.9]}}\n")


@pytest.mark.parametrize("fixed, space", [
    ("hidden.inject_at: up1", "hidden.measurement.name: {choice: [block_pixel, block_patch]}"),  # where fixed: how?
    ("hidden.measurement.name: block_pixel", "hidden.inject_at: {choice: [project, up1, up2]}"),  # how fixed: where?
    ("measurement.name: none", "mode: {choice: [clean]}"),
])
def test_fixed_keys_that_need_a_sampled_one_load(tmp_path, fixed, space):
    """The defaults and fixed: alone are no trial: only the trials, with their sampled keys, must be valid."""
    loaded = _load(tmp_path, f"num_samples: 4\nfixed: {{{fixed}}}\nspace: {{{space}}}\n")
    point = {p.key: p.choices[-1] for p in loaded.params}
    loaded.trial_config(point)
