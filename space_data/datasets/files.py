"""What every corpus scanner shares: listing media files below a root, and duplicate ids.

Rejection reasons used by the scanners (the manifest's `reason` column), beside the corpus
specific ones documented in each module:
`bad_layout` (file not where the corpus layout puts clips), `bad_name` (file or folder name
does not parse), `duplicate_id` (a second file mapping to a clip id already taken).
"""

from __future__ import annotations

import dataclasses
import os

from space_data import storage
from space_data.clip import Clip


def media_files(root: str, suffixes: tuple[str, ...]) -> list[tuple[str, str]]:
    """Sorted `(path, relpath)` of files below `root` whose name ends with one of `suffixes`.

    `path` is absolute for local roots (a URL stays a URL); `relpath` uses `/` separators.
    Other files (README, checksums, .DS_Store) are skipped: they are not clips.
    """
    base = root if storage.is_remote(root) else os.path.abspath(root)
    found = []
    for path in storage.walk(base):
        name = path.rsplit("/", 1)[-1]
        if name.lower().endswith(suffixes) and not name.startswith("."):
            found.append((path, storage.relpath(path, base)))
    return found


def path_parts(path: str) -> list[str]:
    """Non-empty `/`-separated components of a path or URL (protocol included for URLs)."""
    return [p for p in path.replace("\\", "/").split("/") if p]


def mark_duplicates(clips: list[Clip]) -> list[Clip]:
    """Keep the first clip of each id; later ones get reason `duplicate_id` (none is dropped)."""
    seen: set[str] = set()
    out = []
    for clip in clips:
        if clip.clip_id in seen and clip.reason is None:
            clip = dataclasses.replace(clip, reason="duplicate_id", split=None)
        seen.add(clip.clip_id)
        out.append(clip)
    return out
