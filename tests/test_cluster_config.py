"""cluster.yaml: valid for Ray's cluster launcher, and it keeps the promises the README makes.

The check is Ray's own: ``prepare_config`` (merge with the AWS defaults, as ``ray up`` does first)
then ``validate_config`` (the JSON schema in ray/autoscaler/ray-schema.json plus Ray's extra
checks). Both are offline; the AWS steps of ``ray up`` (instance-type lookup, IAM, security
groups) come after them and are not run here, except Ray's IAM step against moto's in-process
mock of IAM. The node configs are checked against EC2's RunInstances request shape (botocore's
bundled model), and the setup commands run in bash with pip stubbed. A socket guard proves
nothing reaches the network.
"""

import copy
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import botocore.session
import jsonschema
import pytest
import ray
import yaml
from botocore.validate import validate_parameters
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from gansweep.run.trainer import RAY_ENV_DEFAULTS
from ray.autoscaler._private.aws import config as aws_config
from ray.autoscaler._private.aws import utils as aws_utils
from ray.autoscaler._private.util import prepare_config, validate_config

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
README = REPO / "README.md"
# rayproject/ray:<ray version>-py<python>-<gpu | cuXYZ>, e.g. rayproject/ray:2.60.0-py311-gpu
IMAGE_RE = re.compile(r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>3\d+)-(?P<accel>gpu|cu\d+)$")
# The bucket's placeholder (no valid bucket name: S3 refuses capitals), which the user replaces.
BUCKET_PLACEHOLDER = "YOUR-BUCKET"
# The optional shared file system (EFS over NFS), commented out in cluster.yaml.
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


# --- Helpers: what Ray runs on each node ---


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


def _node_setup_commands(config, name):
    """What runs in a node's container before `ray start`: prepare_config has merged setup_commands
    into head_setup_commands and worker_setup_commands."""
    return config["head_setup_commands" if name == config["head_node_type"] else "worker_setup_commands"]


def _docker_args(run_options):
    args = []
    for option in run_options:
        args += shlex.split(option)
    return args


def _flag_values(args, flags):
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a in flags]


def _container_env(config, name):
    env = _flag_values(_docker_args(_node_run_options(config, name)), {"-e", "--env"})
    return dict(e.split("=", 1) for e in env)


NODE_TYPES = ["ray.head.default", "ray.worker.gpu"]


# --- Results, checkpoints and the cache live in the bucket; no shared file system is required ---


def test_the_node_types_are_the_head_and_the_gpu_workers(prepared):
    assert set(prepared["available_node_types"]) == set(NODE_TYPES)


@pytest.mark.parametrize("name", NODE_TYPES)
def test_gansweep_cache_lives_in_the_bucket(prepared, name):
    env = _flag_values(_docker_args(_node_run_options(prepared, name)), {"-e", "--env"})
    caches = [e.split("=", 1)[1] for e in env if e.startswith("GANSWEEP_CACHE=")]
    assert caches == [f"s3://{BUCKET_PLACEHOLDER}/gansweep/cache"], env


@pytest.mark.parametrize("name", NODE_TYPES)
def test_every_raylet_keeps_idle_processes_for_the_next_trial_as_a_local_ray_does(prepared, name):
    setting = "RAY_num_workers_soft_limit"
    assert _container_env(prepared, name).get(setting) == RAY_ENV_DEFAULTS[setting]


@pytest.mark.parametrize("name", NODE_TYPES)
def test_no_shared_file_system_is_required(prepared, name):
    assert _node_init_commands(prepared, name) == []
    volumes = _flag_values(_docker_args(_node_run_options(prepared, name)), {"-v", "--volume"})
    assert volumes == [], volumes
    assert SHARE not in json.dumps(prepared), "the active config still depends on the EFS"


def _run_instances_shape():
    return botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances").input_shape


