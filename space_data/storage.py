"""One filesystem layer for local paths and URLs (`s3://bucket/...`, `gs://...`), over fsspec.

Every data path of every command goes through this module, so a corpus, the features, the
shards, the reports and the checkpoints can each live on local disk or on object storage.
A URL is never turned into a local path: paths keep the caller's form (plain paths for local
files, full URLs otherwise), and `join` joins with `/` for URLs.

Writes are whole: `write_bytes` and `writing` make a local file appear under its final name
only when complete (temporary name + rename); on object storage, where there is no rename, the
object is uploaded in one piece when complete (an object is visible whole or not at all).

Remote protocols need their fsspec driver (`s3fs` for `s3://`). Credentials and the endpoint
come from the standard variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`) or an fsspec config (`~/.config/fsspec/*.json`,
`FSSPEC_S3_*`). `access_problem` turns the errors of a missing credential, an unreachable
endpoint or a missing driver into one line naming what is missing.

Transient object-storage errors (HTTP 500, 502, 503 `SlowDown`, 504, a connection reset or
refused, a read timeout) are retried by botocore in its `standard` mode (`AWS_RETRY_MODE`): up
to `max_attempts()` attempts per request (`AWS_MAX_ATTEMPTS`, default 10), truncated
exponential backoff with full jitter (a random wait below 2^attempt s, at most 20 s); an answer
that stalls for `SPACE_STORAGE_READ_TIMEOUT_S` seconds (default 15) fails its attempt. Each
retry is logged (one warning: the operation, what failed, the attempt) and counted
(`retries()`, per process). Not counted: aiohttp resends an idempotent request once by itself
when a reused connection was reset, and s3fs repeats a call that still failed (or whose
download broke mid-body) up to 5 times. Errors that retrying cannot fix (403, a missing bucket
or key) are not retried; `access_problem` makes them, and transient errors that outlasted every
attempt, one line.

A local write that finds the disk full (ENOSPC, EDQUOT, or EFBIG past a file-size limit) raises
`DiskFull`, whose message names the file and the bytes it needs; no partial file is left.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import IO

import fsspec
from fsspec import AbstractFileSystem


def is_remote(path: str) -> bool:
    """True for a URL with a protocol other than `file://`."""
    return "://" in str(path) and not str(path).startswith("file://")


def _fs(path: str) -> tuple[AbstractFileSystem, str]:
    path = str(path)
    options = _s3_options() if path.startswith(("s3://", "s3a://")) else {}
    fs, stripped = fsspec.core.url_to_fs(path, **options)
    return fs, stripped


# --- object storage: retried requests ----------------------------------------------------------

_log = logging.getLogger(__name__)
DEFAULT_MAX_ATTEMPTS = 10
"""Attempts per object-storage request (the first one and 9 retries) unless the standard
variable `AWS_MAX_ATTEMPTS` says otherwise."""
DEFAULT_READ_TIMEOUT_S = 15
"""Seconds an object-storage answer may stall before the attempt fails (and is retried) unless
`SPACE_STORAGE_READ_TIMEOUT_S` says otherwise (s3fs's own default)."""
_retried = 0
"""Retries counted in this process (`retries()`)."""
_retried_lock = threading.Lock()
_session = None
"""The aiobotocore session every s3fs instance of this process uses (its hooks count)."""


def max_attempts() -> int:
    """Attempts per object-storage request: `AWS_MAX_ATTEMPTS`, default 10."""
    return _positive_int("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)


def _positive_int(variable: str, default: int) -> int:
    value = os.environ.get(variable, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{variable} must be an integer >= 1, not {value!r}")
    return int(value)


def retries() -> int:
    """Object-storage requests this process has retried so far (every retry of every request)."""
    return _retried


def _s3_options() -> dict:
    """s3fs options: botocore's retry mode (`AWS_RETRY_MODE`, default `standard`) with
    `max_attempts()` attempts, the read timeout, and one shared session whose event hooks log
    and count the retries."""
    global _session
    if _session is None:
        from aiobotocore.session import AioSession

        session = AioSession()
        session.register("needs-retry.s3", _remember_failure)
        session.register("request-created.s3", _count_retry)
        _session = session
    return {
        "session": _session,
        "config_kwargs": {
            "read_timeout": _positive_int("SPACE_STORAGE_READ_TIMEOUT_S", DEFAULT_READ_TIMEOUT_S),
            "retries": {
                "mode": os.environ.get("AWS_RETRY_MODE", "standard"),
                "total_max_attempts": max_attempts(),
            },
        },
    }


def _remember_failure(request_dict=None, response=None, caught_exception=None, **_) -> None:
    """botocore hook after each attempt: keep what went wrong, for the retry's log line."""
    if request_dict is None:
        return
    if caught_exception is not None:
        what = f"{type(caught_exception).__name__}: {caught_exception}"
    elif response is not None:
        status = response[0].status_code
        code = (response[1] or {}).get("Error", {}).get("Code", "")
        what = f"HTTP {status} {code}".strip()
    else:
        return
    request_dict["context"]["space_failure"] = what.splitlines()[0][:200]


def _count_retry(request=None, operation_name: str = "", **_) -> None:
    """botocore hook on each request it builds: attempt 2 and later are retries."""
    context = getattr(request, "context", None) or {}
    attempt = context.get("retries", {}).get("attempt", 1)
    if attempt < 2:
        return
    global _retried
    with _retried_lock:
        _retried += 1
    _log.warning(
        "object storage: %s %s failed (%s); retry %d of %d",
        operation_name,
        getattr(request, "url", "").split("?")[0],
        context.get("space_failure", "an error"),
        attempt - 1,
        max_attempts() - 1,
    )


def _outward(fs: AbstractFileSystem, path: str, remote: bool) -> str:
    """A path as fsspec returns it, back in the caller's form."""
    return fs.unstrip_protocol(path) if remote else path


def join(base: str, *parts: str) -> str:
    """`base/part/...`: `/`-joined for URLs (never a local path), `os.path.join` otherwise."""
    base = str(base)
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def name(path: str) -> str:
    """The last component of a path or URL."""
    return posixpath.basename(str(path).rstrip("/"))


def parent(path: str) -> str:
    """The folder holding `path` (same form as `path`)."""
    path = str(path)
    if is_remote(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(path) or "."


def open_file(path: str, mode: str = "rb") -> IO:
    """Open a local file or URL (a context manager, like `open`)."""
    fs, stripped = _fs(path)
    return fs.open(stripped, mode)


def _kind(path: str) -> str | None:
    """ "file", "directory" or None when absent. Unlike fsspec's `exists`/`isfile`, errors
    other than "not found" (no credentials, endpoint unreachable) propagate."""
    if path in _pinned:
        return "file"
    fs, stripped = _fs(path)
    if is_remote(path):
        fs.invalidate_cache()
    try:
        return fs.info(stripped)["type"]
    except FileNotFoundError:
        if is_remote(path):
            _require_bucket(fs, stripped)
        return None


_buckets: set[str] = set()
"""Buckets this process has seen exist."""


def _require_bucket(fs: AbstractFileSystem, stripped: str) -> None:
    """Raise when the bucket of `stripped` does not exist (checked once per bucket): an object
    store answers a missing bucket's objects with a bare 404, which would read as "no file"."""
    bucket = stripped.split("/", 1)[0]
    if bucket in _buckets:
        return
    if not fs.exists(bucket):
        raise FileNotFoundError(f"NoSuchBucket: the bucket {bucket} does not exist")
    _buckets.add(bucket)


def exists(path: str) -> bool:
    return _kind(path) is not None


def isdir(path: str) -> bool:
    return _kind(path) == "directory"


def isfile(path: str) -> bool:
    return _kind(path) == "file"


def size(path: str) -> int:
    """File size in bytes."""
    if path in _pinned:
        return os.path.getsize(_pinned[path])
    fs, stripped = _fs(path)
    return int(fs.size(stripped))


def walk(root: str) -> list[str]:
    """Sorted paths of every file below `root` (recursive), as full paths."""
    fs, stripped = _fs(root)
    fs.invalidate_cache()
    return sorted(_outward(fs, p, is_remote(root)) for p in fs.find(stripped))


def walk_entries(root: str) -> list[tuple[str, str]]:
    """Sorted `(path, kind)` of everything below `root` (recursive, `root` itself left out).

    kind: `file` (a regular file, or a symbolic link to one), `directory` (or a link to one;
    links are listed, never descended), `broken_link` (a symbolic link whose target is missing
    or loops), `other` (a socket, FIFO, device). Object stores have only files and folders.
    """
    fs, stripped = _fs(root)
    fs.invalidate_cache()
    remote = is_remote(root)
    top = stripped.rstrip("/")
    found = fs.find(stripped, withdirs=True, detail=True)
    entries = []
    for path, info in found.items():
        if path.rstrip("/") == top:
            continue
        kind = info["type"]
        if not remote and info.get("islink"):
            # fsspec describes the link itself; what matters is what it points at
            kind = (
                "file"
                if os.path.isfile(path)
                else "directory"
                if os.path.isdir(path)
                else "broken_link"
            )
        elif kind not in ("file", "directory"):
            kind = "other"
        entries.append((_outward(fs, path, remote), kind))
    return sorted(entries)


def listdir(path: str) -> list[str]:
    """Sorted names directly below the folder `path` (files and sub-folders); [] when absent.

    One listing (on object storage one request per page of 1000 names), never one per entry.
    """
    if not is_remote(path):
        try:
            return sorted(os.listdir(str(path).removeprefix("file://")))
        except (FileNotFoundError, NotADirectoryError):
            return []
    fs, stripped = _fs(path)
    fs.invalidate_cache()
    try:
        entries = fs.ls(stripped, detail=False)
    except FileNotFoundError:
        return []
    prefix = stripped.rstrip("/") + "/"
    return sorted(e.rstrip("/").removeprefix(prefix) for e in entries if e.rstrip("/") != stripped)


def relpath(path: str, root: str) -> str:
    """`path` relative to `root`, with `/` separators."""
    if is_remote(root):
        return posixpath.relpath(_fs(path)[1], _fs(root)[1])
    return os.path.relpath(path, root).replace(os.sep, "/")


def read_bytes(path: str) -> bytes:
    """The whole file (one GET on object storage)."""
    fs, stripped = _fs(path)
    return fs.cat_file(stripped)


def read_many(paths: list[str]) -> dict[str, bytes | None]:
    """Several whole files, fetched concurrently on object storage; None for a missing one."""
    if not paths:
        return {}
    fs, _ = _fs(paths[0])
    stripped = [_fs(p)[1] for p in paths]
    got = fs.cat(stripped, on_error="return")
    return {
        p: (None if isinstance(got[s], Exception) else got[s])
        for p, s in zip(paths, stripped, strict=True)
    }


def read_text(path: str) -> str:
    return read_bytes(path).decode()


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file: locally under a temporary name then renamed (parents created); on
    object storage as one upload."""
    if is_remote(path):
        fs, stripped = _fs(path)
        fs.pipe_file(stripped, data)
        return
    local = path.removeprefix("file://")
    tmp = f"{local}.tmp{os.getpid()}"
    try:
        with _disk_space(local, tmp, len(data)):
            os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def append_local(path: str, data: bytes) -> None:
    """Append `data` to a local file (created when absent) in ONE `write` on an O_APPEND
    descriptor, so a writer killed mid-call leaves the whole of `data` or none of it (beyond a
    torn tail the reader skips). Local paths only: object storage has no append."""
    if is_remote(path):
        raise ValueError(f"{path}: object storage has no append")
    local = path.removeprefix("file://")
    with _disk_space(local, local, len(data)):
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        fd = os.open(local, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


@contextmanager
def writing(path: str, suffix: str = "") -> Iterator[str]:
    """A local filename to write `path` through (for writers that need a real file: tar,
    torch.save, savefig, parquet). When the block ends without error the file becomes `path`
    whole (renamed locally, uploaded in one piece remotely); on error nothing appears."""
    if not is_remote(path):
        local = path.removeprefix("file://")
        tmp = f"{local}.tmp{os.getpid()}{suffix}"
        try:
            with _disk_space(local, tmp):
                os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
                yield tmp
                os.replace(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    with tempfile.TemporaryDirectory(prefix="space-upload-") as folder:
        tmp = os.path.join(folder, name(path) + suffix)
        yield tmp
        fs, stripped = _fs(path)
        fs.put_file(tmp, stripped)


# --- a full disk ------------------------------------------------------------------------------

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(OSError):
    """A local write found no space (ENOSPC, EDQUOT) or hit the file-size limit (EFBIG); the
    message (`strerror`) is one line naming the file, the bytes it needs and the bytes free."""


@contextmanager
def _disk_space(path: str, tmp: str, size: int | None = None) -> Iterator[None]:
    """Turn a full disk met while writing `path` (through the file `tmp`; `size` bytes when
    known) into `DiskFull`."""
    try:
        yield
    except OSError as e:
        if isinstance(e, DiskFull) or e.errno not in _NO_SPACE:
            raise
        if size is not None:
            need = _bytes(size)
        else:  # a streaming writer: what it got down is a lower bound
            try:
                need = f"more than {_bytes(os.path.getsize(tmp))}"
            except OSError:
                need = "an unknown number of bytes"
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        free = shutil.disk_usage(folder).free
        what = "the file-size limit (ulimit -f)" if e.errno == errno.EFBIG else "no space left"
        raise DiskFull(
            e.errno,
            f"{what} writing {path}: it needs {need}, {_bytes(free)} free on the device of "
            f"{folder}; free some space and run the same command again (committed work is kept)",
            path,
        ) from e


def _bytes(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n / 2**20:.1f} MiB ({n} bytes)"


def disk_full(error: BaseException) -> str | None:
    """The one-line message of a full disk among `error` and its causes (a `DiskFull`, or any
    OSError with ENOSPC / EDQUOT / EFBIG, e.g. from a library writing by itself), else None."""
    for e in _chain(error):
        if isinstance(e, DiskFull) and e.strerror:
            return e.strerror
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            where = f" writing {e.filename}" if e.filename else ""
            return (
                f"no space left on device{where} ({os.strerror(e.errno)}); free some space and "
                "run the same command again (committed work is kept)"
            )
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then its causes (`__cause__`, `__context__`, and Ray's `cause` of a task error)."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(
            c
            for c in (getattr(e, "cause", None), e.__cause__, e.__context__)
            if isinstance(c, BaseException)
        )


@contextmanager
def staged_folder(path: str) -> Iterator[str]:
    """A local folder to write the files of the folder `path` into: `path` itself when local
    (created), else a temporary folder whose files are uploaded (each whole, sub-folders
    kept) when the block ends without error."""
    if not is_remote(path):
        local = path.removeprefix("file://")
        os.makedirs(local, exist_ok=True)
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="space-upload-") as folder:
        yield folder
        fs, stripped = _fs(path)
        for dirpath, _, files in os.walk(folder):
            for file in files:
                local = os.path.join(dirpath, file)
                rel = os.path.relpath(local, folder).replace(os.sep, "/")
                fs.put_file(local, f"{stripped.rstrip('/')}/{rel}")


def makedirs(path: str) -> None:
    """Create a local folder (and parents); nothing on object storage (no folders there)."""
    if not is_remote(path):
        os.makedirs(path.removeprefix("file://"), exist_ok=True)


def remove(paths: Iterable[str]) -> None:
    """Delete files (missing ones ignored); on object storage in bulk requests of 1000."""
    paths = list(paths)
    if not paths:
        return
    if not is_remote(paths[0]):
        for p in paths:
            with suppress(FileNotFoundError):
                os.unlink(p.removeprefix("file://"))
        return
    fs, _ = _fs(paths[0])
    fs.rm([_fs(p)[1] for p in paths])


def remove_tree(path: str) -> None:
    """Delete a folder and everything below it (missing: nothing)."""
    if not is_remote(path):
        shutil.rmtree(path.removeprefix("file://"), ignore_errors=True)
        return
    fs, stripped = _fs(path)
    with suppress(FileNotFoundError):
        fs.rm(stripped, recursive=True)


def read_parquet(path: str, columns: Iterable[str] | None = None):
    """A parquet file as a pandas DataFrame (one whole download on object storage); only the
    `columns` the file has among those named, when given (a million-row table stays small)."""
    import pyarrow.parquet as pq

    with local_path(path) as local:
        parquet = pq.ParquetFile(local)
        names = parquet.schema_arrow.names
        wanted = None if columns is None else [c for c in columns if c in names]
        return parquet.read(columns=wanted).to_pandas()


def write_parquet(frame, path: str) -> None:
    """A pandas DataFrame (index dropped) or a pyarrow Table to parquet, written whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(path, buffer.getvalue())


@contextmanager
def local_path(path: str) -> Iterator[str]:
    """A local filename for `path`: itself when local, else one temporary download (removed
    after). Decoders that open a file several times (probe, audio, frames) then read the
    object once."""
    if not is_remote(path):
        yield path.removeprefix("file://")
        return
    if path in _pinned:
        yield _pinned[path]
        return
    suffix = os.path.splitext(path)[1]
    with tempfile.NamedTemporaryFile(prefix="space-", suffix=suffix) as tmp:
        fs, stripped = _fs(path)
        fs.get_file(stripped, tmp.name)
        yield tmp.name


_pinned: dict[str, str] = {}
"""URL → local copy, while a `pinned` block holds it."""


@contextmanager
def pinned(*paths: str | None) -> Iterator[None]:
    """Download each remote file among `paths` once (one GET) and serve every `local_path`,
    `exists`, `isfile` and `size` of it from that copy until the block ends; the copies are
    deleted then. A file that cannot be found is not pinned (readers report it as usual)."""
    with tempfile.TemporaryDirectory(prefix="space-media-") as folder:
        added = []
        try:
            for i, path in enumerate(p for p in paths if p and is_remote(p) and p not in _pinned):
                local = os.path.join(folder, f"{i}{os.path.splitext(path)[1]}")
                fs, stripped = _fs(path)
                try:
                    fs.get_file(stripped, local)
                except FileNotFoundError:
                    continue
                _pinned[path] = local
                added.append(path)
            yield
        finally:
            for path in added:
                _pinned.pop(path, None)


# --- one-line errors -------------------------------------------------------------------------

_MISSING_CREDENTIALS = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a non-AWS "
    "server), or an fsspec config"
)


def access_problem(error: BaseException) -> str | None:
    """One line naming what is missing when `error` (or its cause) comes from object storage
    access: no credentials, rejected credentials, an unreachable endpoint, a missing bucket, a
    missing fsspec driver, or transient errors that outlasted every retry. None for any other
    error."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "the default AWS endpoint")
    for e in _chain(error):
        kinds = {c.__name__ for c in type(e).__mro__}  # Ray wraps errors in subclasses
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if kinds & {"NoCredentialsError", "PartialCredentialsError"}:
            return f"object storage: no credentials found: {_MISSING_CREDENTIALS}"
        if kinds & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError"}:
            return f"object storage endpoint unreachable ({endpoint}; AWS_ENDPOINT_URL): {text}"
        if any(k in text for k in ("InvalidAccessKeyId", "SignatureDoesNotMatch")):
            return f"object storage refused the credentials ({_MISSING_CREDENTIALS}): {text}"
        if "AccessDenied" in text or (kinds & {"ClientError"} and "(403)" in text):
            return (
                f"object storage denied access (403; check the credentials and the bucket's "
                f"permissions, {_MISSING_CREDENTIALS}): {text}"
            )
        if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
            return f"object storage: {text} (create the bucket first)"
        if isinstance(e, ImportError) and ("fsspec" in text or "Install" in text):
            return f"object storage driver missing: {text}"
        if kinds & _TRANSIENT or any(code in text for code in _TRANSIENT_CODES):
            return (
                f"object storage kept failing ({endpoint}) after {max_attempts()} attempts per "
                f"request (AWS_MAX_ATTEMPTS): {text}"
            )
    return None


_TRANSIENT = {
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ServerDisconnectedError",
    "ClientOSError",
    "ClientPayloadError",
    "ResponseStreamingError",
}
"""Connection errors botocore and s3fs retry; met here, every attempt failed."""
_TRANSIENT_CODES = ("SlowDown", "InternalError", "ServiceUnavailable", "reduce your request rate")
