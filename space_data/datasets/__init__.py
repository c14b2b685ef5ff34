"""Corpus indexers: raw corpus folders → `Clip` rows of `data/manifest.parquet`.

One module per corpus (`voxceleb2`, `mead`, `ravdess`), each with `scan_<name>(root)` that
knows the corpus layout and labels and returns one `Clip` per media file seen: usable
(`reason` None) or rejected with a reason (never dropped, never raised). `scan_corpora` runs
the configured scanners, `probe_clips` adds fps and duration from the container headers,
`assign_splits` gives usable clips a speaker-disjoint split, and `write_manifest` /
`read_manifest` store the rows. Adding a corpus: a module here, one line in `SCANNERS`, one
field in `CorporaConfig`, one line in params.yaml.

Reasons besides the per-corpus ones: `duplicate_id`, and from probing `empty_file`,
`unreadable`, `no_video_stream`, `no_frames`, `no_audio` (the container has no audio and the
corpus has no separate audio file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from space_data import media, storage
from space_data.clip import Clip
from space_data.datasets.manifest import read_manifest, write_manifest
from space_data.datasets.mead import scan_mead
from space_data.datasets.ravdess import scan_ravdess
from space_data.datasets.splits import assign_splits
from space_data.datasets.voxceleb2 import scan_voxceleb2

__all__ = [
    "SCANNERS",
    "CorporaConfig",
    "IndexConfig",
    "assign_splits",
    "probe_clips",
    "read_manifest",
    "scan_corpora",
    "write_manifest",
]

SCANNERS: dict[str, Callable[[str], list[Clip]]] = {
    "voxceleb2": scan_voxceleb2,
    "mead": scan_mead,
    "ravdess": scan_ravdess,
}


@dataclass
class CorporaConfig:
    """Where the raw corpora are (params.yaml `corpora:`); null skips a corpus."""

    voxceleb2: str | None = None
    """VoxCeleb2 root: the corpus folder, `dev`/`test`, or an `mp4` folder (path or URL)."""
    mead: str | None = None
    """MEAD root: the folder holding the speaker folders (path or URL)."""
    ravdess: str | None = None
    """RAVDESS root: the folder holding the `Actor_NN` folders (path or URL)."""

    def __post_init__(self) -> None:
        for name, root in self.roots().items():
            if not isinstance(root, str) or not root.strip():
                raise ValueError(f"corpora.{name} must be a path or URL string, got {root!r}")

    def roots(self) -> dict[str, str]:
        """Configured corpus name → root, in SCANNERS order."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name)
        }


@dataclass
class IndexConfig:
    """How `space index` splits and probes (params.yaml `index:`)."""

    train: float = 0.8
    """Fraction of each dataset's speakers in the train split."""
    val: float = 0.1
    """Fraction of speakers in the validation split."""
    test: float = 0.1
    """Fraction of speakers in the test split."""
    seed: int = 0
    """Salt of the speaker hash that orders speakers before cutting the splits."""
    voxceleb2_own_splits: bool = True
    """VoxCeleb2 test speakers → test, dev speakers → train/val; false: split like the others."""
    probe: bool = True
    """Read fps and duration from each usable file's header (unreadable files get a reason)."""
    probe_workers: int = 4
    """Threads probing files in parallel (I/O bound on network storage)."""

    def __post_init__(self) -> None:
        fractions = (self.train, self.val, self.test)
        if any(not 0.0 <= f <= 1.0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"train/val/test must lie in [0, 1] and sum to 1, got {fractions}")
        if self.train <= 0.0:
            raise ValueError("train fraction must be positive")
        if self.probe_workers < 1:
            raise ValueError(f"probe_workers must be >= 1, got {self.probe_workers}")


def scan_corpora(config: CorporaConfig) -> list[Clip]:
    """Every configured corpus scanned, in SCANNERS order. A missing root is an error."""
    clips: list[Clip] = []
    for name, root in config.roots().items():
        if not storage.isdir(root):
            raise FileNotFoundError(
                f"corpus {name}: root {root!r} is not a folder "
                f"(fix corpora.{name} in params.yaml, or set it to null to skip {name})"
            )
        clips.extend(SCANNERS[name](root))
    return clips


def probe_clip(clip: Clip) -> Clip:
    """`clip` with fps and duration from its header; a reason instead when it cannot be read."""
    if not clip.usable:
        return clip
    try:
        info = media.probe(clip.path)
    except media.MediaError as e:
        return dataclasses.replace(clip, reason=e.reason, split=None)
    reason = "no_audio" if clip.audio_path is None and not info.has_audio else None
    split = None if reason else clip.split
    return dataclasses.replace(
        clip, fps=info.fps, duration=info.duration, reason=reason, split=split
    )


def probe_clips(clips: list[Clip], workers: int = 4) -> Iterator[Clip]:
    """`probe_clip` over `clips` in `workers` threads, yielded in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(probe_clip, clips)
