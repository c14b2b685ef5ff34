"""The manifest row (`Clip`) and the vocabulary every corpus maps its labels into.

A `Clip` is what crosses from `index` to `extract`: one row of `data/manifest.parquet`.

Emotion vocabulary (one for all corpora): neutral, calm, happy, sad, angry, fearful,
disgusted, surprised, contempt. Each corpus module maps its own codes into it (MEAD's `fear`
becomes `fearful`, RAVDESS's `disgust` and CREMA-D's DIS `disgusted`); VoxCeleb2 and HDTF have no
labels (emotion and intensity are null). Intensity lies in [0, 1] (MEAD levels 1/2/3 and CREMA-D
LO/MD/HI → 1/3, 2/3, 1; RAVDESS normal/strong → 0.5/1); neutral is 0 everywhere (a zero emotion
vector leaves the models unconditioned).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
    "contempt",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")

EXTRACTION_FIELDS: tuple[str, ...] = (
    "clip_id",
    "dataset",
    "speaker",
    "path",
    "audio_path",
    "emotion",
    "intensity",
    "view",
    "split",
)
"""The `Clip` fields extraction reads: the media it decodes, the group and labels it copies into
records and clips.parquet. `clip_key` hashes these alone, so a new field elsewhere (or a
changed fps / duration / reason, which extraction never reads) recomputes nothing."""

_KEY_OK = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def make_clip_id(dataset: str, relpath: str) -> str:
    """Stable WebDataset-safe key from the dataset and the dataset-relative path.

    `mead`, `M003/video/front/angry/level_1/001.mp4` → `mead-M003-video-front-angry-level_1-001`.
    Path separators become `-`, the extension is dropped, accents are dropped (`é` → `e`) and
    any other character outside `[A-Za-z0-9_-]` becomes `_` (keys must not contain dots:
    WebDataset splits there). When a character had to change, two paths could meet in one key
    (`Ünï cødé` and `Ñnï cødé` both start `_n`...), so the key then ends with `-` and 8 hex
    digits of sha256 of the NFC-normalised `relpath`: distinct paths keep distinct ids, and a
    path the slug renders exactly keeps its plain id.
    """
    original = unicodedata.normalize("NFC", relpath.replace("\\", "/"))
    stem = original
    if "." in stem.rsplit("/", 1)[-1]:
        stem = stem[: stem.rfind(".")]
    parts = [p for p in stem.split("/") if p]
    slugs = [_KEY_BAD_CHARS.sub("_", _strip_accents(p)) for p in parts]
    key = "-".join([dataset, *slugs])
    if slugs != parts:
        key += "-" + hashlib.sha256(original.encode()).hexdigest()[:8]
    if not _KEY_OK.match(key):
        raise ValueError(f"cannot build a clip id from {dataset!r}, {relpath!r}")
    return key


def _strip_accents(text: str) -> str:
    """`Ünï` → `Uni`: compatibility decomposition without the combining marks."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@dataclass(slots=True)
class Clip:
    """One file seen by an indexer: a usable clip (`reason is None`) or a recorded rejection."""

    clip_id: str
    """Stable key, `[A-Za-z0-9_-]+`, from `make_clip_id`."""
    dataset: str
    """Corpus name (`space_data.datasets.DATASETS`)."""
    speaker: str
    """Corpus speaker id (VoxCeleb2 `idNNNNN`, MEAD `M003`, RAVDESS `Actor_01`)."""
    path: str
    """Video file path (absolute, or a URL such as `s3://...`)."""
    audio_path: str | None = None
    """Separate audio file (MEAD `.m4a`); None when the audio is in the video container."""
    emotion: str | None = None
    """One of EMOTIONS; None when the corpus has no label (VoxCeleb2, HDTF)."""
    intensity: float | None = None
    """Emotion intensity in [0, 1]; None when unlabelled."""
    view: str | None = None
    """Camera view (MEAD: front, top, down, left_30, ...); None elsewhere."""
    split: str | None = None
    """train / val / test; None until splits are assigned or when rejected."""
    fps: float | None = None
    """Native video frame rate from the container header; None when not probed."""
    duration: float | None = None
    """Video duration in seconds from the container header; None when not probed."""
    reason: str | None = None
    """Why this file is not used (e.g. `excluded_view`, `song`, `bad_name`); None when usable."""
    detail: str | None = None
    """What exactly is wrong, for people (the field or file at fault); None when usable."""

    def __post_init__(self) -> None:
        if not _KEY_OK.match(self.clip_id):
            raise ValueError(f"clip_id {self.clip_id!r} is not [A-Za-z0-9_-]+")
        if self.emotion is not None and self.emotion not in EMOTIONS:
            raise ValueError(f"emotion {self.emotion!r} is not in {EMOTIONS}")
        if self.intensity is not None and not 0.0 <= self.intensity <= 1.0:
            raise ValueError(f"intensity {self.intensity} is outside [0, 1]")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} is not in {SPLITS}")

    @property
    def usable(self) -> bool:
        return self.reason is None

    def to_row(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> Clip:
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {
            k: (None if _is_missing(v) else v) for k, v in row.items() if k in names
        }
        return cls(**kwargs)


def clip_key(clip: Clip) -> str:
    """16 hex digits of sha256 over `EXTRACTION_FIELDS`: a record is stale when, and only when,
    a field extraction reads changes."""
    values = tuple(getattr(clip, name) for name in EXTRACTION_FIELDS)
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def _is_missing(value: object) -> bool:
    # pandas gives NaN for missing floats and None for missing strings
    return value is None or (isinstance(value, float) and value != value)