@pytest.mark.parametrize("name", NODE_TYPES)
def test_node_config_is_a_valid_run_instances_request(prepared, name):
    """Ray passes node_config to EC2's RunInstances as is; botocore's model of that request (offline)
    accepts it, IamInstanceProfile included."""
    node_config = prepared["available_node_types"][name]["node_config"]
    validate_parameters({**node_config, "MinCount": 1, "MaxCount": 1}, _run_instances_shape())


def test_a_mistyped_instance_profile_fails_the_request_check(raw):
    broken = copy.deepcopy(raw["available_node_types"]["ray.worker.gpu"]["node_config"])
    broken["IamInstanceProfile"] = {"Nme": aws_config.DEFAULT_RAY_INSTANCE_PROFILE}
    with pytest.raises(botocore.exceptions.ParamValidationError, match="Nme"):
        validate_parameters({**broken, "MinCount": 1, "MaxCount": 1}, _run_instances_shape())


def test_head_gets_rays_default_profile_and_the_workers_name_it(prepared):
    head, _ = _node_types(prepared)
    # Left to Ray, which then creates ray-autoscaler-v1 if missing (a profile named here is not created).
    assert "IamInstanceProfile" not in head["node_config"]
    for name, node_type in _gpu_workers(prepared).items():
        profile = node_type["node_config"].get("IamInstanceProfile")
        assert profile == {"Name": aws_config.DEFAULT_RAY_INSTANCE_PROFILE}, (name, profile)


@pytest.fixture
def mock_iam(monkeypatch):
    """moto's in-process IAM (no socket), with AWS's managed policies loaded; Ray's boto3 caches
    emptied on both sides so no real client is reused or kept."""
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    monkeypatch.setattr(aws_config.time, "sleep", lambda seconds: None)  # Ray waits for IAM propagation
    for cache in (aws_utils.resource_cache, aws_utils.client_cache):
        cache.cache_clear()
    with moto.mock_aws():
        import boto3

        yield boto3.client("iam", region_name="us-west-2")
    for cache in (aws_utils.resource_cache, aws_utils.client_cache):
        cache.cache_clear()


