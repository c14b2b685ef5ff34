"""SyncNet audio–video offset (`extract.av_sync.backend: syncnet`): the public SyncNet of
Chung & Zisserman ("Out of time", ACCV 2016 workshops), as joonson/syncnet_python runs it.

The model (`SyncNet`) is that repository's class `S` (1024-d embeddings) with the same module
names, so its published state dict `syncnet_v2.model` (`CHECKPOINT_URL`) loads with strict keys.
No weights ship with the project: `extract.av_sync.syncnet_checkpoint` names the file (local
path or URL); a missing or mismatched file stops the run with one line naming it.

The computation is the reference's `SyncNetInstance.evaluate`, step for step:
- video: the face crop at 224×224, BGR channel order (the reference reads cv2 frames), float
  0–255, at 25 fps; audio: 16 kHz mono int16 samples (float audio × 32768, rounded, clipped);
- MFCC: `python_speech_features.mfcc(audio, 16000)` with its defaults (13 coefficients, 25 ms
  windows every 10 ms: 4 rows per video frame), as a (13, rows) float image;
- `frames = min(video frames, samples // 640)`; for each start v < frames − 5 (the reference
  leaves the last possible window out; kept for parity), the lip window is frames v..v+4 and
  the audio window MFCC rows 4v..4v+19; each goes through its stream to a 1024-d embedding;
- for each lag L in −15..+15 (`VSHIFT`), the Euclidean distance (`torch.pairwise_distance`)
  between lip window v and audio window v + L, the audio embeddings zero-padded beyond either
  end as the reference's `calc_pdist` does; the curve is the mean over windows per lag
  (`mdist`, index 0 = lag −15 … 30 = lag +15, the reference's order);
- the reference's offset = 15 − argmin, its confidence = median − min of the curve.

Sign: the reference's offset is the negated lag of the minimum, so its positive offset means the
audio comes EARLY (the sound of video frame v is found at audio frame v − offset). The
project's `offset_frames` is positive = audio LATE, on the 30 fps timeline:
offset_frames = (argmin − 15) × 30 / 25 = −reference offset × 1.2 (tests/space_data/
test_syncnet.py checks it by delaying a clip's audio).

Differences from the reference, all measured equal within float rounding (tests): the lip
stream runs on a clip's 25 fps frames as one sequence per batch instead of stacking 5-frame
copies (its only temporal kernel is the first conv's 5; every later layer has temporal size
1), and frames are streamed: at most `BATCH + WINDOW` 224² frames are held, whatever the clip's
length. Frames at other rates are resampled by time: 25 fps frame k (t = k / 25 s) is the
native frame nearest in time (the earlier on a tie), the timestamps being the decoder's.

Unmeasured (`SyncEstimate.unmeasured`): no audio, no frames, fewer than `MIN_FRAMES` 25 fps
frames with both video and audio (each lag should compare at least 30 windows), a flat curve,
or the minimum at the edge of the lag search (±15 frames at 25 fps, ±18 timeline frames): the
true offset may lie beyond it, so the edge is not reported as a value. Such estimates keep their
curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import python_speech_features
import torch
import torch.nn.functional as F
from torch import nn

from space_data.errors import SetupError
from space_data.keypoints import read_torch_checkpoint, torch_device
from space_data.record import FPS as TIMELINE_FPS
from space_data.sync_estimate import SyncEstimate

CHECKPOINT_URL = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"
"""Where the trained weights are published (joonson/syncnet_python's download_model.sh)."""
FPS = 25
"""Video frame rate SyncNet was trained on."""
SAMPLE_RATE = 16_000
"""Audio sample rate (Hz) SyncNet was trained on."""
IMAGE_SIZE = 224
"""Side of the square BGR face crop the lip stream reads, pixels."""
WINDOW = 5
"""Video frames per lip window (0.2 s)."""
MFCC_PER_FRAME = 4
"""MFCC rows (10 ms hop) per 25 fps frame: an audio window is WINDOW × 4 = 20 rows."""
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
"""Audio samples per 25 fps frame (640)."""
VSHIFT = 15
"""Largest lag searched, 25 fps frames, either way (the reference's `vshift`)."""
MIN_FRAMES = WINDOW + 2 * VSHIFT
"""Fewest 25 fps frames with video and audio for an estimate (35 frames, 1.4 s)."""
BATCH = 20
"""Windows per forward pass (the reference's default `batch_size`)."""
EMBEDDING = 1024
"""Embedding size of the published model (`num_layers_in_fc_layers`)."""


class SyncNet(nn.Module):
    """The reference's `S`: lip stream (N, 3, 5, 224, 224) BGR 0–255 → (N, 1024) and audio
    stream (N, 1, 13, 20) MFCC → (N, 1024). Module names and Sequential indices are those of
    `syncnet_v2.model` (they are its state-dict keys)."""

    def __init__(self, embedding: int = EMBEDDING) -> None:
        super().__init__()

        def conv2d(c_in: int, c_out: int, kernel=(3, 3), padding=(1, 1)) -> list:
            return [nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.BatchNorm2d(c_out),
                    nn.ReLU()]  # fmt: skip

        def conv3d(c_in: int, c_out: int, kernel, stride=1, padding=0) -> list:
            return [nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding),
                    nn.BatchNorm3d(c_out), nn.ReLU()]  # fmt: skip

        def head() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding)
            )

        # (N, 1, 13, 20) → (N, 512, 1, 1); the reference's first pool is a 1×1 max pool, i.e.
        # the identity: kept as one so the later indices (the checkpoint's keys) line up
        self.netcnnaud = nn.Sequential(
            *conv2d(1, 64), nn.Identity(),
            *conv2d(64, 192), nn.MaxPool2d((3, 3), stride=(1, 2)),  # 13×20 → 11×9
            *conv2d(192, 384), *conv2d(384, 256), *conv2d(256, 256),
            nn.MaxPool2d((3, 3), stride=(2, 2)),  # → 5×4
            *conv2d(256, 512, kernel=(5, 4), padding=(0, 0)),  # → 1×1
        )  # fmt: skip
        self.netfcaud = head()
        self.netfclip = head()
        # (N, 3, T, 224, 224) → (N, 512, T − 4, 1, 1): only the first kernel spans time
        self.netcnnlip = nn.Sequential(
            *conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)),  # → 109²
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),  # → 54²
            *conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),  # → 26²
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # → 13²
            *conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),  # → 6²
            *conv3d(256, 512, (1, 6, 6)),  # → 1²
        )  # fmt: skip

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows → (N, 1024)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR windows → (N, 1024)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))

    def lip_sequence(self, frames: torch.Tensor) -> torch.Tensor:
        """(3, T, 224, 224) consecutive BGR frames → (T − 4, 1024): the embeddings of its
        T − 4 windows of 5 frames, as `forward_lip` on each, without copying the windows."""
        features = self.netcnnlip(frames[None])  # (1, 512, T − 4, 1, 1)
        return self.netfclip(features[0, :, :, 0, 0].T)


