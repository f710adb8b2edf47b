"""cluster.yaml: valid for Ray's cluster launcher, and it keeps the promises the README makes.

The check is Ray's own: ``prepare_config`` (merge with the AWS defaults, as ``ray up`` does first)
then ``validate_config`` (the JSON schema in ray/autoscaler/ray-schema.json plus Ray's extra
checks). Both are offline; the AWS steps of ``ray up`` (instance-type lookup, IAM, security
groups) come after them and are not run here. A socket guard proves nothing reaches the network.
"""

import copy
import re
import shlex
import socket
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from ray.autoscaler._private.util import prepare_config, validate_config

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
# rayproject/ray:<ray version>-py<python>-<gpu | cuXYZ>, e.g. rayproject/ray:2.60.0-py311-gpu
IMAGE_RE = re.compile(r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>3\d+)-(?P<accel>gpu|cu\d+)$")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail loudly if Ray's config preparation tries to contact AWS (or anything else)."""

    def refuse(*args, **kwargs):
        raise AssertionError("cluster config validation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def raw():
    with open(CLUSTER_YAML) as f:
        return yaml.safe_load(f)


@pytest.fixture
def prepared(raw):
    """The config as `ray up` sees it after its offline steps; validated by Ray itself."""
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _node_types(config):
    head_type = config["head_node_type"]
    types = config["available_node_types"]
    workers = {name: t for name, t in types.items() if name != head_type}
    return types[head_type], workers


def _gpu_workers(config):
    _, workers = _node_types(config)
    return {name: t for name, t in workers.items() if t["resources"].get("GPU", 0) > 0}


def _images(config):
    docker = config["docker"]
    return {docker.get(k) for k in ("image", "head_image", "worker_image")} - {None}


def test_ray_validates_the_cluster_config(prepared):
    assert prepared["provider"]["type"] == "aws"
    assert prepared["provider"]["region"]
    assert prepared["auth"]["ssh_user"] == "ubuntu"


def test_typo_in_a_top_level_key_fails_rays_validation(raw):
    """Proves the check can fail. Without the schema the typo would be silent: the default
    max_workers (2) from Ray's AWS defaults would apply instead of ours."""
    broken = copy.deepcopy(raw)
    broken["max_worker"] = broken.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(prepare_config(broken))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["available_node_types"]["ray.worker.gpu"].update(min_worker=0), "min_worker"),
        (lambda c: c["docker"].update(pull_befor_run=True), "pull_befor_run"),
        (lambda c: c["available_node_types"]["ray.worker.gpu"]["resources"].update(GPU=0.5), "0.5"),
    ],
    ids=["node-type-typo", "docker-typo", "fractional-gpu"],
)
def test_nested_mistakes_fail_rays_validation(raw, mutate, message):
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError, match=message):
        validate_config(prepare_config(broken))


def test_gpu_worker_type_autoscales(prepared):
    gpu_workers = _gpu_workers(prepared)
    assert gpu_workers, "no worker node type offers a GPU"
    for name, node_type in gpu_workers.items():
        assert node_type["resources"]["GPU"] >= 1, name
        assert node_type["resources"].get("CPU", 0) >= 1, name
        assert node_type["min_workers"] < node_type["max_workers"], f"{name} cannot scale"
        assert node_type["max_workers"] <= prepared["max_workers"], name
    assert prepared["idle_timeout_minutes"] > 0


def test_head_has_no_gpu(prepared):
    head, _ = _node_types(prepared)
    # Explicitly 0, so that no GPU trial is ever scheduled on (or waits for) the head.
    assert head["resources"].get("GPU") == 0
    assert head["resources"].get("CPU", 0) >= 1


def test_docker_image_is_a_ray_gpu_image_matching_the_installed_ray(prepared):
    docker = prepared["docker"]
    assert docker.get("container_name")
    assert docker.get("pull_before_run") is True
    images = _images(prepared)
    assert images, "no docker image configured"
    installed = Version(ray.__version__)
    for image in images:
        match = IMAGE_RE.match(image)
        assert match, f"{image!r} is not a rayproject/ray GPU image tag"
        tagged = Version(match["ray"])
        assert (tagged.major, tagged.minor) == (installed.major, installed.minor), (
            f"{image} runs Ray {tagged}, the local venv has Ray {installed}: keep them in step"
        )
        # The image's Python must satisfy the project's requires-python (pip install -e runs there).
        py = match["py"]
        image_python = f"{py[0]}.{py[1:]}"
        if tomllib is not None:
            with open(REPO / "pyproject.toml", "rb") as f:
                requires = tomllib.load(f)["project"]["requires-python"]
            assert Version(image_python) in SpecifierSet(requires), (image, requires)


def _ray_start(commands, flag):
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 1, starts
    start = starts[0][starts[0].index("ray start") :]
    assert flag in start, start
    return shlex.split(start)


def test_dashboard_binds_to_loopback_only(prepared):
    argv = _ray_start(prepared["head_start_ray_commands"], "--head")
    hosts = [a.split("=", 1)[1] for a in argv if a.startswith("--dashboard-host=")]
    hosts += [argv[i + 1] for i, a in enumerate(argv) if a == "--dashboard-host"]
    assert hosts == ["127.0.0.1"], argv
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in argv
    assert not any("0.0.0.0" in c for c in prepared["head_start_ray_commands"])


def test_workers_join_the_head(prepared):
    argv = _ray_start(prepared["worker_start_ray_commands"], "--address")
    assert "--address=$RAY_HEAD_IP:6379" in argv


def test_token_authentication_stays_on(prepared):
    run_options = " ".join(prepared["docker"].get("run_options", []))
    assert "RAY_AUTH_MODE=token" in run_options
    assert "~/.ray/auth_token" in prepared["file_mounts"]


def test_every_node_installs_the_project(prepared, raw):
    assert raw["file_mounts"]["~/gansweep"] == "."
    assert (REPO / "pyproject.toml").is_file()  # `ray up` runs from the repo root
    # prepare_config merges setup_commands into the head's and the workers' lists: what really runs.
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert "pip install -e ~/gansweep" in prepared[key], key
    # The venv is gigabytes and machine-specific: never upload it.
    assert ".venv" in prepared["rsync_exclude"]


def test_validation_alone_needs_the_prepared_config(raw):
    """Ray quirk worth pinning: validate_config on the file as written fails (it expects fields
    that only prepare_config fills in), so the two must be used together, as `ray up` does."""
    with pytest.raises(RuntimeError, match="cluster_synced_files"):
        validate_config(copy.deepcopy(raw))
