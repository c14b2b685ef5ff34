"""The per-clip feature record: the contract between `extract` and every later stage.

All time series share one timeline: 30 frames per second, frame k at t = k / 30 s.
Shapes and units are in docs/record.md; `ARRAY_MEMBERS` below is the authoritative list.
A record is stored as one `.npz` (arrays, plus `meta` / `stats` as JSON strings, plus
`frame0` JPEG and optional `audio` FLAC as uint8 byte arrays) and packed into WebDataset
shards as one member per field (`<key>.<name>.npy`, `<key>.frame0.jpg`, `<key>.meta.json`, ...).
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path

import numpy as np

from space_data.clip import Clip

FPS = 30
"""Frames per second of the shared timeline."""
SAMPLE_RATE = 16_000
"""Audio sample rate (Hz) after resampling; mono."""

# name → (trailing shape with T as the leading axis implied, dtype). K is the keypoint count.
ARRAY_MEMBERS: dict[str, str] = {
    "lm3d": "(T, 68, 3) float32, crop pixels (x right, y down, z depth in pixels)",
    "pose": "(T, 6) float32, yaw, pitch, roll in degrees; tx, ty (crop pixels), tz",
    "scale": "(T,) float32, face scale (similarity scale from canonical face to lm3d)",
    "face": "(T,) uint8, 1 where a face was found (other members are NaN where 0)",
    "lm_norm": "(T, 68, 3) float32, frontalized, landmarks 0 and 16 exactly 2 apart, centred",
    "eyes": "(T, 52, 3) float32, eye landmarks in crop pixels",
    "eyes_norm": "(T, 52, 3) float32, eye landmarks in the lm_norm normalization",
    "hands": "(T,) uint8, 0 no hand, 1 hands away from the face, 2 a hand at the face "
    "(sampled frames, held between samples)",
    "mfcc": "(1 + A, T, 40) float32, row 0 clean, rows 1..A seeded augmentations",
    "kp": "(T, K, 3) float32, face-vid2vid driving keypoints",
    "kp_source": "(K, 3) float32, canonical keypoints of the source (first) frame",
    "kp_pose": "(T, 3) float32, estimator yaw, pitch, roll in degrees",
    "kp_t": "(T, 3) float32, estimator translation",
    "kp_exp": "(T, K, 3) float32, estimator expression deltas",
    "emotion_pred": "(T, 9) float32, classifier probabilities over EMOTIONS, NaN without a face",
    "speech": "(T,) float32, speech probability (Silero VAD) per frame",
}
OPTIONAL_MEMBERS = frozenset({"mfcc", "speech", "kp", "kp_source", "kp_pose", "kp_t", "kp_exp"})


@dataclass(slots=True)
class ClipStats:
    """Per-clip statistics the filters read, so filtering never touches video again."""

    n_frames: int = 0
    """T: frames on the 30 fps timeline, round(duration × 30)."""
    duration: float = 0.0
    """Video duration in seconds (of what decoded)."""
    native_fps: float = 0.0
    """Frame rate the video was decoded at."""
    decoded_frames: int = 0
    """Native frames that decoded."""
    truncated: bool = False
    """Data is missing: decoding failed part-way, or fewer frames or seconds decoded than the
    header states (`space_data.media`)."""
    stated_duration: float = math.nan
    """Seconds of video the header states (compare `duration`: how much decoded)."""
    frames_no_face: int = 0
    """Frames on the 30 fps timeline without a face."""
    max_abs_yaw: float = math.nan
    """Degrees, over frames with a face."""
    max_abs_pitch: float = math.nan
    """Degrees, over frames with a face."""
    max_abs_roll: float = math.nan
    """Degrees, over frames with a face."""
    scale_min: float = math.nan
    scale_max: float = math.nan
    scale_median: float = math.nan
    max_landmark_jump: float = math.nan
    """Largest mean landmark displacement between consecutive native face frames / face size."""
    max_histogram_jump: float = math.nan
    """Largest colour-histogram change between consecutive native frames (0–1, `stats.py`)."""
    hand_frames: int = 0
    """Frames on the 30 fps timeline with a hand at the face (`hands` = 2)."""
    hand_span: float = 0.0
    """Seconds from the first to the last of the longest run of consecutive hand samples with a
    hand at the face (0: none, or one sample alone)."""
    has_audio: bool = False
    audio_duration: float = 0.0
    """Seconds of audio that decoded (0 when absent)."""
    av_mismatch: float = 0.0
    """audio_duration − duration, seconds (0 when there is no audio)."""
    speech_fraction: float = math.nan
    """Share of frames with speech probability ≥ 0.5 (NaN when there is no audio)."""
    av_offset_frames: float = math.nan
    """Audio–video offset, timeline frames (1/30 s), positive = audio late; NaN = unmeasured
    (no audio, no speech, no face, too short, a flat, weak or edge-peaked sync curve)."""
    av_offset_confidence: float = 0.0
    """Confidence of that offset on its backend's scale (offline: bootstrap agreement 0–1;
    syncnet: median − min distance); 0 when unmeasured."""
    av_sync_backend: str = ""
    """The sync backend that measured it (`sync_estimate.BACKENDS`); "" only in stats made
    without extraction (an extracted clip names its backend, with a reason when unmeasured)."""
    av_sync_curve: list[float] = field(default_factory=list)
    """The backend's score per lag of its search (offline: held-out R² at raw lags −12..+20 frames;
    syncnet: mean distance at lags −15..+15 of 25 fps); [] when not computed."""
    av_sync_reason: str = ""
    """Why the offset is unmeasured ("" when measured), e.g. "no_audio", "too_short", "weak",
    "edge"."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClipStats:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


