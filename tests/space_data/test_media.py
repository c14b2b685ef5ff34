"""Decoding and writing media: real timing, rotation, odd sizes, truncation, audio sync, bad files.

Videos are made here with `write_video` (or PyAV directly for what it does not write: rotation
metadata, odd sizes, variable frame rate), plus the real clips under ../shared/realdata.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from space_data.media import (
    MediaError,
    MediaFile,
    VideoReader,
    decode_audio,
    decode_video,
    probe,
    write_audio,
    write_video,
)

SR = 16_000
FPS = 25
N_FRAMES = 40  # 1.6 s
FLASH = 20  # frame with a white flash and an audio click


def _frames(n: int, height: int = 64, width: int = 64) -> np.ndarray:
    """(n, H, W, 3) uint8: a horizontal gradient whose brightness steps with the frame index."""
    ramp = np.linspace(0, 120, width, dtype=np.float32)[None, :, None]
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        out[i] = np.clip(ramp + 2 * i, 0, 255).astype(np.uint8)
    return out


def _write_with_pyav(path: Path, frames, pts_ms=None, codec="libx264", rotation=None) -> None:
    """Write what write_video does not: display rotation, odd sizes (mpeg4), explicit times."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Small videos made once for the whole session."""
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    frames = _frames(N_FRAMES)
    frames[FLASH] = 255
    audio = (0.05 * rng.standard_normal(N_FRAMES * SR // FPS)).astype(np.float32)
    audio[FLASH * SR // FPS] = 1.0  # click at the flash
    np.save(root / "audio.npy", audio)
    write_video(str(root / "av.mp4"), frames, FPS, audio=audio)
    write_video(str(root / "silent.mp4"), _frames(10, 32, 48), FPS)
    write_video(str(root / "ntsc.mp4"), _frames(30, 32, 32), 30000 / 1001)
    write_audio(str(root / "speech.m4a"), audio)
    stored = _frames(6, 32, 64)
    stored[:, :8, :8] = 255  # white top-left corner marks the orientation
    _write_with_pyav(root / "rot90.mp4", stored, rotation=90)
    _write_with_pyav(root / "odd.mp4", _frames(5, 47, 63), codec="mpeg4")
    _write_with_pyav(root / "vfr.mp4", _frames(6, 32, 32), pts_ms=[0, 33, 66, 200, 233, 500])
    data = (root / "av.mp4").read_bytes()
    (root / "half.mp4").write_bytes(data[: len(data) // 2])  # header first (faststart)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n")
    return root


def test_write_then_probe(media_dir):
    info = probe(str(media_dir / "av.mp4"))
    assert (info.width, info.height, info.fps, info.n_frames) == (64, 64, 25.0, N_FRAMES)
    assert info.duration == pytest.approx(N_FRAMES / FPS)
    assert info.rotation == 0 and info.has_audio
    assert not probe(str(media_dir / "silent.mp4")).has_audio


def test_decode_video_native_rate_and_pixels(media_dir):
    frames, times, reader = decode_video(str(media_dir / "av.mp4"))
    assert frames.shape == (N_FRAMES, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(N_FRAMES) / FPS, atol=1e-6)
    assert reader.decoded == N_FRAMES and not reader.truncated
    expected = _frames(N_FRAMES).astype(int)
    expected[FLASH] = 255
    assert np.abs(frames.astype(int) - expected).mean() < 3  # CRF 18 is near-lossless here


def test_fractional_rate(media_dir):
    info = probe(str(media_dir / "ntsc.mp4"))
    assert info.fps == pytest.approx(30000 / 1001)
    _, times, _ = decode_video(str(media_dir / "ntsc.mp4"))
    np.testing.assert_allclose(times, np.arange(30) * 1001 / 30000, atol=1e-6)


def test_max_side_keeps_aspect(media_dir):
    frames, _, _ = decode_video(str(media_dir / "silent.mp4"), max_side=24)
    assert frames.shape[1:] == (16, 24, 3)


def test_variable_frame_rate_keeps_real_times(media_dir):
    _, times, reader = decode_video(str(media_dir / "vfr.mp4"))
    np.testing.assert_allclose(times, [0, 0.033, 0.066, 0.2, 0.233, 0.5], atol=1e-6)
    assert not reader.truncated


def test_rotation_metadata_applied(media_dir):
    info = probe(str(media_dir / "rot90.mp4"))
    assert info.rotation == 90 and (info.width, info.height) == (32, 64)
    frames, _, _ = decode_video(str(media_dir / "rot90.mp4"))
    assert frames.shape[1:] == (64, 32, 3)
    # 90° counter-clockwise: the stored top-left corner ends at the bottom-left
    assert frames[0, -8:, :8].mean() > 200 and frames[0, :8, :8].mean() < 200


def test_odd_sizes(media_dir):
    frames, _, _ = decode_video(str(media_dir / "odd.mp4"))
    assert frames.shape == (5, 47, 63, 3)
    with pytest.raises(ValueError, match="even"):
        write_video(str(media_dir / "bad.mp4"), _frames(2, 47, 63), 25)


def test_truncated_keeps_what_decodes(media_dir):
    frames, times, reader = decode_video(str(media_dir / "half.mp4"))
    assert reader.truncated
    assert 0 < reader.decoded < N_FRAMES == reader.info.n_frames
    assert len(frames) == len(times) == reader.decoded


def test_audio_in_sync_and_padding_trimmed(media_dir):
    audio = np.load(media_dir / "audio.npy")
    decoded = decode_audio(str(media_dir / "av.mp4"))
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert len(decoded) == len(audio)  # no encoder priming or tail padding left
    assert np.corrcoef(decoded, audio)[0, 1] > 0.95
    # the click lands at the flash frame's time
    assert abs(int(np.argmax(decoded)) - FLASH * SR // FPS) <= 8


def test_audio_starting_after_the_video_is_padded(tmp_path):
    noise = (0.2 * np.random.default_rng(3).standard_normal(SR)).astype(np.float32)
    path = tmp_path / "late.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=SR, layout="mono")
        for rgb in _frames(N_FRAMES, 32, 32):
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode(None))
        frame = av.AudioFrame.from_ndarray(noise[None].copy(), format="flt", layout="mono")
        frame.sample_rate, frame.pts = SR, SR // 5  # audio starts 0.2 s after the video
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    decoded = decode_audio(str(path))
    assert len(decoded) == SR // 5 + SR
    lags = [np.dot(decoded[lag : lag + 4000], noise[:4000]) for lag in range(SR // 2)]
    assert int(np.argmax(lags)) == SR // 5
    # before the stream starts: zeros (the encoder's 1,024 priming samples sit just before 0.2 s)
    assert not decoded[: SR // 5 - 1024].any()


def test_separate_audio_file(media_dir):
    audio = np.load(media_dir / "audio.npy")
    decoded = decode_audio(str(media_dir / "speech.m4a"))
    assert len(decoded) == len(audio)
    assert np.corrcoef(decoded, audio)[0, 1] > 0.95


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing.mp4", "missing_file"),
        ("empty.mp4", "empty_file"),
        ("text.mp4", "unreadable"),
        ("speech.m4a", "no_video_stream"),
    ],
)
def test_broken_video_reasons(media_dir, name, reason):
    with pytest.raises(MediaError) as err:
        probe(str(media_dir / name))
    assert err.value.reason == reason
    with pytest.raises(MediaError) as err:
        decode_video(str(media_dir / name))
    assert err.value.reason == reason


def test_no_audio_reason(media_dir):
    with pytest.raises(MediaError) as err:
        decode_audio(str(media_dir / "silent.mp4"))
    assert err.value.reason == "no_audio"


@pytest.mark.realdata
def test_real_audio_matches_video_length(realdata):
    for name in ("frontal_talking_may_25fps", "interview_talking_25fps", "news_talking_25fps"):
        path = str(realdata / "video" / f"{name}.mp4")
        info = probe(path)
        audio = decode_audio(path)
        assert info.fps == 25.0 and info.has_audio
        # within one video frame once the AAC padding is cut
        assert abs(len(audio) / SR - info.duration) <= 1 / info.fps, name


@pytest.mark.realdata
def test_real_broken_inputs(realdata, tmp_path):
    silent = str(realdata / "video" / "strong_yaw_noaudio_30fps.mp4")
    assert probe(silent).fps == 30.0
    with pytest.raises(MediaError) as err:
        decode_audio(silent)
    assert err.value.reason == "no_audio"
    # header at the end (moov after mdat): half a file has no header at all
    data = (realdata / "video" / "news_talking_25fps.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as err:
        probe(str(tmp_path / "cut.mp4"))
    assert err.value.reason == "unreadable"
    # header first: the first half decodes and is marked truncated
    data = (realdata / "video" / "interview_talking_25fps.mp4").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    frames, _, reader = decode_video(str(tmp_path / "half.mp4"), max_side=128)
    assert reader.truncated and 0 < len(frames) < reader.info.n_frames


def test_flash_video_and_wav_as_cremad_ships_them(tmp_path):
    """`.flv` (Sorenson Spark + MP3) and `.wav` (16-bit PCM) round trips. FLV headers count no
    frames: the duration estimate includes the MP3 padding, yet a whole file is not truncated,
    while the first half of one is."""
    rng = np.random.default_rng(0)
    sound = (0.1 * rng.standard_normal(90 * SR // 30)).astype(np.float32)
    path = tmp_path / "1001_DFA_ANG_XX.flv"
    write_video(str(path), _frames(90, 48, 64), 30.0, sound, SR)
    with av.open(str(path)) as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
    assert codecs == {"video": "flv", "audio": "mp3float"}
    frames, _, reader = decode_video(str(path))
    assert len(frames) == 90 and not reader.truncated
    assert reader.info.stated_by == "container" and reader.info.n_frames > 90  # the estimate
    assert np.abs(frames.astype(int) - _frames(90, 48, 64)).mean() < 4
    assert len(decode_audio(str(path))) == pytest.approx(len(sound), abs=0.03 * SR)
    data = path.read_bytes()
    (tmp_path / "half.flv").write_bytes(data[: len(data) // 2])
    _, _, half = decode_video(str(tmp_path / "half.flv"))
    assert half.truncated and 0 < half.decoded < 90
    write_audio(str(tmp_path / "a.wav"), sound, SR)
    np.testing.assert_allclose(decode_audio(str(tmp_path / "a.wav")), sound, atol=1e-4)


_WRITE_MOVING_PHOTO = """
import sys, cv2, numpy as np, skimage.data
from space_data.media import write_video
img = skimage.data.astronaut()
turns = (cv2.getRotationMatrix2D((256, 256), 6 * np.sin(k / 5), 1 + k / 100) for k in range(60))
frames = (
    cv2.resize(cv2.warpAffine(img, m, (512, 512)), (224, 224), interpolation=cv2.INTER_AREA)
    for m in turns
)
write_video(sys.argv[1], frames, 25.0, np.zeros(2 * 16000, np.float32))
"""


@pytest.mark.parametrize("name", ["av.mp4", "half.mp4", "vfr.mp4", "rot90.mp4", "av.flv"])
def test_one_open_file_serves_probe_audio_and_frames_as_separate_opens_do(media_dir, name):
    """MediaFile rewinds its one container between reads (MP4 with AAC priming, a truncated
    MP4, VFR, rotation, FLV with MP3): every read equals the same read of a freshly opened file."""
    path = str(media_dir / name)
    if name == "av.flv":
        audio = np.load(media_dir / "audio.npy")
        write_video(path, _frames(N_FRAMES), FPS, audio=audio)
    frames, times, reader = decode_video(path)
    with MediaFile(path) as media:
        assert media.info == probe(path)
        if media.info.has_audio:
            np.testing.assert_array_equal(media.audio(), decode_audio(path))
        for _ in range(2):  # a second pass (a clip too big to buffer) rewinds again
            again = VideoReader(media)
            pairs = list(again)
            np.testing.assert_array_equal(np.stack([rgb for _, rgb in pairs]), frames)
            np.testing.assert_array_equal([t for t, _ in pairs], times)
            assert (again.decoded, again.truncated) == (reader.decoded, reader.truncated)


@pytest.mark.parametrize("name", ["av.mp4", "half.mp4", "vfr.mp4", "rot90.mp4", "av.flv"])
def test_kept_decoded_frames_convert_to_the_streamed_pixels(media_dir, name):
    """`frames()` gives frames that stay valid while later ones decode (the extractor keeps a
    clip's frames in the decoder's format); `rgb` of each kept frame equals what iterating the
    reader streams, rotation included."""
    path = str(media_dir / name)
    if name == "av.flv":
        write_video(path, _frames(N_FRAMES), FPS, audio=np.load(media_dir / "audio.npy"))
    streamed, times, reader = decode_video(path)
    kept = list(reader.frames())
    assert [t for t, _ in kept] == list(times) and reader.decoded == len(streamed)
    np.testing.assert_array_equal(np.stack([reader.rgb(f) for _, f in kept]), streamed)


def test_same_frames_give_the_same_bytes_whatever_the_heap_holds(tmp_path):
    """The sample corpus is rebuilt clip by clip (`synth.only`): an encoder that reads memory it
    never wrote (x264's AVX-512 macroblock-tree path did, on 224-px frames) makes the bytes
    depend on what the process allocated before. glibc's MALLOC_PERTURB_ fills fresh heap
    memory with a given byte: two fills, the same file (on AVX-512 CPUs this failed before)."""
    paths = [tmp_path / f"{fill}.mp4" for fill in (165, 90)]
    for fill, path in zip((165, 90), paths, strict=True):
        env = {**os.environ, "MALLOC_PERTURB_": str(fill)}
        subprocess.run([sys.executable, "-c", _WRITE_MOVING_PHOTO, str(path)], env=env, check=True)
    assert paths[0].read_bytes() == paths[1].read_bytes()
