"""Locations: a local path or an object-storage URI (s3://bucket/key, gs://bucket/key, any scheme pyarrow serves).

The one place that turns a location into a pyarrow filesystem. Endpoint, region and credentials come from the
standard cloud environment (AWS_ENDPOINT_URL for an S3-compatible server such as MinIO or moto, AWS_ACCESS_KEY_ID
or AWS_PROFILE or the node's instance profile, GOOGLE_APPLICATION_CREDENTIALS), nothing gansweep-specific.

Files are written whole: an object appears complete when its upload ends, and a local file is written beside its
place and renamed into it, so a reader never sees half a file. What must be written locally first (TensorBoard's
event files, a SQLite study) goes through a Mirror, published to the location when the caller says.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

LocationLike = str | os.PathLike
PROBE_NAME = ".gansweep-write-probe"
RETRY_ENV = "GANSWEEP_STORAGE_RETRY_S"
RETRY_S = 120.0
PROBE_RETRY_S = 0.2  # a probe's requests: pyarrow's own default (3 attempts)
READ_ATTEMPTS = 20
_retry_override: contextvars.ContextVar[float | None] = contextvars.ContextVar("retry_override", default=None)


class StorageError(ValueError):
    """A location that cannot be read or written; the message names it (never its credentials). The CLI exits 2 on
    it, as on a bad config."""


def is_uri(location: LocationLike) -> bool:
    """True for object storage (any scheme but file://)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def normalize(location: LocationLike) -> str:
    """A local path made absolute (file:// stripped), or a URI without its trailing slashes."""
    text = str(location)
    if is_uri(text):
        return text.rstrip("/")
    return str(Path(text.removeprefix("file://")).expanduser().resolve())


def join(location: LocationLike, *parts: str) -> str:
    if is_uri(location):
        return "/".join([str(location).rstrip("/"), *(part.strip("/") for part in parts)])
    return str(Path(location, *parts))


def name_of(location: LocationLike) -> str:
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def parent_of(location: LocationLike) -> str:
    if is_uri(location):
        return str(location).rstrip("/").rsplit("/", 1)[0]
    return str(Path(location).parent)


def display(location: LocationLike) -> str:
    """LOCATION as messages and files show it: credentials written into a URI (s3://KEY:SECRET@bucket) removed."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", str(location))


def filesystem(location: LocationLike):
    """(pyarrow filesystem, LOCATION's path on it). Raises StorageError for a scheme no filesystem serves."""
    if not is_uri(location):
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), normalize(location)
    root, key = _split_uri(location)
    fs = _filesystem_of(root, os.environ.get("AWS_ENDPOINT_URL"), _retry_override.get() or retry_seconds())
    # pyarrow's object-store paths are "bucket/key" (credentials written into the URI are not part of it)
    return fs, f"{root.split('://', 1)[1].rsplit('@', 1)[-1]}/{key}".rstrip("/")


def _split_uri(location: LocationLike) -> tuple[str, str]:
    """(SCHEME://BUCKET, the key under it) of a URI."""
    scheme, rest = normalize(location).split("://", 1)
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key


@functools.lru_cache(maxsize=32)
def _filesystem_of(root: str, endpoint: str | None, retry_s: float):
    """Cached per bucket (a stream opens many pieces of one root); a changed endpoint or retry bound makes a new
    one."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        fs = pafs.FileSystem.from_uri(root)[0]
    except OSError as error:  # resolving an S3 bucket's region asks the endpoint: unreachable, denied
        raise _failed(root, "reach", error) from None
    except (pa.ArrowException, ValueError) as error:
        raise StorageError(f"{display(root)}: no filesystem serves this URI ({error})") from None
    if isinstance(fs, pafs.S3FileSystem):
        # The options from_uri resolved (endpoint, region, credentials written into the URI), as its pickle has them.
        return _retrying_s3(fs.__reduce__()[1][0], _s3_attempts(retry_s))
    return fs


def retry_seconds() -> float:
    """How long a request to object storage is retried, with backoff, before it fails: $GANSWEEP_STORAGE_RETRY_S, by
    default RETRY_S (an endpoint lost for a while, then back, loses nothing)."""
    text = os.environ.get(RETRY_ENV, "")
    try:
        return float(text) if text else RETRY_S
    except ValueError:
        raise StorageError(f"{RETRY_ENV}={text!r} is not a number of seconds") from None


def _s3_attempts(seconds: float) -> int:
    """The attempts of an S3 request that the AWS SDK's default retry strategy makes within SECONDS: it waits
    25 ms x 2^k before its k-th retry, 25 ms x (2^n - 2) in all over n attempts (12 attempts, 102 s, for 120 s)."""
    attempts = 1
    while 0.025 * (2 ** (attempts + 1) - 2) <= seconds:
        attempts += 1
    return attempts


def _retrying_s3(options: dict, attempts: int):
    """pyarrow's S3 filesystem with OPTIONS whose every request the AWS SDK retries ATTEMPTS times, pickled as this
    call: pyarrow's own pickle of it drops its retry strategy, and Ray Train and Tune pickle the filesystem to their
    controller and workers."""
    import pyarrow.fs as pafs

    class RetryingS3FileSystem(pafs.S3FileSystem):
        def __reduce__(self):
            return _retrying_s3, (options, attempts)

    return RetryingS3FileSystem(**options, retry_strategy=pafs.AwsDefaultS3RetryStrategy(max_attempts=attempts))


@contextlib.contextmanager
def probing():
    """Object storage opened inside is retried for PROBE_RETRY_S only: a check before any work (an output's probe, a
    data source described) refuses an endpoint that does not answer at once, not after the bound."""
    token = _retry_override.set(PROBE_RETRY_S)
    try:
        yield
    finally:
        _retry_override.reset(token)


def ray_storage(location: LocationLike) -> tuple[str, object | None]:
    """(storage_path, storage_filesystem) for Ray Train's and Tune's RunConfig: ours, so Ray reads and writes the
    bucket through the same filesystem (and environment) as gansweep."""
    if not is_uri(location):
        return normalize(location), None
    fs, path = filesystem(location)
    return path, fs


def _failed(location: LocationLike, action: str, error: BaseException) -> StorageError:
    return StorageError(f"{display(location)}: cannot {action} it ({error})")


def _info(location: LocationLike):
    import pyarrow as pa

    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path)
    except (OSError, pa.ArrowException) as error:  # an unreachable endpoint, denied credentials
        raise _failed(location, "reach", error) from None


def is_file(location: LocationLike) -> bool:
    import pyarrow.fs as pafs

    return _info(location).type == pafs.FileType.File


def is_dir(location: LocationLike) -> bool:
    """On object storage: whether any object lies under LOCATION/."""
    import pyarrow.fs as pafs

    return _info(location).type == pafs.FileType.Directory


def exists(location: LocationLike) -> bool:
    import pyarrow.fs as pafs

    return _info(location).type != pafs.FileType.NotFound


def read_bytes(location: LocationLike) -> bytes:
    """The whole file. On object storage pyarrow asks for the object's size, then reads that many bytes: an object
    replaced in between (trials.json, while a sweep runs) would come back cut or mixed, so the read is repeated
    until the object was the same before and after it."""
    import pyarrow as pa

    fs, path = filesystem(location)
    try:
        if not is_uri(location):  # replaced by a rename: always whole
            with fs.open_input_stream(path) as stream:
                return stream.read()
        for _ in range(READ_ATTEMPTS):
            before = fs.get_file_info(path)
            with fs.open_input_stream(path) as stream:
                data = stream.read()
            after = fs.get_file_info(path)
            if len(data) == before.size == after.size and before.mtime == after.mtime:
                return data
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "read", error) from None
    raise StorageError(f"{display(location)}: cannot read it: it kept changing while read")


def read_text(location: LocationLike) -> str:
    return read_bytes(location).decode()


def write_bytes(location: LocationLike, data: bytes) -> None:
    """DATA as LOCATION, whole (see the module's docstring); a local folder is made as needed."""
    import pyarrow as pa

    if not is_uri(location):
        path = Path(normalize(location))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Named by host and process: writers on machines that share a disk (NFS) never share a temporary file.
        tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return
    fs, path = filesystem(location)
    try:
        with fs.open_output_stream(path) as stream:
            stream.write(data)
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "write", error) from None


def write_text(location: LocationLike, text: str) -> None:
    write_bytes(location, text.encode())


def write_json(location: LocationLike, data: dict) -> None:
    """DATA as LOCATION, written whole: a reader (a sweep's driver, a report, a rerun) never sees half a file.
    Non-finite floats are written as JSON's NaN / Infinity; other numbers (numpy's) as floats."""
    write_text(location, json.dumps(data, indent=2, default=float))


def create_new(location: LocationLike, data: bytes) -> bool:
    """DATA as LOCATION, whole, only if no such file exists, in one step no other writer can split; False when one
    did. Locally a hard link (which never replaces a file) of a written temporary file; on object storage a
    conditional PUT (If-None-Match: *), through boto3: pyarrow's S3 filesystem cannot send one."""
    if not is_uri(location):
        path = Path(normalize(location))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.new")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    root, key = _split_uri(location)
    bucket = root.split("://", 1)[1].rsplit("@", 1)[-1]
    try:
        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise _failed(location, "write", error) from None
    except BotoCoreError as error:
        raise _failed(location, "write", error) from None
    return True


def delete(location: LocationLike) -> None:
    """Remove a file; nothing happens when it is not there."""
    import pyarrow as pa

    if not is_uri(location):
        Path(normalize(location)).unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "delete", error) from None


