"""Corpus indexers: raw corpus folders → `Clip` rows of `data/manifest.parquet`.

`CORPORA` is the registry: one line per corpus module (`voxceleb2`, `mead`, `ravdess`, `hdtf`,
`cremad`), each declaring a `Corpus` (name, scanner, whether its frames are used whole, its
labels). Everything else that lists corpora derives from it: `DATASETS`, the `CorporaConfig`
fields (params.yaml `corpora:`), `space index --corpus` and `space extract-clip --dataset`, the
sample corpus (which fails loudly for a corpus without a sample layout), the report's tables and
`metrics.json`. Each scanner knows its corpus layout and labels and returns one `Clip` per
media path seen: usable (`reason` None) or rejected with a reason and a detail (never dropped,
never raised). `scan_corpora` runs the configured scanners, `probe_clips` adds fps and duration
from the container headers, `assign_splits` gives usable clips a speaker-disjoint split, and
`write_manifest` / `read_manifest` store the rows.

Adding a corpus: its module here (docstring with source, licence, layout, reasons; `scan_<name>`
and `CORPUS`), its test, one line in `CORPORA`, its `corpora:` key in params.yaml, and its
sample layout in `space_data/synth/layouts.py`.

Reasons besides the per-corpus ones and those of `files`: `duplicate_id`, and from probing
`empty_file`, `unreadable`, `no_video_stream`, `no_frames`, `no_audio` (the container has no
audio and the corpus has no separate audio file).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from space_data import media, storage
from space_data.clip import Clip
from space_data.datasets import cremad, hdtf, mead, ravdess, voxceleb2
from space_data.datasets.corpus import Corpus
from space_data.datasets.manifest import read_manifest, write_manifest
from space_data.datasets.splits import (
    assign_splits,
    balanced_table,
    empty_splits,
    read_split_table,
    write_split_table,
)

__all__ = [
    "CORPORA",
    "DATASETS",
    "Corpus",
    "CorporaConfig",
    "CorporaRoots",
    "CorpusLayoutError",
    "IndexConfig",
    "assign_splits",
    "balanced_table",
    "empty_splits",
    "probe_clips",
    "read_manifest",
    "read_split_table",
    "sample_clips",
    "scan_corpora",
    "whole_frames",
    "write_manifest",
    "write_split_table",
]

CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        voxceleb2.CORPUS,
        mead.CORPUS,
        ravdess.CORPUS,
        hdtf.CORPUS,
        cremad.CORPUS,
    )
}
"""The registry: corpus name → `Corpus`, in the order corpora are scanned and reported."""
DATASETS: tuple[str, ...] = tuple(CORPORA)
"""The registered corpus names (`Clip.dataset` values), in `CORPORA` order."""


def whole_frames(dataset: str) -> bool:
    """Whether `dataset`'s frames are face tracks used whole (False for unregistered names:
    an unknown source is cropped around the face)."""
    corpus = CORPORA.get(dataset)
    return corpus is not None and corpus.whole_frames


class CorporaRoots:
    """What every `CorporaConfig` does (its fields are made from the registry, so it is built
    with `dataclasses.make_dataclass`; annotate with this class)."""

    def __post_init__(self) -> None:
        for name, root in self.roots().items():
            if not isinstance(root, str) or not root.strip():
                raise ValueError(f"corpora.{name} must be a path or URL string, got {root!r}")

    def roots(self) -> dict[str, str]:
        """Configured corpus name → root, in `CORPORA` order."""
        return {name: getattr(self, name) for name in DATASETS if getattr(self, name)}


CorporaConfig: type[CorporaRoots] = dataclasses.make_dataclass(
    "CorporaConfig",
    [(name, str | None, dataclasses.field(default=None)) for name in DATASETS],
    bases=(CorporaRoots,),
)
CorporaConfig.__module__ = __name__
CorporaConfig.__doc__ = (
    "Where the raw corpora are (params.yaml `corpora:`): one optional root (path or URL) per "
    "registered corpus, in `CORPORA` order; null skips a corpus. What each root is: "
    + "; ".join(f"{c.name}: {c.root}" for c in CORPORA.values())
    + "."
)


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
    """Salt of the speaker hash that places each speaker in a split."""
    voxceleb2_own_splits: bool = True
    """VoxCeleb2 test speakers → test, dev speakers → train/val; false: split like the others."""
    splits_file: str | None = None
    """Pinned speaker → split table (CSV `dataset,speaker,split`; a path or URL) that wins over
    the hash for the speakers it lists; None: every speaker hashed. `space index
    --write-splits` writes one with exact fractions."""
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
        if self.splits_file is not None and not self.splits_file.strip():
            raise ValueError("splits_file must be a path or URL, or null")


class CorpusLayoutError(ValueError):
    """A corpus root holding no media file of its corpus's layout (an empty folder, or another
    corpus's tree)."""


