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
import subprocess
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
# The shared file system (EFS over NFS) that every node mounts, on the host and in the container.
SHARE = "/mnt/gansweep"
EFS_PLACEHOLDER = "fs-XXXXXXXX"


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


# --- The shared results file system (gansweep's --output must be a local path on every node) ---


def _node_run_options(config, name):
    """The `docker run` options Ray uses for a node type: the global docker section updated with
    the node type's own, then run_options + head_/worker_run_options (as Ray's updater does)."""
    docker = {**config["docker"], **config["available_node_types"][name].get("docker", {})}
    role = "head" if name == config["head_node_type"] else "worker"
    return docker.get("run_options", []) + docker.get(f"{role}_run_options", [])


def _node_init_commands(config, name):
    """A node type's initialization_commands (its own list replaces the global one)."""
    node_type = config["available_node_types"][name]
    return node_type.get("initialization_commands", config.get("initialization_commands", []))


def _docker_args(run_options):
    args = []
    for option in run_options:
        args += shlex.split(option)
    return args


def _flag_values(args, flags):
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a in flags]


def test_no_cloud_uri_in_the_cluster_config():
    # --output does not take cloud URIs yet: the config must not suggest one.
    assert "s3://" not in CLUSTER_YAML.read_text()


@pytest.mark.parametrize("name", ["ray.head.default", "ray.worker.gpu"])
def test_every_node_binds_the_share_into_its_container(prepared, name):
    assert set(prepared["available_node_types"]) == {"ray.head.default", "ray.worker.gpu"}
    volumes = _flag_values(_docker_args(_node_run_options(prepared, name)), {"-v", "--volume"})
    assert f"{SHARE}:{SHARE}" in volumes, (name, volumes)


@pytest.mark.parametrize("name", ["ray.head.default", "ray.worker.gpu"])
def test_gansweep_cache_lives_on_the_share(prepared, name):
    env = _flag_values(_docker_args(_node_run_options(prepared, name)), {"-e", "--env"})
    caches = [e.split("=", 1)[1] for e in env if e.startswith("GANSWEEP_CACHE=")]
    assert len(caches) == 1, env
    assert caches[0].startswith(SHARE + "/"), caches


@pytest.mark.parametrize("name", ["ray.head.default", "ray.worker.gpu"])
def test_every_node_mounts_the_efs_before_docker(prepared, name):
    script = "\n".join(_node_init_commands(prepared, name))
    mounts = [line for line in script.splitlines() if "mount -t nfs4" in line]
    assert len(mounts) == 1, script
    mount = mounts[0]
    assert "mountpoint -q " + SHARE in mount  # no second mount over a mounted share
    argv = shlex.split(mount[mount.index("sudo mount") :].split("||")[0])
    assert argv[-1] == SHARE, argv
    assert argv[-2].endswith(":/"), argv
    options = _flag_values(argv, {"-o"})[0].split(",")
    for option in ("nfsvers=4.1", "hard", "noresvport", "rsize=1048576", "wsize=1048576"):
        assert option in options, options
    assert f"sudo mkdir -p {SHARE}" in script
    assert f"sudo chmod 1777 {SHARE}" in script
    assert "nfs-common" in script


def _run_init(script, stubs):
    """Run the init script in bash as Ray does (in a subshell), with sudo & co. stubbed out."""
    return subprocess.run(
        ["bash", "-c", f"{stubs}\n({script})"], capture_output=True, text=True, timeout=30
    )


def test_init_fails_loudly_while_the_efs_placeholder_is_left_in(prepared):
    script = "\n".join(prepared["initialization_commands"])
    assert EFS_PLACEHOLDER in script  # the repository ships the placeholder
    # sudo must never be reached: a stub that would succeed proves the check comes first.
    result = _run_init(script, 'sudo() { echo "SUDO $*"; }; dpkg() { return 0; }; mountpoint() { return 1; }')
    assert result.returncode != 0
    assert "SUDO" not in result.stdout
    assert "placeholder" in result.stderr and EFS_PLACEHOLDER in result.stderr, result.stderr


def test_init_with_a_real_efs_name_installs_nfs_mounts_and_opens_the_share(prepared):
    script = "\n".join(prepared["initialization_commands"]).replace(EFS_PLACEHOLDER, "fs-0123abcd")
    stubs = 'sudo() { echo "SUDO $*"; }; dpkg() { return 1; }; mountpoint() { return 1; }'
    result = _run_init(script, stubs)
    assert result.returncode == 0, result.stderr
    calls = [line[len("SUDO ") :] for line in result.stdout.splitlines() if line.startswith("SUDO ")]
    assert any("install -y nfs-common" in c for c in calls), calls
    mount = [c for c in calls if c.startswith("mount ")]
    assert len(mount) == 1 and "fs-0123abcd.efs." in mount[0] and mount[0].endswith(f":/ {SHARE}"), calls
    assert calls[-1] == f"chmod 1777 {SHARE}", calls
    # Already mounted (a re-run of `ray up`): no second mount.
    again = _run_init(script, stubs.replace("mountpoint() { return 1; }", "mountpoint() { return 0; }"))
    assert again.returncode == 0 and "SUDO mount" not in again.stdout, again
    # A failing mount stops `ray up` instead of letting Docker bind an empty local folder.
    failing = stubs.replace('echo "SUDO $*";', 'echo "SUDO $*"; [ "$1" != mount ];')
    failed = _run_init(script, failing)
    assert failed.returncode != 0 and "SUDO chmod" not in failed.stdout, failed