def delete_folder(location: LocationLike) -> None:
    """Remove a folder and everything under it; nothing happens when it is not there."""
    import pyarrow as pa

    if not is_uri(location):
        shutil.rmtree(normalize(location), ignore_errors=True)
        return
    fs, path = filesystem(location)
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "delete", error) from None


def list_names(location: LocationLike) -> list[str]:
    """The names directly under LOCATION (files and folders), sorted; [] when it does not exist."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "list", error) from None
    return sorted(info.base_name for info in infos)


def check_writable(location: LocationLike, what: str) -> str:
    """LOCATION normalised, once it is known to take files: an existing file is refused; a probe file is written
    and removed (in a local folder, with the folders it needed, so a refused command leaves nothing behind; on
    object storage the bucket must exist). WHAT names the location in messages (--output)."""
    location = normalize(location)
    if not is_uri(location):
        if Path(location).is_file():
            raise StorageError(f"{what} {location} is a file, not a folder: choose another {what}")
        _probe_local(Path(location), what)
        return location
    bucket = _split_uri(location)[0]
    try:
        with probing():
            if not is_dir(bucket):  # pyarrow shows an existing bucket as a directory
                raise StorageError(f"the bucket {display(bucket)} does not exist (create it first)")
            if is_file(location):
                raise StorageError(f"it is an object, not a folder: choose another {what}")
            probe = join(location, PROBE_NAME)
            write_bytes(probe, b"")
            delete(probe)
    except StorageError as error:
        raise StorageError(f"{what} {display(location)}: {error}") from None
    return location


def _probe_local(folder: Path, what: str) -> None:
    """Write and remove a probe file in FOLDER, creating the folders it lacks and removing them again: a folder under
    a file, in a read-only mount or where no folder can be made is refused by name, not met as a traceback."""
    created = []
    try:
        for missing in reversed([path for path in [folder, *folder.parents] if not path.exists()]):
            missing.mkdir()
            created.append(missing)
        probe = folder / PROBE_NAME
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise StorageError(f"{what} {folder}: cannot write there ({error.strerror or error})") from None
    finally:
        for made in reversed(created):
            with contextlib.suppress(OSError):  # another process may have written into it meanwhile
                made.rmdir()


def upload_folder(folder: Path, location: LocationLike) -> None:
    """Every file under FOLDER copied to LOCATION (same relative names)."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        pafs.copy_files(str(folder), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "write", error) from None


