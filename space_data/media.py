"""Decode and write video and audio with PyAV (FFmpeg inside the wheel; no ffmpeg binary needed).

- Video is decoded at its native rate; each frame carries its real presentation time, so
  variable-frame-rate files keep their true timing (`VideoReader` yields `(t, rgb)`).
- Rotation metadata (the display matrix, or the legacy `rotate` tag) is applied to the pixels:
  a phone video stored landscape with a 90° display matrix decodes upright.
- Frames get the presentation times of the stream, re-sorted over a short window
  (`REORDER_WINDOW`): decoders return frames in display order, but an AVI holding B-frames
  (H.264, packed MPEG-4 Part 2) stamps them in decoding order.
- `truncated` means data is missing: decoding stopped on an error, or the frames that decoded
  fall short of the duration the header states by more than `truncation_slack`, or of the
  frames it counts (less those an edit list discards) by more than `SLACK_FRAMES` (an MP4
  whose edit list discards a priming frame, as ffmpeg cuts give, is whole; an AVI cut short
  keeps its frame count while FFmpeg estimates its duration from the bytes left).
- Audio comes out as 16 kHz mono float32, with sample 0 at the first video frame.
- `MediaFile` fetches a file once for its probe, audio and frames (`ClipExtractor` uses one per
  clip; rewound between reads, reopened where the container refuses to seek back);
  `probe`, `decode_audio` and `VideoReader(path)` open their own.

AAC encoder padding (measured here, PyAV 18): the MP4 edit list already makes FFmpeg drop the
1,024 priming samples (written vs decoded noise: cross-correlation lag 0), but the decoder
still returns the encoder's trailing padding: 256–750 samples at the source rate on the test
files (e.g. 240,640 decoded for 240,000 declared at 48 kHz). `decode_audio` drops anything
stamped before time 0 and cuts at the stream's declared end, so audio and video stay in sync.

Failures raise `MediaError` with a short `reason` code (see `REASONS`).
"""

from __future__ import annotations

import heapq
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from space_data import storage

REASONS: tuple[str, ...] = (
    "missing_file",
    "empty_file",
    "unreadable",
    "no_video_stream",
    "no_audio",
    "no_frames",
)


class MediaError(Exception):
    """A media file that cannot be used; `reason` is one of REASONS, `detail` is for humans."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class VideoInfo:
    """What the container header says about the first video stream (sizes after rotation)."""

    width: int
    height: int
    fps: float
    """Average frame rate (frames per second)."""
    duration: float
    """Seconds of video the header states (`stated_by` says whose duration it is)."""
    n_frames: int
    """Frames the header counts (packets, an edit list's discarded ones included), else
    duration × fps."""
    rotation: int
    """Counter-clockwise degrees (0, 90, 180, 270) applied to the stored pixels on decode."""
    has_audio: bool
    stated_by: str = "video"
    """Whose duration `duration` is: "video", the video stream's own (MP4, MOV, AVI, a Matroska
    or WebM `DURATION` tag); "container", the longest stream's (FLV), which includes the
    audio's encoder padding."""

    def truncation_slack(self) -> float:
        """Seconds the decoded video may fall short of `duration` and still be whole (and
        `SLACK_FRAMES` the frames it may fall short of `n_frames`, less the discarded ones):
        `SLACK_FRAMES` frames, plus `CONTAINER_SLACK_S` where the container states it."""
        return SLACK_FRAMES / self.fps + (CONTAINER_SLACK_S if self.stated_by == "container" else 0)


SLACK_FRAMES = 2
"""Frames a whole file may decode short of its stated duration: one that an MP4 edit list
discards (ffmpeg-cut clips, e.g. HDTF: 62 stated, 61 decode, as ffmpeg itself gives), one for
the rounding of the last frame's duration (an AVI of MPEG-4 Part 2 states a skipped frame)."""
CONTAINER_SLACK_S = 0.3
"""Seconds more where only the container states a duration (FLV): the audio's encoder padding
may outlast the video by up to 2,048 AAC samples, 0.26 s at 8 kHz (MP3 at 22 kHz: 0.05 s)."""
REORDER_WINDOW = 16
"""Decoded frames held to re-sort their times (display-order frames stamped in decoding order
reach 2-4 frames back with B-frame pyramids; 16 leaves room)."""


def _check_file(path: str) -> None:
    if not storage.exists(path):
        raise MediaError("missing_file", f"{path} does not exist")
    if storage.size(path) == 0:
        raise MediaError("empty_file", f"{path} is empty (0 bytes)")