def test_rays_iam_step_creates_the_profile_the_workers_name(prepared, mock_iam):
    """In an account without it, Ray's IAM step of `ray up` creates ray-autoscaler-v1 with EC2 and
    S3 full access and gives it to the head only; the workers keep the profile they name, the same
    one. AmazonEC2FullAccess lacks iam:PassRole, hence the grant the docs ask for."""
    config = copy.deepcopy(prepared)
    config["head_node"] = {}  # as bootstrap_aws sets it up before its IAM step
    config = aws_config._configure_iam_role(config)

    arn = config["head_node"]["IamInstanceProfile"]["Arn"]
    assert arn.endswith(":instance-profile/" + aws_config.DEFAULT_RAY_INSTANCE_PROFILE), arn
    assert "IamInstanceProfile" not in config["available_node_types"]["ray.head.default"]["node_config"]
    worker_profile = config["available_node_types"]["ray.worker.gpu"]["node_config"]["IamInstanceProfile"]
    assert worker_profile == {"Name": aws_config._arn_to_name(arn)}

    profile = mock_iam.get_instance_profile(InstanceProfileName=worker_profile["Name"])["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == [aws_config.DEFAULT_RAY_IAM_ROLE]
    attached = mock_iam.list_attached_role_policies(RoleName=aws_config.DEFAULT_RAY_IAM_ROLE)["AttachedPolicies"]
    assert {p["PolicyName"] for p in attached} == {"AmazonEC2FullAccess", "AmazonS3FullAccess"}

    ec2_policy = "arn:aws:iam::aws:policy/AmazonEC2FullAccess"
    version = mock_iam.get_policy(PolicyArn=ec2_policy)["Policy"]["DefaultVersionId"]
    document = mock_iam.get_policy_version(PolicyArn=ec2_policy, VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    actions = []
    for statement in document["Statement"]:
        actions += [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
    assert "ec2:*" in actions and not any(a.startswith("iam:PassRole") or a in ("iam:*", "*") for a in actions)


def _pass_role_policies(text):
    """The policy documents of the `aws iam put-role-policy` commands in TEXT."""
    return [
        (role, json.loads(document))
        for role, document in re.findall(
            r"aws iam put-role-policy --role-name (\S+) .*?--policy-document '([^']+)'", text, re.DOTALL
        )
    ]


def _readme_cluster_section():
    text = README.read_text()
    start = text.index("## On a cluster")
    end = text.index("\n## ", start + 1)
    return text[start:end]


@pytest.mark.parametrize("where", ["cluster.yaml", "README.md"])
def test_docs_grant_the_head_iam_pass_role_on_the_workers_role(where):
    text = CLUSTER_YAML.read_text() if where == "cluster.yaml" else _readme_cluster_section()
    policies = _pass_role_policies(text)
    assert len(policies) == 1, policies
    role, document = policies[0]
    assert role == aws_config.DEFAULT_RAY_IAM_ROLE  # the head's role, which the autoscaler runs as
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "iam:PassRole"
    # ... on the role inside the workers' profile (ray-autoscaler-v1 holds the role of that name).
    assert re.fullmatch(r"arn:aws:iam::(\*|\d{12}):role/" + aws_config.DEFAULT_RAY_IAM_ROLE, statement["Resource"])


def test_readme_describes_the_bucket_workflow(prepared):
    section = _readme_cluster_section()
    region = prepared["provider"]["region"]
    assert f"aws s3 mb s3://{BUCKET_PLACEHOLDER} --region {region}" in section
    assert prepared["docker"]["image"] in section
    assert f"--output s3://{BUCKET_PLACEHOLDER}/gansweep/sweeps/" in section
    assert f"tensorboard --logdir s3://{BUCKET_PLACEHOLDER}/gansweep/sweeps/" in section
    assert f"gansweep report s3://{BUCKET_PLACEHOLDER}/gansweep/sweeps/" in section
    assert f"s3://{BUCKET_PLACEHOLDER}/gansweep/cache" in section
    assert "RAY_AUTH_MODE=token" in section and "ray get-auth-token --generate" in section
    assert "not supported" not in section  # cloud URIs are
    assert "EFS is optional" in section and "/mnt/gansweep/sweeps" not in section
    assert "AWS_ENDPOINT_URL" in section and "--resume" in section


# --- The bucket's placeholder stops `ray up`; a real bucket is installed against and probed ---


def _run_setup(commands, env, stubs):
    """Run a node's setup commands as Ray does: each in its own bash (in the container), with the
    container's environment, stopping at the first that fails. Returns the results so far."""
    results = []
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", f"{stubs}\n{command}"], check=False, capture_output=True, text=True, timeout=60,
            env={**os.environ, **env},
        )
        results.append(result)
        if result.returncode != 0:
            break
    return results


STUBS = 'pip() { echo "PIP $*"; }; python() { echo "PYTHON $*"; cat >/dev/null; }'


@pytest.mark.parametrize("name", NODE_TYPES)
def test_setup_stops_while_the_bucket_placeholder_is_left_in(prepared, name):
    env = _container_env(prepared, name)
    assert BUCKET_PLACEHOLDER in env["GANSWEEP_CACHE"]  # the repository ships the placeholder
    results = _run_setup(_node_setup_commands(prepared, name), env, STUBS)
    assert len(results) == 1 and results[0].returncode != 0, results  # the first command, before pip
    assert "PIP" not in results[0].stdout
    assert f"replace {BUCKET_PLACEHOLDER}" in results[0].stderr and "ray down" in results[0].stderr, results[0].stderr


@pytest.mark.parametrize("name", NODE_TYPES)
def test_setup_with_a_real_bucket_installs_gansweep_then_probes_the_bucket(prepared, name):
    env = _container_env(prepared, name)
    env["GANSWEEP_CACHE"] = env["GANSWEEP_CACHE"].replace(BUCKET_PLACEHOLDER, "my-gansweep-bucket")
    results = _run_setup(_node_setup_commands(prepared, name), env, STUBS)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    calls = [line for r in results for line in r.stdout.splitlines()]
    # bash expands ~ to the home folder (the ray user's, in the container) before pip sees it.
    assert calls.index(f"PIP install -e {Path.home()}/gansweep") < calls.index("PYTHON -"), calls


def _probe(prepared):
    (command,) = [c for c in prepared["head_setup_commands"] if "check_writable" in c]
    return command


def test_the_bucket_probe_runs_gansweeps_own_check(prepared, tmp_path):
    """The probe script as written, in this venv's Python, on locations that need no network: a
    folder passes; a location gansweep refuses stops the setup with gansweep's message."""
    stubs = f'python() {{ {shlex.quote(sys.executable)} "$@"; }}'
    ok = _run_setup([_probe(prepared)], {"GANSWEEP_CACHE": str(tmp_path / "cache")}, stubs)[0]
    assert ok.returncode == 0, ok.stderr
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    refused = _run_setup([_probe(prepared)], {"GANSWEEP_CACHE": str(a_file)}, stubs)[0]
    assert refused.returncode != 0
    assert refused.stderr.startswith("cluster.yaml: GANSWEEP_CACHE") and "is a file" in refused.stderr, refused.stderr
    assert "instance profile" in refused.stderr


# --- The optional EFS: commented out in cluster.yaml; once uncommented, it still mounts correctly ---


def _with_efs(text):
    """cluster.yaml with its optional EFS lines uncommented, as the comments there tell the user."""
    bind = f"    # - -v {SHARE}:{SHARE}\n"
    assert text.count(bind) == 1, "the commented -v line of the EFS is gone"
    text = text.replace(bind, bind.replace("# ", "", 1))
    lines = text.splitlines(keepends=True)
    start = lines.index("# initialization_commands:\n")
    end = start
    while end < len(lines) and (lines[end].startswith("#   ") or end == start):
        end += 1
    assert end - start > 3, "the commented initialization_commands of the EFS are gone"
    lines[start:end] = [line[2:] for line in lines[start:end]]
    return "".join(lines)


@pytest.fixture
def efs_prepared():
    config = prepare_config(yaml.safe_load(_with_efs(CLUSTER_YAML.read_text())))
    validate_config(config)
    return config


@pytest.mark.parametrize("name", NODE_TYPES)
def test_with_the_efs_every_node_binds_the_share_into_its_container(efs_prepared, name):
    volumes = _flag_values(_docker_args(_node_run_options(efs_prepared, name)), {"-v", "--volume"})
    assert f"{SHARE}:{SHARE}" in volumes, (name, volumes)
    assert _container_env(efs_prepared, name)["GANSWEEP_CACHE"].startswith("s3://")  # the cache stays in the bucket


@pytest.mark.parametrize("name", NODE_TYPES)
def test_with_the_efs_every_node_mounts_it_before_docker(efs_prepared, name):
    script = "\n".join(_node_init_commands(efs_prepared, name))
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
        ["bash", "-c", f"{stubs}\n({script})"], check=False, capture_output=True, text=True, timeout=30
    )


def test_with_the_efs_init_fails_loudly_while_its_placeholder_is_left_in(efs_prepared):
    script = "\n".join(efs_prepared["initialization_commands"])
    assert EFS_PLACEHOLDER in script  # the repository ships the placeholder
    # sudo must never be reached: a stub that would succeed proves the check comes first.
    result = _run_init(script, 'sudo() { echo "SUDO $*"; }; dpkg() { return 0; }; mountpoint() { return 1; }')
    assert result.returncode != 0
    assert "SUDO" not in result.stdout
    assert "placeholder" in result.stderr and EFS_PLACEHOLDER in result.stderr, result.stderr


def test_with_a_real_efs_name_init_installs_nfs_mounts_and_opens_the_share(efs_prepared):
    script = "\n".join(efs_prepared["initialization_commands"]).replace(EFS_PLACEHOLDER, "fs-0123abcd")
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
