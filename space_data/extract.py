"""One clip → one `ClipFeatures` record: decode, crop, landmarks, pose, eyes, hands, audio.

Steps (paper Sec. 3.1 and Appendix B):
1. audio: 16 kHz mono from the container (or the clip's separate file: MEAD `.m4a`, CREMA-D
   `.wav`);
2. crop: a first pass decodes the video and runs face detection on every `detect_every`-th
   frame (shrunk to `detect_max_side`); the union of the boxes plus a margin is ONE square crop
   for the clip. The frame models see the crop at its native resolution (no resize per
   frame: MediaPipe shrinks its input to 192² itself); their points are then mapped to the
   record's crop frame, the crop resized to `crop_size` (`face.resized_points`), which is
   also the size of `frame0`. The first pass keeps the decoded frames, in the decoder's
   own format (4:2:0 video: half the bytes of RGB; converted to RGB when the second pass
   uses them), while they fit in `buffer_mb`; a longer or larger clip is decoded a second
   time instead, so memory stays bounded whatever the clip's length. Corpora whose frames are
   face tracks already (VoxCeleb2: `Corpus.whole_frames`) are used whole (one streaming pass);
3. per native frame, fed to the frame models (`space_data.frames`) in batches of
   `batch_size` crops: 68 + 52 eye landmarks (NaN where no face), hands on every
   `hands_every`-th frame while a hand is at the face and every `hands_idle_every`-th while
   none is (`space_data.hands.HandSampler`: a hand within `hands_face_margin` face sizes of the
   frame's landmark box, or of the last one while the face is hidden; held in between),
   keypoints when configured; the crop's colour histogram (a cut cue);
4. landmark tracks → the 30 fps timeline (T = round(duration × 30)); pose, scale and the
   frontalized `lm_norm` / `eyes_norm` are computed on the timeline from the resampled
   landmarks, so they agree with `lm3d` frame by frame;
5. emotion: the FER classifier on the face crop of every `emotion.every`-th native frame with a
   face, interpolated onto the timeline (`emotion_pred`, NaN where there is no face);
6. speech probability per frame (`speech`, Silero VAD) and the A/V offset
   (`extract.av_sync`: the offline estimator `space_data.av_offset` on the landmarks, or SyncNet,
   `space_data.syncnet`, fed each native crop as it passes, resized to 224² BGR) into the
   statistics;
7. filter statistics, MFCCs (audio cut or zero-padded to T frames, the mismatch recorded),
   optional FLAC, face-vid2vid keypoints when a checkpoint is configured, `frame0` JPEG, meta.

A clip that cannot be processed gives `status="error"` with `reason = "<code>: <detail>"`
(codes: the `space_data.media` REASONS, `too_large` when the clip's estimated memory is above
`max_clip_mb`, `no_face` when no frame has a face, `extract_failed` for anything unexpected);
it never raises. Truncated files keep what decoded (`stats.truncated`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from space_data import audio as audio_features
from space_data import clip_memory, storage
from space_data.audio import AudioConfig
from space_data.av_offset import estimate_offset
from space_data.clip import EMOTIONS, Clip
from space_data.clip_memory import ClipSize
from space_data.config import config_hash, require_at_least_one, to_mapping
from space_data.datasets import whole_frames
from space_data.emotion import EmotionClassifier, EmotionConfig, face_crop
from space_data.errors import SetupError
from space_data.face import (
    FaceBox,
    FaceDetector,
    crop_and_resize,
    resized_points,
    square_crop_box,
)
from space_data.frames import FrameModel
from space_data.hands import HAND_VIEW_SIDE, HandDetector, HandSampler, face_box, hand_view
from space_data.keypoints import KeypointExtractor, KeypointsConfig, keypoint_input
from space_data.landmarks import Landmarker, LandmarksConfig, make_landmarker
from space_data.media import MediaError, MediaFile, VideoReader
from space_data.pose import estimate_pose, frontalize
from space_data.record import RECORD_VERSION, SAMPLE_RATE, ClipFeatures, ClipMeta
from space_data.stats import colour_histogram, compute_stats
from space_data.sync_estimate import AvSyncConfig, SyncEstimate
from space_data.syncnet import SyncNetClip, SyncNetEstimator, SyncNetResult, face_input
from space_data.timeline import resample_flags, resample_track, timeline_length
from space_data.vad import SpeechDetector

AUDIO_CONTEXT_S = 60
"""Seconds of audio past the video's end that speech detection and the A/V offset still read."""


