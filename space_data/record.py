"""The per-clip feature record: the contract between `extract` and every later stage.

All time series share one timeline: 30 frames per second, frame k at t = k / 30 s.
Shapes and units are in DESIGN.md; `ARRAY_MEMBERS` below is the authoritative list.
A record is stored as one `.npz` (arrays, plus `meta` / `stats` as JSON strings, plus
`frame0` JPEG and optional `audio` FLAC as uint8 byte arrays) and packed into WebDataset
shards as one member per field (`<key>.<name>.npy`, `<key>.frame0.jpg`, `<key>.meta.json`, ...).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

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
    "hands": "(T,) uint8, 1 where a hand was detected (sampled frames, held between samples)",
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
    """The container promised more frames than decoded."""
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
    """Frames on the 30 fps timeline flagged with a hand."""
    has_audio: bool = False
    audio_duration: float = 0.0
    """Seconds of audio that decoded (0 when absent)."""
    av_mismatch: float = 0.0
    """audio_duration − duration, seconds (0 when there is no audio)."""
    speech_fraction: float = math.nan
    """Share of frames with speech probability ≥ 0.5 (NaN when there is no audio)."""
    av_offset_frames: int = 0
    """Audio–video offset estimate, frames, positive = audio late (space_data.av_offset)."""
    av_offset_confidence: float = 0.0
    """Peak − median lag correlation of that estimate; 0 without enough speech."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClipStats:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(slots=True)
class ClipFeatures:
    """Everything extracted from one clip, or why nothing could be.

    `status` is "ok" or "error"; on error `reason` says why (a short snake_case code
    followed by `: detail`) and the arrays are empty. `meta` carries id, dataset, speaker,
    emotion, intensity, view, split, native fps, crop box, versions and the params hash.
    """

    clip_id: str
    status: str = "ok"
    reason: str | None = None
    meta: dict = field(default_factory=dict)
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
    def failed(
        cls, clip_id: str, reason: str, meta: dict | None = None, stats: ClipStats | None = None
    ) -> ClipFeatures:
        return cls(
            clip_id, status="error", reason=reason, meta=meta or {}, stats=stats or ClipStats()
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def save_npz(self, path: str | Path) -> None:
        """Write the record to one `.npz` (not compressed: arrays are small, loads stay fast)."""
        payload: dict[str, np.ndarray] = dict(self.arrays)
        header = {"clip_id": self.clip_id, "status": self.status, "reason": self.reason}
        payload["header"] = _json_array(header)
        payload["meta"] = _json_array(self.meta)
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
            return cls(
                clip_id=header["clip_id"],
                status=header["status"],
                reason=header["reason"],
                meta=json.loads(z["meta"].tobytes()),
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
        meta = dict(self.meta, stats=self.stats.to_dict())
        out["meta.json"] = json.dumps(meta, sort_keys=True, allow_nan=True).encode()
        if self.frame0 is not None:
            out["frame0.jpg"] = self.frame0
        if self.audio is not None:
            out["audio.flac"] = self.audio
        return dict(sorted(out.items()))


def _json_array(obj: object) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, sort_keys=True).encode(), dtype=np.uint8)