RECORD_VERSION = 3
"""What extraction computes from given parameters, as a number, bumped with every change of the
code that changes what records hold (their layout is checked by `ClipMeta` itself). It is part
of the hash records and commit markers carry (`extract.extraction_hash`), so units committed by
an earlier version are extracted again, and dvc.yaml's extract stage depends on this file.
1: up to 2026-12-01; 2: augmented MFCC rows from the power spectrum, frame models on
native-resolution crops; 3: A/V sync from a backend (`av_sync_*` stats; offline offsets by
held-out audio→mouth fit, NaN when unmeasured), hands at the face (`hands` 0/1/2, `hand_span`),
`truncated` from the stated duration (`stated_duration`), every frame of AVI B-frames."""


# the packages whose versions can change a record's bytes: decoding, cropping and JPEG, landmarks,
# MFCCs (librosa's mel filters, scipy's FFT and DCT, numpy's draws of the augmentations), keypoint
# nets, the emotion classifier (fer's file read by h5py) and the speech detector (silero-vad,
# onnxruntime)
RECORD_PACKAGES = (
    "space",
    "av",
    "opencv-contrib-python",
    "mediapipe",
    "numpy",
    "librosa",
    "scipy",
    "torch",
    "h5py",
    "onnxruntime",
    "fer",
    "silero-vad",
)


@functools.cache
def record_versions() -> dict[str, str]:
    """Installed version of each of RECORD_PACKAGES ("unknown" when absent)."""
    versions = {}
    for name in RECORD_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


class MetaError(ValueError):
    """A stored meta that does not have exactly the fields of `ClipMeta` (names the keys)."""


@dataclass(slots=True)
class ClipMeta:
    """Who a record is and how it was made: the manifest fields it copies, the extraction's
    params hash and package versions, and (on success) what extraction found out.

    Made by `ClipMeta.of` alone, for records that succeed and records that fail, so both have
    the same fields; the extraction fields stay None where a clip failed before them. Stored
    as JSON (`to_dict`, sorted keys); `from_dict` fails on a missing or unknown key, so a
    renamed field cannot be read as "absent".
    """

    clip_id: str
    dataset: str
    speaker: str
    source: str
    """The clip's video file (path or URL)."""
    emotion: str | None
    """One of clip.EMOTIONS, or None when unlabelled."""
    intensity: float | None
    """Emotion intensity in [0, 1], or None when unlabelled."""
    emotion_source: str
    """Where `emotion` comes from: "manifest" (corpus label) or "unlabelled"."""
    view: str | None
    """Camera view (MEAD), else None."""
    split: str | None
    """train / val / test from the manifest."""
    params_hash: str
    """config_hash of the extraction params (`extract` section)."""
    versions: dict[str, str]
    """Version of each of RECORD_PACKAGES."""
    emotion_classifier: dict[str, str] | None
    """{"name", "sha256"} of the per-frame emotion classifier and its file (None: not run)."""
    speech_model: str | None
    """The speech-activity model (None: not run)."""
    keypoints: str | None = None
    """"extracted", or why the keypoint members are absent; None when extraction stopped first."""
    native_fps: float | None = None
    """Frame rate the video was decoded at."""
    crop_box: list[int] | None = None
    """[x0, y0, x1, y1] full-resolution pixels of the crop (the whole frame when not cropped)."""
    crop_size: int | None = None
    """Side the crop was resized to; None for whole-frame datasets (and failures)."""
    source_size: list[int] | None = None
    """[width, height] of the decoded video."""

    @classmethod
    def of(
        cls,
        clip: Clip,
        params_hash: str,
        emotion_classifier: dict[str, str] | None = None,
        speech_model: str | None = None,
    ) -> ClipMeta:
        """The meta of `clip` before extraction (labels from the manifest, never a guess) by
        the extractor whose params hash and models are given."""
        return cls(
            clip_id=clip.clip_id,
            dataset=clip.dataset,
            speaker=clip.speaker,
            source=clip.path,
            emotion=clip.emotion,
            intensity=clip.intensity,
            emotion_source="unlabelled" if clip.emotion is None else "manifest",
            view=clip.view,
            split=clip.split,
            params_hash=params_hash,
            versions=dict(record_versions()),  # a copy: records must not share one dict
            emotion_classifier=emotion_classifier,
            speech_model=speech_model,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClipMeta:
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - set(d)), sorted(set(d) - names)
        if missing or unknown:
            raise MetaError(
                f"meta of {d.get('clip_id', '?')} does not fit ClipMeta: missing {missing}, "
                f"unknown {unknown} (records made by another version of space: extract again)"
            )
        return cls(**d)