def heard(audio: np.ndarray, video_samples: int) -> np.ndarray:
    """The part of (S,) 16 kHz `audio` that speech detection and the sync backends read: the
    video's `video_samples` plus AUDIO_CONTEXT_S. Audio long past the video feeds no timeline
    frame, so an hour of it under a short video costs neither time nor memory there."""
    return audio[: video_samples + AUDIO_CONTEXT_S * SAMPLE_RATE]


@dataclass
class ExtractConfig:
    """Per-clip extraction (`extract` in params.yaml); its hash is stored in every record."""

    crop_margin: float = 0.3
    """Fraction of the face-box union's larger side added on each side of the square crop."""
    crop_size: int = 512
    """Side in pixels of the record's crop frame (every corpus but those used whole): landmark
    coordinates and `frame0` are those of the crop resized to this size (the frame models
    themselves run on the crop at its native resolution)."""
    hands_every: int = 3
    """Run hand detection on every k-th native frame while a hand is at the face; flags are
    held in between."""
    hands_idle_every: int = 6
    """After a sample without a hand at the face, the next one comes this many native frames
    later: 6 and 3 see a hand that stays half a second at the face on at least two consecutive
    samples at 25-30 fps (`space_data.hands.HandSampler`; the `hands` filter's
    `min_hand_span`)."""
    hands_face_margin: float = 0.25
    """A hand within this many face sizes of the face box (the landmarks' box raised over the
    forehead) is at the face (docs/filters.md: calibrated on real hands at and away from faces)."""
    hands_min_confidence: float = 0.5
    """MediaPipe Hands' palm-detection score a hand needs, in [0, 1]."""
    hands_model_complexity: int = 1
    """MediaPipe Hands models: 1 full; 0 lite (~25 % cheaper, more false hands on clean faces)."""
    detect_every: int = 10
    """Run face detection for the crop (and the no-face check) on every k-th native frame
    (5 → 10 measured: crop boxes within 7 px, pose within 0.2° at the 95th percentile)."""
    detect_max_side: int = 640
    """Longer side (pixels) frames are shrunk to for face detection."""
    buffer_mb: int = 512
    """Decoded frames kept between the crop-box pass and the landmark pass (MiB), in the
    decoder's format (4:2:0: 1.5 bytes per pixel, so 512 MiB hold ~170 frames of 1080p); a
    clip larger than this is decoded twice instead, so memory stays bounded."""
    batch_size: int = 16
    """Frames per batch fed to the frame models (landmarks, hands, keypoints; see
    `space_data.frames`): a torch model runs each batch as one forward pass."""
    require_audio: bool = True
    """A clip without audio is an error (`no_audio`); False extracts its geometry alone."""
    max_clip_mb: int = 3072
    """Memory bound of one clip's extraction above the worker's models, MiB: a clip whose
    estimate from its header (`space_data.clip_memory`) exceeds it is recorded `too_large`
    with the numbers, before anything is decoded."""
    landmarks: LandmarksConfig = field(default_factory=LandmarksConfig)
    """Landmark backend (`extract.landmarks`)."""
    audio: AudioConfig = field(default_factory=AudioConfig)
    """MFCC and augmentation (`extract.audio`)."""
    keypoints: KeypointsConfig = field(default_factory=KeypointsConfig)
    """face-vid2vid keypoints (`extract.keypoints`)."""
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    """Per-frame emotion classifier (`extract.emotion`)."""
    av_sync: AvSyncConfig = field(default_factory=AvSyncConfig)
    """Audio–video offset backend (`extract.av_sync`)."""

    def __post_init__(self) -> None:
        if self.crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0, not {self.crop_margin}")
        if self.buffer_mb < 0:
            raise ValueError(f"buffer_mb must be >= 0, not {self.buffer_mb}")
        require_at_least_one(
            self,
            ("crop_size", "max_clip_mb", "hands_every", "hands_idle_every", "detect_every",
             "detect_max_side", "batch_size"),
        )  # fmt: skip
        if self.hands_idle_every < self.hands_every:
            raise ValueError(
                f"hands_idle_every ({self.hands_idle_every}) must be >= hands_every "
                f"({self.hands_every})"
            )
        if self.hands_face_margin < 0:
            raise ValueError(f"hands_face_margin must be >= 0, not {self.hands_face_margin}")
        if not 0.0 <= self.hands_min_confidence <= 1.0:
            raise ValueError(
                f"hands_min_confidence must be in [0, 1], not {self.hands_min_confidence}"
            )
        if self.hands_model_complexity not in (0, 1):
            raise ValueError(
                f"hands_model_complexity must be 0 or 1, not {self.hands_model_complexity}"
            )