def download_folder(location: LocationLike, folder: Path) -> None:
    """Every file under LOCATION copied into FOLDER; nothing happens when LOCATION holds nothing."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    if not exists(location):
        return
    fs, path = filesystem(location)
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        pafs.copy_files(path, str(folder), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    except (OSError, pa.ArrowException) as error:
        raise _failed(location, "read", error) from None


def staging_dir(location: LocationLike) -> Path:
    """A local folder for the files of a location on object storage that must live on a disk while in use (a
    sweep's SQLite study). The same path on every machine for the same location: /tmp is not TMPDIR, which
    differs between machines, and what Tune saves of a sweep names this path."""
    digest = hashlib.sha256(normalize(location).encode()).hexdigest()[:16]
    folder = Path("/tmp/gansweep-staging") / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Mirror:
    """A local folder published to LOCATION: the location itself when it is local; for a URI a private temporary
    folder whose new or changed files publish() uploads (at a checkpoint, at the end), close() too."""

    def __init__(self, location: LocationLike):
        self.location = normalize(location)
        self.remote = is_uri(self.location)
        self.path = Path(tempfile.mkdtemp(prefix="gansweep-mirror-")) if self.remote else Path(self.location)
        self.path.mkdir(parents=True, exist_ok=True)
        self._published: dict[str, tuple[int, int]] = {}

    def publish(self) -> None:
        if not self.remote:
            return
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            stat = file.stat()
            relative = file.relative_to(self.path).as_posix()
            if self._published.get(relative) != (stat.st_size, stat.st_mtime_ns):
                write_bytes(join(self.location, relative), file.read_bytes())
                self._published[relative] = (stat.st_size, stat.st_mtime_ns)

    def close(self) -> None:
        self.publish()
        if self.remote:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.close()
