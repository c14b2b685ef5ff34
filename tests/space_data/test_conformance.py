"""Every intact file decodes: one real talking clip re-encoded with PyAV into the codecs and
containers real corpora use; and a file cut short is `truncated`, whatever its container.

Each format is decoded by `VideoReader` (frames within one of what FFmpeg's own decoder gives,
the original's duration and audio length within a frame, not truncated); a few, those that
failed before, are extracted end to end and land as `ok`. Clips are 2 s at 160² (the source is
512²); writing the set takes ~10 s on one core, the module ~25 s (marked slow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.filters import FilterConfig, filter_clip
from space_data.media import MediaError, MediaFile, VideoReader

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SOURCE = "video/frontal_talking_may_25fps.mp4"
FPS = 25
SECONDS = 2.0
N = int(SECONDS * FPS)
SOURCE_RATE = 48_000


@dataclass(frozen=True)
class Format:
    """How one conformance file is written (PyAV encoder names; see ENVIRONMENT.md)."""

    video: str = "libx264"
    audio: str = "aac"
    pix_fmt: str = "yuv420p"
    size: tuple[int, int] = (160, 160)
    rate: int = 44_100
    layout: str = "stereo"
    video_options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    rotation: int | None = None
    vfr: bool = False
    edit_list: bool = False
    """Remux with the first frame before time 0: the MP4 edit list discards it (ffmpeg cuts)."""


FAST = {"movflags": "+faststart"}
FORMATS: dict[str, Format] = {
    "h264_aac.mp4": Format(container_options=FAST),
    "h264_bframes_aac48k.mov": Format(rate=48_000, video_options={"bf": "3"}),
    "h264_opus.mkv": Format(audio="libopus", rate=48_000),
    "h264_aac.flv": Format(),
    "h264_aac16k_mono.flv": Format(rate=16_000, layout="mono"),
    "h264_mp3.avi": Format(audio="libmp3lame"),
    "h264_10bit_flac.mkv": Format(pix_fmt="yuv420p10le", audio="flac"),
    "h264_444_odd_pcm8k_mono.mkv": Format(
        pix_fmt="yuv444p", size=(161, 121), audio="pcm_s16le", rate=8_000, layout="mono"
    ),
    "h264_aac_5ch1.mp4": Format(layout="5.1", rate=48_000),
    "h264_rotated90.mp4": Format(rotation=90, size=(160, 128)),
    "h264_vfr.mp4": Format(vfr=True),
    "h264_editlist.mp4": Format(edit_list=True),
    "hevc_aac.mp4": Format(video="libx265", video_options={"x265-params": "log-level=error"}),
    "vp8_opus.webm": Format(video="libvpx", audio="libopus", rate=48_000),
    "vp9_opus.webm": Format(video="libvpx-vp9", audio="libopus", rate=48_000),
    "mpeg4_mp3.avi": Format(video="mpeg4", audio="libmp3lame"),
    "mpeg4_bframes_mp3.avi": Format(video="mpeg4", audio="libmp3lame", video_options={"bf": "2"}),
    "mpeg4_aac.mp4": Format(video="mpeg4"),
    "flv1_mp3_22k_mono.flv": Format(video="flv", audio="libmp3lame", rate=22_050, layout="mono"),
    "mjpeg_pcm.avi": Format(video="mjpeg", pix_fmt="yuvj420p", audio="pcm_s16le"),
    "prores_pcm.mov": Format(video="prores_ks", pix_fmt="yuv422p10le", audio="pcm_s16le"),
    "av1_opus.webm": Format(video="libsvtav1", audio="libopus", rate=48_000),
}
"""File name → format. Not here: Vorbis (no encoder in PyAV's wheel)."""

VFR_STEPS_MS = (30, 50)
"""Frame durations the `vfr` file alternates (40 ms on average: the same 2 s)."""


def _source(realdata: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The first 2 s of the real clip: RGB frames, and (2, S) float32 audio at 48 kHz."""
    with av.open(str(realdata / SOURCE)) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(N), container.decode(video=0))]
    with av.open(str(realdata / SOURCE)) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SOURCE_RATE)
        pieces = [r.to_ndarray() for f in container.decode(audio=0) for r in resampler.resample(f)]
    return frames, np.concatenate(pieces, axis=1)[:, : int(SECONDS * SOURCE_RATE)]


def _video_times(fmt: Format) -> list[Fraction]:
    if not fmt.vfr:
        return [Fraction(i, FPS) for i in range(N)]
    steps = [Fraction(VFR_STEPS_MS[i % 2], 1000) for i in range(N - 1)]
    return [sum(steps[:i], Fraction(0)) for i in range(N)]


def _write(path: Path, fmt: Format, frames: list[np.ndarray], audio: np.ndarray) -> None:
    """Video and audio interleaved in time order, as a muxer expects."""
    with av.open(str(path), "w", container_options=fmt.container_options) as out:
        video = out.add_stream(fmt.video, rate=FPS, options=fmt.video_options)
        video.width, video.height = fmt.size
        video.pix_fmt = fmt.pix_fmt
        time_base = Fraction(1, 1000) if fmt.vfr else Fraction(1, FPS)
        video.codec_context.time_base = time_base
        if fmt.rotation is not None:
            video.set_display_rotation(fmt.rotation)
        sound = out.add_stream(fmt.audio, rate=fmt.rate, layout=fmt.layout)
        resampler = av.AudioResampler(
            format=sound.codec_context.format.name,
            layout=fmt.layout,
            rate=fmt.rate,
            frame_size=sound.codec_context.frame_size or 1024,
        )
        times, done = _video_times(fmt), 0
        for i, rgb in enumerate(frames):
            if fmt.rotation:  # stored turned back, so that the display matrix shows it upright
                rgb = np.ascontiguousarray(np.rot90(rgb, -fmt.rotation // 90))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                width=fmt.size[0], height=fmt.size[1], format=fmt.pix_fmt
            )
            frame.pts, frame.time_base = round(times[i] / time_base), time_base
            out.mux(video.encode(frame))
            stop = audio.shape[1] if i == N - 1 else int(times[i + 1] * SOURCE_RATE)
            if stop > done:
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, done:stop]), format="fltp", layout="stereo"
                )
                piece.sample_rate, piece.pts = SOURCE_RATE, done
                piece.time_base = Fraction(1, SOURCE_RATE)
                for resampled in resampler.resample(piece):
                    out.mux(sound.encode(resampled))
                done = stop
        for resampled in resampler.resample(None):
            out.mux(sound.encode(resampled))
        out.mux(video.encode(None))
        out.mux(sound.encode(None))


def _shift_first_frame_before_zero(path: Path) -> None:
    """Remux `path` with every video packet one frame earlier: frame 0 then lies before time
    0, and the MP4 muxer writes an edit list that discards it (62 stated, 61 decode in HDTF)."""
    shifted = path.with_suffix(".tmp.mp4")
    with av.open(str(path)) as src, av.open(str(shifted), "w") as out:
        video, sound = src.streams.video[0], src.streams.audio[0]
        streams = {video: out.add_stream_from_template(video)}
        streams[sound] = out.add_stream_from_template(sound)
        step = round(1 / (FPS * video.time_base))
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream is video:
                packet.pts, packet.dts = packet.pts - step, packet.dts - step
            packet.stream = streams[packet.stream]
            out.mux(packet)
    shifted.replace(path)


@pytest.fixture(scope="module")
def conformance(realdata, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("conformance")
    frames, audio = _source(realdata)
    paths = {}
    for name, fmt in FORMATS.items():
        paths[name] = root / name
        _write(paths[name], fmt, frames, audio)
        if fmt.edit_list:
            _shift_first_frame_before_zero(paths[name])
    return paths


def _ffmpeg_count(path: Path) -> int:
    """Frames FFmpeg's decoder gives, read plainly (no seeking, no reordering)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("name", FORMATS)
def test_every_intact_format_decodes_whole(conformance, name):
    path, fmt = conformance[name], FORMATS[name]
    expected = N - 1 if fmt.edit_list else N
    with MediaFile(str(path)) as media:
        audio = media.audio()
        reader = VideoReader(media)
        times = [t for t, _ in reader.frames()]
    assert abs(reader.decoded - _ffmpeg_count(path)) <= 1, name
    assert abs(reader.decoded - expected) <= 1, (name, reader.decoded)
    assert not reader.truncated, (name, reader.duration, reader.info)
    assert np.all(np.diff(times) > 0), name
    assert abs(reader.duration - expected / FPS) <= 1 / FPS + 1e-9, name
    # the audio's own length: one frame, plus AAC's padding where no header says where the
    # audio ends (FLV: up to 1,024 samples at the source rate)
    slack = 1 / FPS + (1024 / fmt.rate if name.endswith(".flv") and fmt.audio == "aac" else 0)
    assert len(audio) / 16_000 == pytest.approx(SECONDS, abs=slack), name
    if fmt.rotation:
        assert (reader.info.width, reader.info.height) == fmt.size[::-1]


CUT_FORMATS = (
    "h264_aac.mp4",
    "h264_opus.mkv",
    "h264_aac.flv",
    "mpeg4_mp3.avi",
    "vp9_opus.webm",
    "flv1_mp3_22k_mono.flv",
)


@pytest.mark.parametrize("name", CUT_FORMATS)
@pytest.mark.parametrize("quarters", [1, 2, 3])
def test_a_byte_cut_file_is_truncated(conformance, tmp_path, name, quarters):
    """`head -c`: the first quarter, half or three quarters of the bytes decode in part and are
    marked `truncated` (an AVI's header counts its frames; FFmpeg estimates its duration from
    the bytes left, so the count is what tells)."""
    data = conformance[name].read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) * quarters // 4])
    reader = VideoReader(str(cut))
    decoded = sum(1 for _ in reader.frames())
    assert reader.truncated and 0 < decoded < N - 2, (name, quarters, decoded)


def test_a_codec_without_a_decoder_is_named(tmp_path):
    """A stream FFmpeg has no decoder for fails in one line that names the codec."""
    path = tmp_path / "unknown.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    at = data.find(b"V_FFV1")  # the Matroska codec id → one FFmpeg does not know
    data[at : at + 6] = b"V_XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError) as err:
        VideoReader(str(path))
    assert err.value.reason == "unreadable" and "codec" in str(err.value), err.value


EXTRACTED = (
    "h264_aac.flv",
    "mpeg4_mp3.avi",
    "h264_mp3.avi",
    "h264_editlist.mp4",
    "h264_rotated90.mp4",
)
"""Those that failed before (no_frames, truncated, 27 of 50 frames, truncated), and a rotated
one: end to end, kept by every filter."""


@pytest.fixture(scope="module")
def extractor():
    ex = ClipExtractor(ExtractConfig())
    yield ex
    ex.close()


@pytest.mark.slow
def test_formats_that_failed_before_extract_ok(conformance, extractor, tmp_path):
    for name in EXTRACTED:
        path = conformance[name]
        rec = extractor(Clip(clip_id=path.stem, dataset="mead", speaker="s1", path=str(path)))
        assert rec.ok, (name, rec.reason)
        expected = N - 1 if FORMATS[name].edit_list else N
        assert abs(rec.stats.decoded_frames - expected) <= 1 and not rec.stats.truncated, name
        assert abs(rec.stats.duration - expected / FPS) <= 1 / FPS + 1e-9, name
        assert filter_clip(rec.stats, FilterConfig()) == [], name
    # three quarters of an MP4 (header first): dropped as `truncated`, the record says how much
    data = conformance["h264_aac.mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 4])
    rec = extractor(Clip(clip_id="cut", dataset="mead", speaker="s1", path=str(cut)))
    assert rec.ok and rec.stats.truncated, rec.reason
    assert 0 < rec.stats.decoded_frames < N - 2
    assert rec.stats.duration < rec.stats.stated_duration - 0.2
    assert filter_clip(rec.stats, FilterConfig())[0] == "truncated"