class ClipError(Exception):
    """A clip that gives no record: `reason` is a short code, `detail` is for humans."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class _Tracks:
    """Second-pass results per native frame: times s, the frame models' outputs (landmarks
    lm68 (68, 3) and eyes52 (52, 3) in crop pixels, NaN without a face; keypoint members), hand
    samples, colour histograms of the crops (the cut cue), emotion classifier crops, the first
    crop as JPEG."""

    frame_size: tuple[int, int] = (0, 0)
    """(height, width) of the decoded full-resolution frames."""
    times: list[float] = field(default_factory=list)
    batches: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """Frame-model output name → its arrays, one per batch, frames along axis 0."""
    histograms: list[np.ndarray] = field(default_factory=list)
    emotion_times: list[float] = field(default_factory=list)
    emotion_faces: list[np.ndarray] = field(default_factory=list)
    """(64, 64, 3) uint8 classifier crops of the sampled face frames."""
    frame0: bytes | None = None

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        for name, value in arrays.items():
            self.batches.setdefault(name, []).append(value)

    def track(self, name: str) -> np.ndarray:
        """(n_frames, ...) output `name` over all batches."""
        return np.concatenate(self.batches[name])


@contextmanager
def one_core() -> Iterator[None]:
    """One clip is one core's work (a Ray actor asks for one CPU): numpy's BLAS, OpenCV and torch
    run one thread each inside, and the process's own settings are back afterwards. OpenBLAS's
    second thread only spins between numpy calls (measured: MFCC, speech and A/V-offset CPU time
    halved, wall time the same); OpenCV's and torch's extra threads oversubscribe a core that
    another actor uses."""
    opencv, intra_op = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        cv2.setNumThreads(opencv)
        torch.set_num_threads(intra_op)


class ClipExtractor:
    """Extracts one clip at a time; models are created at first use, so a fresh extractor
    pickles (ships to a Ray actor). `timings` accumulates CPU seconds per stage across calls
    (the process's, all threads: a busy machine does not inflate them as wall time would)."""

    def __init__(self, config: ExtractConfig) -> None:
        self.config = config
        self.timings: dict[str, float] = defaultdict(float)
        self._params_hash = extraction_hash(config)
        self._detector = FaceDetector()
        self._landmarker: Landmarker | None = None
        self._hands = HandSampler(
            HandDetector(
                config.hands_min_confidence, model_complexity=config.hands_model_complexity
            ),
            config.hands_every,
            config.hands_idle_every,
            config.hands_face_margin,
        )
        self._hand_view = (0, 0, 0)
        """(x0, y0, side) of the current clip's hand view in its frames' pixels."""
        self._keypoints = KeypointExtractor(config.keypoints)
        self._emotion = EmotionClassifier(config.emotion)
        self._speech = SpeechDetector()
        sync = config.av_sync
        self._syncnet = (
            SyncNetEstimator(sync.syncnet_checkpoint)
            if sync.backend == "syncnet" and sync.syncnet_checkpoint is not None
            else None
        )
        self._sync_clip: SyncNetClip | None = None
        """The clip in extraction's SyncNet stream (syncnet backend, clip with audio)."""

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        ClipExtractor.__init__(self, state["config"])

    def __call__(self, clip: Clip) -> ClipFeatures:
        """The record of `clip`, or an error record with the reason; never raises for bad input."""
        meta = ClipMeta.of(
            clip,
            self._params_hash,
            emotion_classifier={"name": self._emotion.name, "sha256": self._emotion.sha256},
            speech_model=self._speech.name,
        )
        try:
            # a corpus file on object storage is downloaded once here, and opened once: the
            # probe, the audio and every decoding pass read the one container
            with (
                one_core(),
                storage.pinned(clip.path, clip.audio_path),
                MediaFile(clip.path) as media,
            ):
                return self._extract(clip, media, meta)
        except (MediaError, ClipError) as e:
            return ClipFeatures.failed(meta, f"{e.reason}: {e.detail}")
        except (SetupError, ImportError, MemoryError, NotImplementedError, FileNotFoundError):
            raise  # the installation or the configuration, not the clip
        except Exception as e:  # noqa: BLE001 — one odd file must not stop a corpus run
            if storage.access_problem(e):
                raise  # object storage unreachable or refusing: not the clip's fault
            return ClipFeatures.failed(meta, f"extract_failed: {type(e).__name__}: {e}")

    def close(self) -> None:
        """Release the models (a later call creates them again)."""
        self._detector.close()
        self._hands.detector.close()
        self._keypoints.close()
        self._emotion.close()
        if self._syncnet is not None:
            self._syncnet.close()
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.process_time()
        try:
            yield
        finally:
            self.timings[stage] += time.process_time() - start

    def _extract(self, clip: Clip, media: MediaFile, meta: ClipMeta) -> ClipFeatures:
        cfg = self.config
        with self._timed("decode"), ExitStack() as files:
            info = media.info
            separate = None  # a separate audio file (MEAD .m4a, CREMA-D .wav), opened once
            if clip.audio_path is not None:
                separate = files.enter_context(MediaFile(clip.audio_path))
            self._check_memory(clip, media, separate)
            audio = self._audio(media, separate)
        self._sync_clip = None
        if self._syncnet is not None and audio is not None:
            with self._timed("av_offset"):  # the stated duration: frames are not decoded yet
                stated = round(info.duration * SAMPLE_RATE) if info.duration else len(audio)
                self._sync_clip = self._syncnet.start(heard(audio, stated))
        whole = whole_frames(clip.dataset)
        if whole:
            box, reader, known = None, VideoReader(media), None
            frames = _timed_iter(reader, self.timings, "decode")
        else:
            reader, box, kept, known = self._first_pass(media, cfg.buffer_mb * 2**20)
            if kept is None:  # too big to keep: decode again (the same container, rewound)
                frames = _timed_iter(reader, self.timings, "decode")
                known = None
            else:  # converted to RGB as they are used
                frames = _timed_iter(((t, reader.rgb(f)) for t, f in kept), self.timings, "decode")
        tracks = self._frames(frames, box, None if whole else cfg.crop_size, known)
        del frames
        if not tracks.times:
            raise MediaError("no_frames", f"{clip.path}: no video frame decodes ({reader.error})")
        times = np.asarray(tracks.times)
        lm68 = tracks.track("lm68")
        if not np.isfinite(lm68).all(-1).all(-1).any():
            raise ClipError("no_face", f"no face in any of {len(times)} frames")
        duration = _decoded_duration(times, info.fps)
        n = timeline_length(duration)
        with self._timed("resample"):
            lm3d = resample_track(times, lm68, n)
            eyes = resample_track(times, tracks.track("eyes52"), n)
            hands = resample_flags(np.asarray(self._hands.times), self._hands.codes(), n)
        face = np.isfinite(lm3d).all((1, 2))
        with self._timed("emotion"):
            emotion_pred = self._emotion_track(tracks, face, n)
        with self._timed("pose"):
            # FaceMesh's pose response is modelled; lm_norm undoes the plain fit's rotation
            pose, scale, rot = estimate_pose(lm3d, response=cfg.landmarks.backend == "mediapipe")
            # face sizes of the native-frame cut cue (the plain fit: a size, not angles)
            native_scale = estimate_pose(lm68, response=False)[1]
            arrays = {
                "lm3d": lm3d,
                "pose": pose,
                "scale": scale,
                "face": face.astype(np.uint8),
                "lm_norm": frontalize(lm3d, rot, lm3d),
                "eyes": eyes,
                "eyes_norm": frontalize(eyes, rot, lm3d),
                "hands": hands,
                "emotion_pred": emotion_pred,
            }
        span = None
        if audio is not None:
            with self._timed("mfcc"):
                arrays["mfcc"] = audio_features.mfcc_record(audio, n, clip.clip_id, cfg.audio)
            span = heard(audio, audio_features.timeline_samples(n))
            with self._timed("speech"):
                arrays["speech"] = self._speech(span, n)
        with self._timed("av_offset"):
            av_sync = self._av_sync(lm3d, scale, span, arrays.get("speech"), duration)
        meta.keypoints = self._keypoints.missing_reason or "extracted"
        if self._keypoints.missing_reason is None:
            with self._timed("keypoints"):
                arrays.update(self._keypoint_tracks(times, tracks, n))
        stats = compute_stats(
            face=arrays["face"],
            pose=pose,
            scale=scale,
            hands=hands,
            hand_span=self._hands.longest_span(),
            native_lm68=lm68,
            native_scale=native_scale,
            histograms=np.stack(tracks.histograms),
            duration=duration,
            native_fps=info.fps,
            decoded_frames=reader.decoded,
            truncated=reader.truncated,
            stated_duration=info.duration,
            audio_samples=None if audio is None else len(audio),
            speech=arrays.get("speech"),
            av_sync=av_sync,
        )
        height, width = tracks.frame_size
        x0, y0, side = box if box is not None else (0, 0, None)
        meta.native_fps = info.fps
        meta.crop_box = [x0, y0, x0 + side, y0 + side] if side else [0, 0, width, height]
        meta.crop_size = None if whole else cfg.crop_size
        meta.source_size = [width, height]
        flac = None
        if audio is not None and cfg.audio.store_flac:
            n_samples = audio_features.timeline_samples(n)
            flac = audio_features.flac_bytes(audio_features.fit_length(audio, n_samples))
        return ClipFeatures(meta, stats=stats, arrays=arrays, frame0=tracks.frame0, audio=flac)

    def _check_memory(self, clip: Clip, media: MediaFile, separate: MediaFile | None) -> None:
        """Raise `too_large` when the clip's estimated memory is above `max_clip_mb`."""
        cfg, info = self.config, media.info
        audio_s = _audio_seconds((separate or media).container)
        size = ClipSize(info.width, info.height, info.n_frames, info.duration, audio_s)
        whole = whole_frames(clip.dataset)
        need = clip_memory.estimate(size, cfg.batch_size, cfg.buffer_mb * 2**20, whole)
        detail = clip_memory.too_large(size, need, cfg.max_clip_mb * 2**20)
        if detail is not None:
            raise ClipError("too_large", f"{clip.path}: {detail}")

    def _av_sync(self, lm3d: np.ndarray, scale: np.ndarray, audio: np.ndarray | None,
                 speech: np.ndarray | None, duration: float) -> SyncEstimate:  # fmt: skip
        """The clip's offset from the configured backend: SyncNet's stream, fed during the
        frame pass, or the offline estimator on the timeline's landmarks."""
        backend = self.config.av_sync.backend
        if audio is None:
            return SyncEstimate.unmeasured(backend, "no_audio")
        if self._sync_clip is not None:
            result = self._sync_clip.finish(duration)
            self._sync_clip = None
            return result.estimate() if isinstance(result, SyncNetResult) else result
        return estimate_offset(lm3d, scale, audio, speech)

    def _audio(self, media: MediaFile, separate: MediaFile | None) -> np.ndarray | None:
        """(S,) float32 16 kHz mono from the clip's open container or its open separate audio
        file, or None when the clip has none and audio is optional."""
        try:
            if separate is not None:
                return separate.audio(SAMPLE_RATE)
            if not media.info.has_audio:
                raise MediaError("no_audio", f"{media.path} has no audio stream")
            return media.audio(SAMPLE_RATE)
        except MediaError as e:
            if e.reason != "no_audio" or self.config.require_audio:
                raise
            return None

    def crop_box(self, path: str) -> tuple[int, int, int]:
        """The clip's square crop (x0, y0, side) in full-resolution pixels (one decoding pass)."""
        with MediaFile(path) as media:
            return self._first_pass(media, buffer_bytes=0)[1]

    def _first_pass(
        self, media: MediaFile, buffer_bytes: int
    ) -> tuple[VideoReader, tuple[int, int, int], list | None, list[bool]]:
        """Decode once at full resolution: face boxes on every `detect_every`-th frame (run at
        `detect_max_side`) → the crop box (x0, y0, side); the `(t, frame)` decoded frames, kept
        in the decoder's format (4:2:0 video: half the bytes of RGB) while they fit in
        `buffer_bytes` (None when they do not: the caller decodes again); and whether each
        checked frame showed a face."""
        cfg = self.config
        reader = VideoReader(media)
        width, height = reader.info.width, reader.info.height
        boxes, used = [], 0
        kept: list[tuple[float, av.VideoFrame]] | None = []
        for i, (t, frame) in enumerate(_timed_iter(reader.frames(), self.timings, "decode")):
            if kept is not None:
                used += sum(plane.buffer_size for plane in frame.planes)
                if used <= buffer_bytes:
                    kept.append((t, frame))
                else:
                    kept = None
            if i % cfg.detect_every == 0:
                with self._timed("decode"):
                    rgb = reader.rgb(frame)
                with self._timed("face_detection"):
                    boxes.append(self._detect(rgb))
        box = square_crop_box(boxes, width, height, cfg.crop_margin)
        return reader, box, kept, [b is not None for b in boxes]

    def _detect(self, rgb: np.ndarray) -> FaceBox | None:
        """The best face box of a frame in its full-resolution pixels (detected on a copy no
        larger than `detect_max_side`), or None."""
        height, width = rgb.shape[:2]
        f = min(1.0, self.config.detect_max_side / max(height, width))
        small = (
            rgb
            if f == 1.0
            else cv2.resize(
                rgb, (round(width * f), round(height * f)), interpolation=cv2.INTER_AREA
            )
        )
        found = self._detector(small)
        if not found:
            return None
        b = found[0]
        return FaceBox(b.x0 / f, b.y0 / f, b.x1 / f, b.y1 / f, b.score)

    def _frames(self, frames, box: tuple[int, int, int] | None, size: int | None,
                known: list[bool] | None) -> _Tracks:  # fmt: skip
        """Per native frame `(t, rgb)`: crop; then the frame models on batches of `batch_size`
        crops. Every `detect_every`-th frame is checked for a face: `known` holds the first
        pass's answers for these same frames, else the detector runs on the crop; a frame
        without one is `faceless` for the landmarker."""
        cfg = self.config
        if self._landmarker is None:
            self._landmarker = make_landmarker(cfg.landmarks)
        landmarker = self._landmarker
        models: tuple[FrameModel, ...] = (landmarker, self._hands.detector, self._keypoints)
        for model in models:
            model.reset()
        self._hands.start()
        tracks = _Tracks()
        # crops are written straight into one (batch_size, H, W, 3) buffer, reused per batch;
        # the hand detector's wider views of the same frames into another
        buffer: np.ndarray | None = None
        hand_buffer: np.ndarray | None = None
        batch: list[tuple[int, float, bool]] = []  # (frame index, t, faceless)
        for i, (t, rgb) in enumerate(frames):
            with self._timed("crop"):
                if buffer is None:
                    shape = rgb.shape if box is None else (box[2], box[2], 3)
                    buffer = np.empty((cfg.batch_size, *shape), np.uint8)
                    self._hand_view = hand_view(box, rgb.shape[:2])
                    side = min(self._hand_view[2], HAND_VIEW_SIDE)
                    hand_buffer = np.empty((cfg.batch_size, side, side, 3), np.uint8)
                crop = buffer[len(batch)]
                if box is None:
                    crop[...] = rgb
                else:
                    crop_and_resize(rgb, box, None, out=crop)
                assert hand_buffer is not None
                view = self._hand_view
                crop_and_resize(rgb, view, hand_buffer.shape[1], out=hand_buffer[len(batch)])
                tracks.histograms.append(colour_histogram(crop))
            if i == 0:
                tracks.frame_size = rgb.shape[:2]
                tracks.frame0 = _jpeg(crop if box is None else crop_and_resize(rgb, box, size))
            faceless = False
            if i % cfg.detect_every == 0:
                if known is not None:
                    faceless = not known[i // cfg.detect_every]
                else:
                    with self._timed("face_detection"):
                        faceless = self._detect(crop) is None
            batch.append((i, t, faceless))
            if len(batch) == cfg.batch_size:
                self._run_batch(landmarker, batch, buffer, hand_buffer, box, size, tracks)
                batch = []
        if batch:
            assert buffer is not None and hand_buffer is not None  # made with the first crop
            n = len(batch)
            self._run_batch(landmarker, batch, buffer[:n], hand_buffer[:n], box, size, tracks)
        return tracks

    def _run_batch(self, landmarker: Landmarker, batch: list[tuple[int, float, bool]],
                   crops: np.ndarray, views: np.ndarray, box: tuple[int, int, int] | None,
                   size: int | None, tracks: _Tracks) -> None:  # fmt: skip
        """The frame models on one batch of consecutive crops (N, H, W, 3) uint8 (a buffer
        the next batch overwrites: nothing keeps a view of it): landmarks on every frame (kept
        in the pixels of the crop resized to `size`), hands on the wider `views` of the same
        frames (`hand_view`) where the sampler says, keypoints when a checkpoint is
        configured; the emotion classifier's face crops of every `emotion.every`-th frame
        with a face; and SyncNet's stream (syncnet backend)."""
        cfg = self.config
        index, times, faceless = zip(*batch, strict=True)
        with self._timed("face_mesh"):
            landmarks = landmarker.batch(crops, faceless=np.array(faceless))
            side = crops.shape[1]
            tracks.add({name: resized_points(p, side, size) for name, p in landmarks.items()})
        for k, i in enumerate(index):
            if i % cfg.emotion.every == 0 and np.isfinite(landmarks["lm68"][k]).all():
                with self._timed("emotion"):
                    tracks.emotion_faces.append(face_crop(crops[k], landmarks["lm68"][k]))
                tracks.emotion_times.append(times[k])
        with self._timed("hands"):
            # the face boxes: crop pixels → frame pixels → the hand views' pixels; the
            # sampler's samples stay there until the next clip
            x0, y0 = (box[0], box[1]) if box is not None else (0, 0)
            vx0, vy0, vside = self._hand_view
            f = views.shape[1] / vside
            shift = np.array([x0 - vx0, y0 - vy0, x0 - vx0, y0 - vy0], np.float64)
            faces = np.stack([(face_box(lm) + shift) * f for lm in landmarks["lm68"]])
            self._hands.run(index, times, views, faces)
        if self._sync_clip is not None:
            with self._timed("av_offset"):
                for t, crop in zip(times, crops, strict=True):
                    self._sync_clip.add(t, face_input(crop))
        if self._keypoints.missing_reason is None:
            with self._timed("keypoints"):
                tracks.add(self._keypoints.batch(np.stack([keypoint_input(c) for c in crops])))
        tracks.times.extend(times)

    def _emotion_track(self, tracks: _Tracks, face: np.ndarray, n: int) -> np.ndarray:
        """(T, 9) float32 `emotion_pred`: classified samples interpolated onto the timeline,
        NaN rows where the timeline has no face (`face` (T,) bool)."""
        if not tracks.emotion_faces:
            return np.full((n, len(EMOTIONS)), np.nan, np.float32)
        probs = self._emotion.batch(np.stack(tracks.emotion_faces))["emotion_pred"]
        out = resample_track(np.asarray(tracks.emotion_times), probs, n)
        out[~face] = np.nan
        return out

    def _keypoint_tracks(self, times: np.ndarray, tracks: _Tracks, n: int) -> dict:
        """face-vid2vid members on the 30 fps timeline from the native-frame outputs."""
        out = {name: tracks.track(name) for name in ("kp", "kp_pose", "kp_t", "kp_exp")}
        out["kp_source"] = self._keypoints.source
        for name in ("kp", "kp_t", "kp_exp"):
            out[name] = resample_track(times, out[name], n)
        out["kp_pose"] = resample_track(times, out["kp_pose"], n, angles=True)
        return out


def extraction_hash(config: ExtractConfig) -> str:
    """The hash records (`meta.params_hash`) and commit markers carry: of the `extract`
    parameters and `record.RECORD_VERSION`."""
    return config_hash({"extract": to_mapping(config), "record_version": RECORD_VERSION})


def extract_clip(clip: Clip, config: ExtractConfig) -> ClipFeatures:
    """One-off extraction of `clip` (models created and released here)."""
    extractor = ClipExtractor(config)
    try:
        return extractor(clip)
    finally:
        extractor.close()


def _timed_iter(items: Iterable, timings: dict[str, float], stage: str):
    """Iterate `items` (decoded frames), adding the CPU time spent making each to
    timings[stage]."""
    frames = iter(items)
    while True:
        start = time.process_time()
        item = next(frames, None)
        timings[stage] += time.process_time() - start
        if item is None:
            return
        yield item


def _audio_seconds(container: av.container.InputContainer) -> float:
    """Declared duration of the first audio stream (the container's when the stream has
    none), seconds; 0 without audio."""
    if not container.streams.audio:
        return 0.0
    stream = container.streams.audio[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _decoded_duration(times: np.ndarray, fps: float) -> float:
    """Seconds of video that decoded: last frame time plus one frame interval."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
    return float(times[-1]) + step


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    if not ok:
        raise RuntimeError("JPEG encoding of frame0 failed")
    return buf.tobytes()