def _open(local: str, path: str) -> av.container.InputContainer:
    try:
        return av.open(local, "r")
    except av.FFmpegError as e:
        raise MediaError("unreadable", f"{path}: {e.strerror or e}") from e


def _rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Counter-clockwise degrees to apply, a multiple of 90 in [0, 360)."""
    ccw = frame.rotation
    if not ccw and "rotate" in stream.metadata:
        # legacy tag: clockwise degrees
        ccw = -int(float(stream.metadata["rotate"]))
    return int(round(ccw / 90.0)) * 90 % 360


def _video_stream(container: av.container.InputContainer, path: str):
    if not container.streams.video:
        raise MediaError("no_video_stream", f"{path} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        # PyAV exposes no codec id without a decoder: say what is known
        raise MediaError(
            "unreadable",
            f"{path}: its video codec is one this FFmpeg build cannot decode (unknown to it)",
        )
    return stream


def _header(container, stream, path: str) -> tuple[float, float, int, str]:
    """(fps, duration s, n_frames, whose duration: "video" or "container") from the header."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    stated_by = "video"
    tag = _duration_tag(stream.metadata.get("DURATION"))
    if stream.duration:
        duration = float(stream.duration * stream.time_base)
    elif tag is not None:
        duration = tag
    elif container.duration:
        duration, stated_by = container.duration / av.time_base, "container"
    else:
        duration = 0.0
    n_frames = stream.frames
    if not rate and n_frames and duration:
        rate = n_frames / duration
    if not rate:
        raise MediaError("unreadable", f"{path}: no frame rate in the header")
    fps = float(rate)
    if not n_frames:
        n_frames = round(duration * fps)
    if not duration:
        duration = n_frames / fps
    return fps, duration, int(n_frames), stated_by


def _codec(stream) -> str:
    """The stream's codec for messages: "h264 (High)"."""
    ctx = stream.codec_context
    profile = f" ({ctx.profile})" if ctx.profile else ""
    return f"{ctx.codec.name}{profile}"