@dataclass(slots=True)
class ClipFeatures:
    """Everything extracted from one clip, or why nothing could be.

    `status` is "ok" or "error"; on error `reason` says why (a short snake_case code
    followed by `: detail`) and the arrays are empty.
    """

    meta: ClipMeta
    status: str = "ok"
    reason: str | None = None
    stats: ClipStats = field(default_factory=ClipStats)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    """Members of ARRAY_MEMBERS by name."""
    frame0: bytes | None = None
    """512×512 (or native VoxCeleb2 track size) JPEG of the first crop."""
    audio: bytes | None = None
    """16 kHz mono FLAC when requested."""

    def __post_init__(self) -> None:
        if self.status not in ("ok", "error"):
            raise ValueError(f"status must be ok or error, not {self.status!r}")
        unknown = set(self.arrays) - set(ARRAY_MEMBERS)
        if unknown:
            raise ValueError(f"unknown record members {sorted(unknown)}")

    @classmethod
    def failed(cls, meta: ClipMeta, reason: str) -> ClipFeatures:
        return cls(meta, status="error", reason=reason)

    @property
    def clip_id(self) -> str:
        return self.meta.clip_id

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def save_npz(self, path: str | Path) -> None:
        """Write the record to one `.npz` (not compressed: arrays are small, loads stay fast)."""
        payload: dict[str, np.ndarray] = dict(self.arrays)
        header = {"clip_id": self.clip_id, "status": self.status, "reason": self.reason}
        payload["header"] = _json_array(header)
        payload["meta"] = _json_array(self.meta.to_dict())
        payload["stats"] = _json_array(self.stats.to_dict())
        if self.frame0 is not None:
            payload["frame0"] = np.frombuffer(self.frame0, dtype=np.uint8)
        if self.audio is not None:
            payload["audio"] = np.frombuffer(self.audio, dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **payload)

    @classmethod
    def load_npz(cls, path: str | Path) -> ClipFeatures:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes())
            arrays = {k: z[k] for k in z.files if k in ARRAY_MEMBERS}
            meta = ClipMeta.from_dict(json.loads(z["meta"].tobytes()))
            if meta.clip_id != header["clip_id"]:
                raise MetaError(f"{path}: header clip {header['clip_id']}, meta {meta.clip_id}")
            return cls(
                meta=meta,
                status=header["status"],
                reason=header["reason"],
                stats=ClipStats.from_dict(json.loads(z["stats"].tobytes())),
                arrays=arrays,
                frame0=z["frame0"].tobytes() if "frame0" in z.files else None,
                audio=z["audio"].tobytes() if "audio" in z.files else None,
            )

    def shard_members(self) -> dict[str, bytes]:
        """WebDataset members (extension → bytes), sorted by name; keys have no dots."""
        out: dict[str, bytes] = {}
        for name, arr in self.arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
            out[f"{name}.npy"] = buf.getvalue()
        out["meta.json"] = meta_json(self.meta, self.stats)
        if self.frame0 is not None:
            out["frame0.jpg"] = self.frame0
        if self.audio is not None:
            out["audio.flac"] = self.audio
        return dict(sorted(out.items()))


def meta_json(meta: ClipMeta, stats: ClipStats) -> bytes:
    """A shard sample's `meta.json`: the ClipMeta fields plus `stats` (ClipStats), sorted keys.
    Strict JSON: an unmeasured (NaN or infinite) statistic is null, as is every absent value,
    so each field has one type in every sample, or null (`space_data.shard_schema`)."""
    return json.dumps(
        _nulls(dict(meta.to_dict(), stats=stats.to_dict())), sort_keys=True, allow_nan=False
    ).encode()


def read_meta_json(raw: bytes | dict) -> tuple[ClipMeta, ClipStats]:
    """The typed meta and stats of a shard sample's `meta.json` (what `shard_members` wrote),
    as bytes or as the dict webdataset's `.decode()` makes of it; a null statistic of a float
    field (or element of a float list) is NaN again."""
    meta = json.loads(raw) if isinstance(raw, bytes) else dict(raw)
    stats = dict(meta.pop("stats", {}))
    for f in fields(ClipStats):
        value = stats.get(f.name)
        if f.type == "float" and value is None:
            stats[f.name] = math.nan
        elif str(f.type).startswith("list[float]") and isinstance(value, list):
            stats[f.name] = [math.nan if v is None else v for v in value]
    return ClipMeta.from_dict(meta), ClipStats.from_dict(stats)


def _nulls(obj: object) -> object:
    """`obj` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nulls(v) for v in obj]
    return obj


def _json_array(obj: object) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, sort_keys=True).encode(), dtype=np.uint8)