# ---------------------------------------------------------------------------------------------
# Checkpoint


class SyncNetCheckpointError(SetupError, ValueError):
    """The configured SyncNet checkpoint cannot be used (stops the run, names the file)."""


def load_syncnet(path: str) -> SyncNet:
    """SyncNet in eval mode from a `syncnet_v2.model`-layout state dict (local path or URL),
    read with `weights_only=True` and loaded with strict keys. FileNotFoundError /
    SyncNetCheckpointError with one line naming the file otherwise."""
    state = read_torch_checkpoint(
        path,
        "SyncNet checkpoint",
        "set extract.av_sync.syncnet_checkpoint in params.yaml to the published syncnet_v2.model "
        f"({CHECKPOINT_URL}) or use extract.av_sync.backend: offline",
        SyncNetCheckpointError,
    )
    with torch.device("meta"):  # no random init of weights that are overwritten anyway
        model = SyncNet()
    problem = _key_problem(model.state_dict(), state)
    if problem:
        raise SyncNetCheckpointError(
            f"{path} is not a SyncNet state dict in the layout of syncnet_v2.model "
            f"({CHECKPOINT_URL}): {problem}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _key_problem(expected: dict, found: object) -> str:
    """'' when `found` has exactly `expected`'s keys and shapes, else one line naming those
    that differ."""
    if not isinstance(found, dict):
        return f"found a {type(found).__name__}, not a state dict"
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    shapes = [
        f"{k} {tuple(found[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in expected
        if k in found
        and (not isinstance(found[k], torch.Tensor) or found[k].shape != expected[k].shape)
    ]
    parts = [
        f"{label} {_few(keys)}"
        for label, keys in (("missing keys", missing), ("unexpected keys", extra),
                            ("mis-shaped", shapes))
        if keys
    ]  # fmt: skip
    return "; ".join(parts)


def _few(items: list[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return f"{shown} (+{len(items) - n} more)" if len(items) > n else shown


# ---------------------------------------------------------------------------------------------
# Inputs


def int16_audio(audio: np.ndarray) -> np.ndarray:
    """(S,) float audio in [−1, 1] → (S,) int16 (× 32768, rounded, clipped), what FFmpeg's
    pcm_s16le output (the reference's wav file) holds."""
    scaled = np.rint(np.asarray(audio, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def mfcc_image(audio: np.ndarray) -> np.ndarray:
    """(13, rows) float32 MFCCs of (S,) int16 16 kHz audio, `python_speech_features.mfcc`
    with its defaults (10 ms hop: row r covers samples 160 r … 160 r + 400)."""
    return python_speech_features.mfcc(audio, SAMPLE_RATE).T.astype(np.float32)


def face_input(crop: np.ndarray) -> np.ndarray:
    """(224, 224, 3) uint8 BGR lip-stream frame from an (H, W, 3) uint8 RGB face crop, resized
    bilinearly as the reference's crop step (`cv2.resize` defaults)."""
    if crop.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        crop = cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop[..., ::-1])


def frames_at_25fps(duration: float) -> int:
    """25 fps frames of `duration` seconds of video: those with k / 25 < duration."""
    return math.ceil(duration * FPS - 1e-6)


class NearestFrames:
    """Streaming resampling to 25 fps by time: frame k (t = k / 25 s) is the native frame
    nearest in time, the earlier one on a tie. `add` returns the 25 fps frames a native frame
    settles (those closer to the previous frame than to it), `finish` the rest."""

    def __init__(self) -> None:
        self.count = 0
        """25 fps frames returned so far."""
        self._last: tuple[float, np.ndarray] | None = None

    def add(self, t: float, frame: np.ndarray) -> list[np.ndarray]:
        """`t`: seconds since the first frame (increasing)."""
        out = []
        if self._last is not None:
            middle = 0.5 * (self._last[0] + t)
            while self.count / FPS <= middle:
                out.append(self._last[1])
                self.count += 1
        self._last = (t, frame)
        return out

    def finish(self, duration: float) -> list[np.ndarray]:
        """The 25 fps frames up to `duration` seconds of video (the last native frame's)."""
        if self._last is None:
            return []
        out = [self._last[1]] * max(0, frames_at_25fps(duration) - self.count)
        self.count += len(out)
        return out


# ---------------------------------------------------------------------------------------------
# The result and the offset


@dataclass(frozen=True)
class SyncNetResult:
    """The reference's outputs for one clip."""

    mdist: np.ndarray
    """(31,) float32 mean lip–audio distance per lag −15 … +15 (25 fps frames, audio later)."""
    im_feat: np.ndarray
    """(windows, 1024) float32 lip embeddings."""
    cc_feat: np.ndarray
    """(windows, 1024) float32 audio embeddings."""
    frames: int
    """25 fps frames of video."""

    @property
    def offset(self) -> int:
        """The reference's offset: VSHIFT − argmin, 25 fps frames, positive = audio EARLY."""
        return VSHIFT - int(np.argmin(self.mdist))

    @property
    def confidence(self) -> float:
        """The reference's confidence: median − min of the curve."""
        return float(np.median(self.mdist) - self.mdist.min())

    def estimate(self) -> SyncEstimate:
        """The project's `SyncEstimate`: offset in timeline frames, positive = audio late;
        unmeasured (curve kept) when the minimum sits at the edge of the lag search or the
        curve is flat."""
        curve = tuple(float(d) for d in self.mdist)
        best = int(np.argmin(self.mdist))
        if not self.confidence > 0:
            return SyncEstimate.unmeasured("syncnet", "flat", curve)
        if best in (0, len(self.mdist) - 1):  # at lag -15 or +15 of the search
            return SyncEstimate.unmeasured("syncnet", "edge", curve)
        return SyncEstimate("syncnet", -self.offset * TIMELINE_FPS / FPS, self.confidence, curve)


def lag_distances(im_feat: torch.Tensor, cc_feat: torch.Tensor) -> torch.Tensor:
    """(31,) mean distance per lag −VSHIFT..+VSHIFT between lip embedding v and audio
    embedding v + lag, (N, D) each; audio beyond either end is a zero vector (the reference's
    `calc_pdist` padding)."""
    n = len(im_feat)
    padded = F.pad(cc_feat, (0, 0, VSHIFT, VSHIFT))  # (N + 30, D)
    lags = [
        F.pairwise_distance(im_feat, padded[VSHIFT + lag : VSHIFT + lag + n]).mean()
        for lag in range(-VSHIFT, VSHIFT + 1)
    ]
    return torch.stack(lags)


# ---------------------------------------------------------------------------------------------
# Per clip


class SyncNetClip:
    """One clip through SyncNet, frames streamed: `add` native-rate frames as they decode,
    then `finish`. Holds at most BATCH + WINDOW 224² frames; lip windows are embedded a batch
    at a time as their frames (and the frame after them) arrive."""

    def __init__(self, model: SyncNet, device: torch.device, audio: np.ndarray) -> None:
        """audio: (S,) int16 16 kHz mono, sample 0 at the first frame's time."""
        self.model = model
        self.device = device
        self.audio = audio
        self.audio_frames = len(audio) // SAMPLES_PER_FRAME
        self._resampler = NearestFrames()
        self._frames: list[np.ndarray] = []  # 25 fps frames not yet consumed, oldest first
        self._first = 0  # 25 fps index of self._frames[0]
        self._lip: list[torch.Tensor] = []

    def add(self, t: float, frame: np.ndarray) -> None:
        """One native frame: `t` seconds since the first frame, (224, 224, 3) uint8 BGR."""
        for settled in self._resampler.add(t, frame):
            self._push(settled)

    def finish(self, duration: float) -> SyncNetResult | SyncEstimate:
        """The result after the last frame (`duration`: seconds of video), or an unmeasured
        estimate when the clip is too short."""
        for settled in self._resampler.finish(duration):
            self._push(settled)
        frames = self._resampler.count
        length = min(frames, self.audio_frames)
        if length < MIN_FRAMES:
            # fewer than MIN_FRAMES frames at 25 fps with both video and audio
            return SyncEstimate.unmeasured("syncnet", "too_short")
        self._embed_lips(length - WINDOW, final=True)
        windows = length - WINDOW
        with torch.no_grad():
            im_feat = torch.cat(self._lip)[:windows]
            cc_feat = self._audio_embeddings(windows)
            mdist = lag_distances(im_feat, cc_feat)
        return SyncNetResult(
            mdist.cpu().numpy(), im_feat.cpu().numpy(), cc_feat.cpu().numpy(), frames
        )

    def _push(self, frame: np.ndarray) -> None:
        self._frames.append(frame)
        # window v is used once frame v + 5 exists (the reference leaves the last one out)
        if len(self._frames) >= BATCH + WINDOW:
            self._embed_lips(self.audio_frames - WINDOW)

    def _embed_lips(self, limit: int, final: bool = False) -> None:
        """Embed the windows the buffered frames complete (whole batches unless `final`),
        starting at window `self._first`, none at or past window `limit`; drop frames no
        window needs any more."""
        while True:
            count = min(len(self._frames) - WINDOW, BATCH, limit - self._first)
            if count <= 0 or (count < BATCH and not final):
                break
            stack = np.stack(self._frames[: count + WINDOW - 1])  # (count + 4, H, W, 3)
            frames = torch.from_numpy(stack).to(self.device).float().permute(3, 0, 1, 2)
            with torch.no_grad():
                self._lip.append(self.model.lip_sequence(frames).cpu())
            del self._frames[:count]
            self._first += count
        if self._first >= limit:  # no later window is needed: stop holding frames
            self._frames.clear()

    def _audio_embeddings(self, windows: int) -> torch.Tensor:
        """(windows, 1024) audio embeddings: MFCC rows 4v … 4v + 19 for window v."""
        mfcc = torch.from_numpy(mfcc_image(self.audio)).to(self.device)  # (13, rows)
        span = WINDOW * MFCC_PER_FRAME
        out = []
        for start in range(0, windows, BATCH):
            stop = min(windows, start + BATCH)
            batch = mfcc.unfold(1, span, MFCC_PER_FRAME)[:, start:stop]  # (13, B, 20)
            out.append(self.model.forward_aud(batch.permute(1, 0, 2)[:, None].contiguous()))
        return torch.cat(out).cpu()


def run_syncnet(
    model: SyncNet,
    device: torch.device,
    frames: Iterable[tuple[float, np.ndarray]],
    audio: np.ndarray,
    duration: float,
) -> SyncNetResult | SyncEstimate:
    """One clip: `(t, (224, 224, 3) uint8 BGR)` frames at any rate, (S,) int16 16 kHz audio,
    `duration` seconds of video. The result, or an unmeasured estimate when too short."""
    clip = SyncNetClip(model, device, audio)
    for t, frame in frames:
        clip.add(t, frame)
    return clip.finish(duration)


class SyncNetEstimator:
    """The syncnet backend as an extraction stage: `start(audio)` gives a clip's `SyncNetClip`
    to feed frames to. The model loads at first use, on the GPU when there is one (picklable
    until then)."""

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = checkpoint
        self._model: tuple[SyncNet, torch.device] | None = None

    def start(self, audio: np.ndarray) -> SyncNetClip:
        """A clip's stream; audio (S,) float32 16 kHz mono in [−1, 1], sample 0 at frame 0.
        Raises FileNotFoundError / SyncNetCheckpointError for a bad checkpoint."""
        if self._model is None:
            device = torch_device("auto")
            self._model = (load_syncnet(self.checkpoint).to(device), device)
        model, device = self._model
        return SyncNetClip(model, device, int16_audio(audio))

    def close(self) -> None:
        """Release the model (a later call loads it again)."""
        self._model = None

    def __getstate__(self) -> dict:
        return {"checkpoint": self.checkpoint}

    def __setstate__(self, state: dict) -> None:
        SyncNetEstimator.__init__(self, state["checkpoint"])