def scan_corpora(config: CorporaRoots) -> list[Clip]:
    """Every configured corpus scanned, in `CORPORA` order. A missing root is an error."""
    clips: list[Clip] = []
    for name, root in config.roots().items():
        if not storage.isdir(root):
            raise FileNotFoundError(
                f"corpus {name}: root {root!r} is not a folder "
                f"(fix corpora.{name} in params.yaml, or set it to null to skip {name})"
            )
        rows = CORPORA[name].scan(root)
        if all(c.reason in OFF_LAYOUT for c in rows):
            raise CorpusLayoutError(
                f"corpus {name}: no media file of its layout below {root!r}: expected "
                f"{CORPORA[name].layout}, found {_found(root, rows)} (fix corpora.{name} or "
                f"--corpus {name}=ROOT)"
            )
        clips.extend(rows)
    return clips


OFF_LAYOUT = ("bad_layout", "bad_name")
"""Scanner reasons of a media-named file that is not where, or not named as, the layout says."""


def _found(root: str, rows: list[Clip]) -> str:
    """What a root without a file of its layout holds, in a few words."""
    files = [path for path, kind in storage.walk_entries(root) if kind == "file"]
    if not files:
        return "no file at all"
    suffixes = Counter(storage.name(p).rpartition(".")[2].lower() or "(none)" for p in files)
    common = ", ".join(f"{n} .{s}" for s, n in suffixes.most_common(3))
    example = rows[0].detail if rows else storage.relpath(files[0], root)
    return f"{len(files)} files ({common}{', ...' if len(suffixes) > 3 else ''}; e.g. {example})"


def sample_clips(root: str) -> list[Clip]:
    """Usable clips of every registered corpus whose tree is under `root` (`root/<name>/`, the
    sample corpus's layout), in `CORPORA` order; corpora without a folder there are skipped."""
    clips: list[Clip] = []
    for name, corpus in CORPORA.items():
        folder = storage.join(root, name)
        if storage.isdir(folder):
            clips.extend(c for c in corpus.scan(folder) if c.usable)
    return clips


def probe_clip(clip: Clip) -> Clip:
    """`clip` with fps and duration from its header; a reason instead when it cannot be read."""
    if not clip.usable:
        return clip
    try:
        info = media.probe(clip.path)
    except media.MediaError as e:
        return dataclasses.replace(clip, reason=e.reason, detail=e.detail, split=None)
    clip = dataclasses.replace(clip, fps=info.fps, duration=info.duration)
    if clip.audio_path is None and not info.has_audio:
        detail = f"{clip.path} has no audio stream and the corpus no separate audio file"
        return dataclasses.replace(clip, reason="no_audio", detail=detail, split=None)
    return clip


def probe_clips(clips: list[Clip], workers: int = 4) -> Iterator[Clip]:
    """`probe_clip` over `clips` in `workers` threads, yielded in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(probe_clip, clips)