def _duration_tag(value: str | None) -> float | None:
    """Seconds of a Matroska `DURATION` tag ("00:00:02.000000000"); None when absent or odd."""
    try:
        hours, minutes, seconds = (value or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


class MediaFile:
    """One media file fetched once: its header facts (`info`), its audio (`audio`) and its frames
    (`VideoReader(media)`) are all read from one local copy, rewound between reads: a seek to a
    time before every packet (MP4/MOV, Matroska/WebM, WAV: the decoders are flushed), or, where
    the container refuses it (FLV, AVI), the copy opened afresh (a seek to FLV's first packet
    instead left H.264 video decoding nothing). A context manager; also an audio-only file
    (MEAD `.m4a`, CREMA-D `.wav`), where only `audio` applies.
    """

    def __init__(self, path: str) -> None:
        _check_file(path)
        self.path = path
        self._files = ExitStack()
        try:
            self._local = self._files.enter_context(storage.local_path(path))
            self.container = self._open()
        except BaseException:
            self._files.close()
            raise
        self._moved = False
        self._info: VideoInfo | None = None
        self._audio: tuple[int, np.ndarray] | None = None
        """(sample rate, samples) once decoded (decoding again would cost as much)."""

    def _open(self) -> av.container.InputContainer:
        container = _open(self._local, self.path)
        if container.streams.video and container.streams.video[0].codec_context is not None:
            # one decoding thread: the same frames, ~23 % less CPU per frame than FFmpeg's
            # automatic frame/slice threads (benchmarks/extract.py); an extraction worker has one
            # core. Set before the codec opens (the probe's first frame opens it)
            container.streams.video[0].codec_context.thread_count = 1
        return container

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()
        self._files.close()

    def rewind(self) -> av.container.InputContainer:
        """The container, at its first packet (a new one where seeking back is refused: decoded
        frames hold their own buffers and outlive the container that made them). Streams must
        be taken from it after the call."""
        if self._moved:
            try:
                # a time before every packet: MP4/MOV restart at their first packet (a seek to 0
                # would skip an AAC priming packet stamped before 0)
                self.container.seek(-(2**40))
            except av.FFmpegError:
                self.container.close()
                self.container = self._open()
        self._moved = True
        return self.container

    @property
    def info(self) -> VideoInfo:
        """Header facts of the first video stream; decodes one frame for size and rotation."""
        if self._info is None:
            self._info = self._probe()
        return self._info

    def _probe(self) -> VideoInfo:
        path, container = self.path, self.rewind()
        stream = _video_stream(container, path)
        fps, duration, n_frames, stated_by = _header(container, stream, path)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise MediaError(
                "unreadable",
                f"{path}: the first frame of its {_codec(stream)} video does not decode: {e}",
            ) from e
        if first is None:
            raise MediaError("no_frames", f"{path}: no frame of its {_codec(stream)} video decodes")
        rotation = _rotation(first, stream)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            width=width,
            height=height,
            fps=fps,
            duration=duration,
            n_frames=n_frames,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            stated_by=stated_by,
        )

    def audio(self, sample_rate: int = 16_000) -> np.ndarray:
        """`(S,) float32` mono at `sample_rate` Hz; sample 0 is the first video frame's time.

        Works on a video container or an audio-only file (MEAD `.m4a`, where time 0 is the
        audio start). Encoder padding is cut at the stream's declared end; audio starting after
        the video is padded with leading zeros. Raises `MediaError("no_audio")` without an audio
        stream. Decoded once: a second call returns the same array (at the same rate only).
        """
        if self._audio is None:
            self._audio = sample_rate, self._decode_audio(sample_rate)
        if self._audio[0] != sample_rate:
            raise ValueError(f"{self.path}: audio decoded at {self._audio[0]} Hz already")
        return self._audio[1]

    def _decode_audio(self, sample_rate: int) -> np.ndarray:
        path, container = self.path, self.rewind()
        if not container.streams.audio:
            raise MediaError("no_audio", f"{path} has no audio stream")
        stream = container.streams.audio[0]
        t_ref = _start_time(container.streams.video[0]) if container.streams.video else 0.0
        t_end = _end_time(stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        t_first: float | None = None
        frames = container.decode(stream)
        try:
            for frame in frames:
                if t_first is None:
                    t_first = frame.time if frame.time is not None else 0.0
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        except av.FFmpegError:
            pass  # a damaged tail: keep what decoded, like the video
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if t_first is None or audio.size == 0:
            raise MediaError("no_audio", f"{path}: the audio stream decodes no samples")
        lead = round((t_first - t_ref) * sample_rate)
        audio = np.pad(audio, (lead, 0)) if lead > 0 else audio[-lead:]
        if t_end is not None:
            audio = audio[: max(0, round((t_end - t_ref) * sample_rate))]
        return audio.astype(np.float32, copy=False)


def probe(path: str) -> VideoInfo:
    """Header facts of the first video stream (`MediaFile.info`)."""
    with MediaFile(path) as media:
        return media.info


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


class VideoReader:
    """Iterate `(t, rgb)` over a video at its native rate.

    `source` is a path or an open `MediaFile` (its container then serves every iteration).
    `t` is seconds since the first frame (float, from the frame's presentation time);
    `rgb` is `(H, W, 3) uint8`, upright (rotation applied), and no longer side than `max_side`
    when given (aspect kept). After iteration `decoded` counts frames, `duration` is their
    seconds and `truncated` says data is missing: decoding failed part-way (the frames before
    were still yielded), or the frames fall short of the stated duration (`truncation_slack`).
    `frames()` iterates the decoded frames themselves and `rgb(frame)` converts one, for a
    caller that keeps frames in the decoder's own (smaller, e.g. 4:2:0) format for a while.
    """

    def __init__(self, source: str | MediaFile, max_side: int | None = None) -> None:
        self.media = source if isinstance(source, MediaFile) else None
        """The open file iterated (rewound for each iteration); None: opened per iteration."""
        self.path = source if isinstance(source, str) else source.path
        self.max_side = max_side
        self.info = probe(source) if isinstance(source, str) else source.info
        self.decoded = 0
        self.duration = 0.0
        """Seconds of video that decoded: first to last frame plus one frame interval."""
        self.truncated = False
        self.error: str | None = None
        """Decoder message when decoding stopped on an error."""
        self.discarded = 0
        """Packets the container flags to discard (an MP4 edit list's priming frames)."""
        # scale before rotating: the stored frame has the pre-rotation orientation
        k = self.info.rotation // 90
        stored = (
            (self.info.height, self.info.width) if k % 2 else (self.info.width, self.info.height)
        )
        self._size = _scaled_size(*stored, max_side)
        # one reformatter per reader: frame.to_ndarray(width=...) builds a new swscale context
        # for every frame (measured: 0.3-0.45 ms per small frame, same pixels)
        self._reformatter = VideoReformatter()

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        for t, frame in self.frames():
            yield t, self.rgb(frame)

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a frame of this video: upright, scaled to `max_side`."""
        width, height = self._size
        # area averaging: a downscaled frame without aliasing for the face detector
        rgb: np.ndarray = self._reformatter.reformat(
            frame, width=width, height=height, format="rgb24", interpolation="AREA"
        ).to_ndarray()
        k = self.info.rotation // 90
        return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb

    def frames(self) -> Iterator[tuple[float, av.VideoFrame]]:
        """`(t, frame)` per decoded frame, as FFmpeg returns it (each frame holds its own
        buffers, so frames may be kept); counts `decoded`, sets `duration` and `truncated`.

        Frames come in the decoder's (display) order; their times are the stream's timestamps
        re-sorted over `REORDER_WINDOW` frames, so times never go back (an AVI stamps B-frames
        in decoding order); a frame without a timestamp is one frame after the latest."""
        self.decoded, self.duration, self.truncated, self.error = 0, 0.0, False, None
        self.discarded = 0
        info = self.info
        held: deque[av.VideoFrame] = deque()
        stamps: list[float] = []  # a heap of the held frames' times
        latest, t0 = -math.inf, 0.0
        with ExitStack() as files:
            media = self.media or files.enter_context(MediaFile(self.path))
            container = media.rewind()
            frames = self._decode(container, _video_stream(container, self.path))
            while True:
                frame = next(frames, None)
                if frame is not None:
                    t = frame.time if frame.pts is not None else latest + 1.0 / info.fps
                    latest = max(latest, t)
                    heapq.heappush(stamps, t)
                    held.append(frame)
                    if len(held) <= REORDER_WINDOW:
                        continue
                if not held:
                    break
                t = heapq.heappop(stamps)
                t0 = t if self.decoded == 0 else t0
                self.decoded += 1
                self.duration = t - t0 + 1.0 / info.fps
                yield float(t - t0), held.popleft()
        short_in_time = self.duration < info.duration - info.truncation_slack()
        short_in_count = self.decoded < info.n_frames - self.discarded - SLACK_FRAMES
        self.truncated = self.error is not None or short_in_time or short_in_count

    def _decode(self, container, stream) -> Iterator[av.VideoFrame]:
        """The stream's frames in the decoder's order; counts the packets an edit list
        discards (`discarded`); a decoding error ends them (`error`)."""
        try:
            for packet in container.demux(stream):
                self.discarded += packet.is_discard
                yield from packet.decode()
        except av.FFmpegError as e:
            self.error = str(e)


def decode_video(
    path: str, max_side: int | None = None
) -> tuple[np.ndarray, np.ndarray, VideoReader]:
    """All frames `(N, H, W, 3) uint8` RGB and their times `(N,) float64` seconds since frame 0."""
    reader = VideoReader(path, max_side)
    times, frames = [], []
    for t, rgb in reader:
        times.append(t)
        frames.append(rgb)
    if not frames:
        raise MediaError("no_frames", f"{path}: no video frame decodes ({reader.error or 'none'})")
    return np.stack(frames), np.asarray(times, dtype=np.float64), reader


def decode_audio(path: str, sample_rate: int = 16_000) -> np.ndarray:
    """`(S,) float32` mono at `sample_rate` Hz of a video or audio-only file (`MediaFile.audio`)."""
    with MediaFile(path) as media:
        return media.audio(sample_rate)


def _start_time(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _end_time(stream) -> float | None:
    """Seconds where the stream's declared samples end; None when the header has no duration."""
    if not stream.duration:
        return None
    return _start_time(stream) + float(stream.duration * stream.time_base)


@dataclass(frozen=True, slots=True)
class _Container:
    """How `write_video` writes one container: video codec and options, audio codec and the
    sample rates the container accepts for it (None: any)."""

    video_codec: str
    video_options: dict[str, str]
    container_options: dict[str, str]
    audio_codec: str
    audio_rates: tuple[int, ...] | None = None


_CONTAINERS: dict[str, _Container] = {
    # H.264 CRF 18 + AAC, header first (faststart). Macroblock-tree rate control off: x264's
    # (core 165, as PyAV bundles it) AVX-512 mbtree path reads uninitialised memory, so on
    # AVX-512 CPUs the same frames encoded twice in one process could differ by heap state
    ".mp4": _Container(
        "libx264", {"crf": "18", "x264-params": "mbtree=0"}, {"movflags": "+faststart"}, "aac"
    ),
    # Flash video as CREMA-D ships it: Sorenson Spark (FLV1) + MP3; FLV's MP3 needs 11/22/44 kHz
    ".flv": _Container("flv", {"qscale": "2"}, {}, "libmp3lame", (22_050, 44_100, 11_025)),
}


def write_video(
    path: str,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
) -> None:
    """Write `(H, W, 3) uint8` RGB frames as MP4 (H.264, yuv420p, CRF 18, AAC audio if given)
    or, for a `.flv` path, as Flash video (Sorenson Spark, MP3 audio resampled to 22.05 kHz).
    The same frames and audio give the same bytes, whatever the process did before.

    H and W must be even (4:2:0 chroma). `fps` may be fractional (29.97 → 30000/1001).
    `audio` is `(S,) float32` mono in [-1, 1] at `sample_rate`, starting at frame 0; it is
    interleaved with the video as the frames are written. Local paths only; parent folders are
    created.
    """
    kind = _CONTAINERS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        raise ValueError(f"{path}: can write {', '.join(_CONTAINERS)} videos only")
    if audio is not None:
        _check_audio(audio)
        if kind.audio_rates is not None and sample_rate not in kind.audio_rates:
            audio, sample_rate = (
                _resample(audio, sample_rate, kind.audio_rates[0]),
                kind.audio_rates[0],
            )
    rate = Fraction(fps).limit_denominator(1001)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, "w", container_options=kind.container_options) as container:
        video = cast(
            av.VideoStream,
            container.add_stream(kind.video_codec, rate=rate, options=kind.video_options),
        )
        video.pix_fmt = "yuv420p"
        track = None
        if audio is not None:
            track = _AudioTrack(container, audio, sample_rate, kind.audio_codec)
        n = 0
        for n, rgb in enumerate(frames, start=1):
            if n == 1:
                video.height, video.width = _frame_size(rgb)
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            if track is not None:
                container.mux(track.encode_until(math.ceil(n / rate * sample_rate)))
        if n == 0:
            raise ValueError(f"no frames to write to {path}")
        container.mux(video.encode(None))
        if track is not None:
            container.mux(track.encode_until(None))


