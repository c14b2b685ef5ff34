"""`SyncEstimate`: one clip's audio–video offset as a sync backend measured it.

The interface between the backends (`space_data.av_offset`, the offline audio→mouth
estimator; `space_data.syncnet`, the public SyncNet behind a checkpoint) and the record
(`ClipStats.av_offset_frames`, `av_offset_confidence`, `av_sync_backend`, `av_sync_curve`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BACKENDS = ("offline", "syncnet")
"""Names of the sync backends (`extract.av_sync.backend`)."""


@dataclass(frozen=True)
class SyncEstimate:
    """One clip's offset. Unmeasured (no speech, no face, too short, a flat or weak curve, a
    maximum at the edge of the lag search) is `offset_frames` NaN with `confidence` 0, never a
    value."""

    backend: str
    """Which backend measured it: one of `BACKENDS`."""
    offset_frames: float = math.nan
    """Timeline frames (1/30 s), positive = audio late; NaN = unmeasured."""
    confidence: float = 0.0
    """On the backend's own scale (its docs say which); 0 when unmeasured."""
    curve: tuple[float, ...] = field(default_factory=tuple)
    """The backend's score per lag of its search (its docs give the lags and the order)."""
    reason: str = ""
    """Why the offset is unmeasured ('' when measured)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"sync backend must be one of {BACKENDS}, not {self.backend!r}")

    @property
    def measured(self) -> bool:
        return math.isfinite(self.offset_frames)

    @classmethod
    def unmeasured(cls, backend: str, reason: str, curve: tuple[float, ...] = ()) -> SyncEstimate:
        return cls(backend, math.nan, 0.0, tuple(curve), reason)


@dataclass
class AvSyncConfig:
    """Audio–video sync estimation (`extract.av_sync` in params.yaml)."""

    backend: str = "offline"
    """"offline": the lag whose audio best predicts the mouth (space_data.av_offset, no weights);
    "syncnet": the public SyncNet (space_data.syncnet) from `syncnet_checkpoint`."""
    syncnet_checkpoint: str | None = None
    """SyncNet weights in the layout of the published `syncnet_v2.model` (local path or URL);
    required by the syncnet backend, unused by the offline one."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.syncnet_checkpoint is not None and not str(self.syncnet_checkpoint).strip():
            raise ValueError("syncnet_checkpoint must be a path or null, not an empty string")
        if self.backend == "syncnet" and self.syncnet_checkpoint is None:
            raise ValueError(
                "backend syncnet needs syncnet_checkpoint: the published syncnet_v2.model "
                "(space_data.syncnet.CHECKPOINT_URL), or use backend offline"
            )
