"""What every corpus scanner shares: listing media paths below a root, rows for paths that are
not files, and duplicate ids.

Rejection reasons used by the scanners (the manifest's `reason` column), beside the corpus
specific ones documented in each module:
`bad_layout` (file not where the corpus layout puts clips), `bad_name` (file or folder name
does not parse), `duplicate_id` (a second file mapping to a clip id already taken),
`not_a_file` (a folder, or a socket or FIFO, named like a clip: `00001.mp4/`), `broken_link`
(a symbolic link named like a clip whose target is missing or loops). Every rejected row has a
`detail` saying what exactly is wrong.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from space_data import storage
from space_data.clip import Clip


@dataclass(frozen=True, slots=True)
class MediaPath:
    """A path below a corpus root whose name ends with one of the corpus's media suffixes."""

    path: str
    """Absolute for local roots (a URL stays a URL)."""
    rel: str
    """Relative to the root, `/` separators."""
    problem: tuple[str, str] | None = None
    """(reason, detail) when the path is not a readable file (`not_a_file`, `broken_link`)."""


def media_files(root: str, suffixes: tuple[str, ...]) -> list[MediaPath]:
    """Sorted paths below `root` whose name ends with one of `suffixes` (case-insensitive).

    Files with other names (README, checksums, .DS_Store, a corpus's metadata) are not clips
    and are left out. A folder, a broken or looping link, or a special file carrying a media
    name is listed with its `problem`, so it gets a row instead of vanishing.
    """
    base = root if storage.is_remote(root) else os.path.abspath(root)
    found = []
    for path, kind in storage.walk_entries(base):
        name = path.rsplit("/", 1)[-1]
        if name.lower().endswith(suffixes) and not name.startswith("."):
            found.append(MediaPath(path, storage.relpath(path, base), _problem(path, kind)))
    return found


def _problem(path: str, kind: str) -> tuple[str, str] | None:
    if kind == "file":
        return None
    if kind == "directory":
        return "not_a_file", f"{path} is a folder, not a media file"
    if kind == "other":
        return "not_a_file", f"{path} is not a regular file (socket, FIFO or device)"
    target = os.readlink(path)
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "broken_link", f"{path} is a symbolic link that loops (to {target!r})"
    return "broken_link", f"{path} is a symbolic link to {target!r}, which does not exist"


def clip_rows(files: list[MediaPath], parse: Callable[[MediaPath], Clip]) -> list[Clip]:
    """`parse` of each path (labels and id from the layout), with the path's problem as the
    reason where it has one, then `mark_duplicates`."""
    clips = []
    for f in files:
        clip = parse(f)
        if f.problem is not None:
            clip = reject(clip, *f.problem)
        clips.append(clip)
    return mark_duplicates(clips)


def reject(clip: Clip, reason: str, detail: str) -> Clip:
    """`clip` rejected: reason and detail set, no split."""
    return dataclasses.replace(clip, reason=reason, detail=detail, split=None)


def path_parts(path: str) -> list[str]:
    """Non-empty `/`-separated components of a path or URL (protocol included for URLs)."""
    return [p for p in path.replace("\\", "/").split("/") if p]


def mark_duplicates(clips: list[Clip]) -> list[Clip]:
    """Keep the first clip of each id; later ones get reason `duplicate_id` (none is dropped)."""
    first: dict[str, str] = {}
    out = []
    for clip in clips:
        if clip.clip_id in first and clip.reason is None:
            clip = reject(
                clip, "duplicate_id", f"{clip.path} has the clip id of {first[clip.clip_id]}"
            )
        first.setdefault(clip.clip_id, clip.path)
        out.append(clip)
    return out
