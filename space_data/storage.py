"""One filesystem layer for local paths and URLs (`s3://bucket/...`, `gs://...`), over fsspec.

Scanners list corpus files through `walk`, media decoding opens files through `local_path`
(PyAV needs a seekable local file for MP4), so the pipeline reads a corpus on object storage
the same way it reads one on disk. Remote protocols need their fsspec driver installed
(`s3fs` for `s3://`); without it fsspec raises an ImportError that names the package.
Paths returned here keep the caller's form: plain paths for local files, full URLs otherwise.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import fsspec
from fsspec import AbstractFileSystem


def is_remote(path: str) -> bool:
    """True for a URL with a protocol other than `file://`."""
    return "://" in path and not path.startswith("file://")


def _fs(path: str) -> tuple[AbstractFileSystem, str]:
    fs, stripped = fsspec.core.url_to_fs(path)
    return fs, stripped


def _outward(fs: AbstractFileSystem, path: str, remote: bool) -> str:
    """A path as fsspec returns it, back in the caller's form."""
    return fs.unstrip_protocol(path) if remote else path


def open_file(path: str, mode: str = "rb") -> IO:
    """Open a local file or URL (a context manager, like `open`)."""
    fs, stripped = _fs(path)
    return fs.open(stripped, mode)


def exists(path: str) -> bool:
    fs, stripped = _fs(path)
    return fs.exists(stripped)


def isdir(path: str) -> bool:
    fs, stripped = _fs(path)
    return fs.isdir(stripped)


def size(path: str) -> int:
    """File size in bytes."""
    fs, stripped = _fs(path)
    return int(fs.size(stripped))


def walk(root: str) -> list[str]:
    """Sorted paths of every file below `root` (recursive), as full paths."""
    fs, stripped = _fs(root)
    return sorted(_outward(fs, p, is_remote(root)) for p in fs.find(stripped))


def relpath(path: str, root: str) -> str:
    """`path` relative to `root`, with `/` separators."""
    if is_remote(root):
        return posixpath.relpath(_fs(path)[1], _fs(root)[1])
    return os.path.relpath(path, root).replace(os.sep, "/")


@contextmanager
def local_path(path: str) -> Iterator[str]:
    """A local filename for `path`: itself when local, else a temporary download (removed after)."""
    if not is_remote(path):
        yield path.removeprefix("file://")
        return
    suffix = os.path.splitext(path)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with open_file(path, "rb") as src:
            shutil.copyfileobj(src, tmp)
        tmp.flush()
        yield tmp.name
