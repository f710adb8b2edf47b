"""Where a trainer's nets run: a command's device, full precision for evaluations, and the random streams a
checkpoint keeps, resumed on the same device type or another."""

import pytest
import torch
from gansweep.config.errors import ConfigError
from gansweep.gan.runtime import resolve_device
from gansweep.gan.runtime import CPU_STATE_BYTES, RandomStreams, full_precision

CPU = torch.device("cpu")


def test_a_command_s_device_is_the_gpu_where_there_is_one_and_cuda_without_one_is_refused():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda: this machine has no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="--device 'tpu': one of auto, cpu, cuda"):
        resolve_device("tpu")


def test_full_precision_turns_tf32_off_and_restores_it():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with full_precision():
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (False, False)
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    with pytest.raises(RuntimeError), full_precision():
        raise RuntimeError("an evaluation that fails")
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def _draws(streams: RandomStreams) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(5, generator=streams.z), torch.rand(5, generator=streams.theta)


def test_streams_resumed_on_the_same_device_type_continue_exactly():
    streams = RandomStreams(3, 1, CPU)
    _draws(streams)
    state = streams.state_dict()
    assert state["device_type"] == "cpu" and state["z"].numel() == CPU_STATE_BYTES
    expected = _draws(streams)
    resumed = RandomStreams(3, 1, CPU)
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(_draws(resumed), expected))

    older = {"z": state["z"], "theta": state["theta"]}  # a checkpoint from before the device type was recorded
    resumed.load_state_dict(older)
    assert all(torch.equal(a, b) for a, b in zip(_draws(resumed), expected))


def test_streams_from_another_device_type_go_on_from_new_seeds_the_same_on_every_resume():
    """A GPU checkpoint's Philox states (16 bytes) cannot seed CPU generators (set_state refuses them): the run
    goes on from streams seeded by a hash of those states, with a warning, and resuming the same checkpoint twice
    gives the same draws; another checkpoint gives others."""
    def cuda_state(offset: int) -> dict:  # what a CUDA generator's get_state() returns: seed and offset, 16 bytes
        raw = torch.tensor([7, offset], dtype=torch.int64).view(torch.uint8)
        return {"z": raw.clone(), "theta": (raw + 1).clone(), "device_type": "cuda"}

    with pytest.raises(RuntimeError):  # what the old code did with it
        torch.Generator().set_state(cuda_state(0)["z"])
    draws = []
    for offset in (0, 0, 64):
        streams = RandomStreams(3, 0, CPU)
        with pytest.warns(UserWarning, match="drawn on cuda, this run is on cpu"):
            streams.load_state_dict(cuda_state(offset))
        draws.append(_draws(streams))
    assert all(torch.equal(a, b) for a, b in zip(draws[0], draws[1]))
    assert not torch.equal(draws[0][0], draws[2][0])
    fresh = _draws(RandomStreams(3, 0, CPU))
    assert not torch.equal(draws[0][0], fresh[0])  # not the streams a new run starts from either

    # A size tells an older checkpoint's device type: 16 bytes are a CUDA generator's.
    unlabelled = {key: value for key, value in cuda_state(0).items() if key != "device_type"}
    with pytest.warns(UserWarning, match="drawn on cuda"):
        RandomStreams(3, 0, CPU).load_state_dict(unlabelled)