def write_audio(path: str, audio: np.ndarray, sample_rate: int = 16_000) -> None:
    """Write `(S,) float32` mono audio: 16-bit PCM for a `.wav` path (CREMA-D's AudioWAV),
    else AAC in an MP4/M4A container (MEAD keeps its audio so)."""
    _check_audio(audio)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    wav = path.lower().endswith(".wav")
    with av.open(path, "w", format="wav" if wav else "mp4") as container:
        track = _AudioTrack(container, audio, sample_rate, "pcm_s16le" if wav else "aac")
        container.mux(track.encode_until(None))


def _resample(audio: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """`(S,) float32` mono audio at `rate` → the same at `to_rate` (FFmpeg's resampler)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(audio[None], format="flt", layout="mono")
    frame.sample_rate = rate
    pieces = [f.to_ndarray()[0] for f in (*resampler.resample(frame), *resampler.resample(None))]
    return np.concatenate(pieces).astype(np.float32)


def _check_audio(audio: np.ndarray) -> None:
    if audio.ndim != 1 or audio.dtype != np.float32:
        raise ValueError(f"audio must be (S,) float32 mono, got {audio.shape} {audio.dtype}")


def _frame_size(rgb: np.ndarray) -> tuple[int, int]:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"frames must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 4:2:0 needs even sizes, got {width}x{height}")
    return height, width


class _AudioTrack:
    """A mono stream (`codec`) fed from one `(S,) float32` array, in pieces as the video
    advances."""

    def __init__(self, container, audio: np.ndarray, sample_rate: int, codec: str) -> None:
        self.stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        self.audio = audio
        self.sample_rate = sample_rate
        self.done = 0

    def encode_until(self, stop: int | None) -> list:
        """Packets for samples up to `stop`; None: all the rest, and flush the encoder."""
        end = len(self.audio) if stop is None else min(stop, len(self.audio))
        packets = []
        if end > self.done:
            piece = self.audio[None, self.done : end].copy()
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            frame.sample_rate, frame.pts = self.sample_rate, self.done
            packets = self.stream.encode(frame)
            self.done = end
        return packets + self.stream.encode(None) if stop is None else packets
