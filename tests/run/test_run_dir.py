"""The run directory's files: what the trainer writes is what evaluate, invert, holdout, a sweep and a rerun read."""

import math

import pytest
import torch
from conftest import _cut_short, _save_checkpoints, _save_run
from gansweep.config.errors import ConfigError
from gansweep.config.loading import load_config
from gansweep.gan.build import build_gan
from gansweep.run import run_dir

SMALL = ["model.g_width=8", "model.d_width=8", "model.z_dim=16"]


def test_the_run_record_round_trips_the_typed_config(tmp_path):
    cfg = load_config(None, [*SMALL, "measurement.name=block_patch", "measurement.patch=9"])
    run_dir.write_run_record(tmp_path, run_dir.RunRecord(cfg, (1, 28, 28), 10))
    record = run_dir.read_run_record(tmp_path)
    assert record.config == cfg and record.clean_shape == (1, 28, 28) and record.num_classes == 10
    with pytest.raises(ConfigError, match="not a gansweep run directory"):
        run_dir.read_run_record(tmp_path / "elsewhere")


def test_the_newest_complete_checkpoint_is_found_and_resolved(tmp_path):
    cfg = load_config(None, SMALL)
    gan = build_gan(cfg, (1, 28, 28))
    for name, step in (("checkpoint_000000", 3), ("checkpoint_000001", 9), ("checkpoint_000002", 6)):
        directory = tmp_path / run_dir.CHECKPOINTS_DIR / name
        directory.mkdir(parents=True)
        run_dir.save_checkpoint(gan, step, [gan.rng_state()], directory)
    # A checkpoint cut off before its step file (the marker of a complete one) does not count.
    partial = tmp_path / run_dir.CHECKPOINTS_DIR / "checkpoint_000003"
    partial.mkdir()
    torch.save({"step": 12}, partial / run_dir.STATE_FILE)
    newest = tmp_path / run_dir.CHECKPOINTS_DIR / "checkpoint_000001"
    assert run_dir.latest_checkpoint(tmp_path) == str(newest)
    assert run_dir.resolve_checkpoint(tmp_path) == (str(tmp_path.resolve()), str(newest.resolve()))
    assert run_dir.resolve_checkpoint(newest) == (str(tmp_path.resolve()), str(newest.resolve()))
    assert run_dir.load_checkpoint(newest)["step"] == 9


@pytest.mark.parametrize("where, fragment", [("absent", "does not exist"), ("empty", "holds no checkpoint")])
def test_a_path_without_a_checkpoint_is_a_clear_error(tmp_path, where, fragment):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=fragment):
        run_dir.resolve_checkpoint(tmp_path / where)


def test_load_sampler_rebuilds_the_generator_the_checkpoint_holds(tmp_path):
    cfg = load_config(None, SMALL)
    gan = build_gan(cfg, (1, 28, 28))
    gan.step([torch.rand(8, 1, 28, 28)])
    checkpoint = _save_run(gan, cfg, tmp_path, 5)
    sampler, loaded_cfg, step = run_dir.load_sampler(tmp_path, checkpoint)
    z = torch.randn(4, 16)
    assert step == 5 and loaded_cfg == cfg
    assert torch.equal(sampler.images(z), gan.sampler.images(z))


def test_result_evaluation_error_and_divergence_files(tmp_path):
    assert run_dir.read_result(tmp_path) is None and run_dir.read_evaluation(tmp_path) is None
    run_dir.write_result(tmp_path, {"step": 4, "metrics": {"fid": 12.5}})
    run_dir.write_evaluation(tmp_path, {"fid": 11.0})
    assert run_dir.read_result(tmp_path)["metrics"]["fid"] == 12.5 and run_dir.read_evaluation(tmp_path) == {"fid": 11.0}
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed

    assert run_dir.read_error(tmp_path / "run") is None
    run_dir.write_error(tmp_path / "run", ValueError("measurement.p=2 is outside [0, 1]"))
    assert run_dir.read_error(tmp_path / "run") == "ValueError: measurement.p=2 is outside [0, 1]"

    run_dir.mark_diverged(tmp_path, 17, {"loss_d": float("nan")})
    diverged = run_dir.read_diverged(tmp_path)
    assert diverged["step"] == 17 and math.isnan(diverged["losses"]["loss_d"])  # the non-finite loss, as it was
    run_dir.clear_diverged(tmp_path)
    assert run_dir.read_diverged(tmp_path) is None



def test_an_unreadable_checkpoint_is_named_and_skipped_for_the_newest_intact_one(tmp_path):
    _, middle, newest = _save_checkpoints(build_gan(load_config(None, SMALL), (1, 28, 28)), tmp_path, (10, 20, 30))
    _cut_short(newest)
    warnings = []
    checkpoint, state = run_dir.newest_intact_checkpoint(tmp_path, warnings.append)
    assert checkpoint == str(middle) and state["step"] == 20
    assert warnings == [f"warning: {newest / run_dir.STATE_FILE} cannot be read (PytorchStreamReader failed reading "
                        "zip archive: failed finding central directory): skipped for the checkpoint before it"]
    with pytest.raises(run_dir.CheckpointError, match=f"^{newest / run_dir.STATE_FILE} cannot be read"):
        run_dir.load_checkpoint(newest)
    assert run_dir.newest_intact_checkpoint(tmp_path / "new", warnings.append) is None  # no checkpoint: none to skip


def test_a_run_none_of_whose_checkpoints_can_be_read_is_one_error_naming_them(tmp_path):
    checkpoints = _save_checkpoints(build_gan(load_config(None, SMALL), (1, 28, 28)), tmp_path, (10, 20))
    _cut_short(checkpoints[1])
    (checkpoints[0] / run_dir.STATE_FILE).write_bytes(b"")  # empty: torch's EOFError, which has no message
    warnings = []
    with pytest.raises(run_dir.CheckpointError) as error:
        run_dir.newest_intact_checkpoint(tmp_path, warnings.append)
    assert str(error.value) == (f"no checkpoint of {tmp_path} can be read ({checkpoints[1] / run_dir.STATE_FILE}, "
                                f"{checkpoints[0] / run_dir.STATE_FILE}): remove them to train from the start, or "
                                "restore the run directory from a copy")
    assert len(warnings) == 2 and "(EOFError)" in warnings[1]


def test_a_pbt_exploit_s_copy_keeps_g_s_moving_average(tmp_path):
    """sweep/pbt.py clones a donor's checkpoint with copy_checkpoint (without its random streams): the clone goes on
    from the donor's average, not from its G."""
    cfg = load_config(None, ["model.g_width=8", "model.d_width=8", "train.ema=0.9"])
    donor = build_gan(cfg, (1, 28, 28))
    donor.step([torch.rand(16, 1, 28, 28)])
    donor.average(1)
    source = _save_checkpoints(donor, tmp_path / "donor", (1,))[0]
    run_dir.copy_checkpoint(str(source), str(tmp_path / "copy"), keep_streams=False)
    clone = build_gan(cfg, (1, 28, 28))
    clone.load_state_dict(run_dir.load_checkpoint(str(tmp_path / "copy")))
    for key, value in donor.ema.module.state_dict().items():
        assert torch.equal(value, clone.ema.module.state_dict()[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(clone.ema.module.parameters(), clone.players.G.parameters()))
