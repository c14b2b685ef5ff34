"""SyncNet backend (space_data.syncnet): parity with the reference implementation's outputs,
the checkpoint's one-line errors, unmeasured cases, the sign convention, the extractor path.

The parity fixture (../shared/syncnet_reference, README there) holds seeded random weights in
the layout of syncnet_v2.model and the reference's outputs on two realdata 224² 25 fps tracks.
Random weights say nothing about sync: only equality with the reference is tested.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from space_data import syncnet
from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.sync_estimate import AvSyncConfig
from space_data.syncnet import (
    CHECKPOINT_URL,
    MIN_FRAMES,
    SAMPLES_PER_FRAME,
    VSHIFT,
    NearestFrames,
    SyncNet,
    SyncNetCheckpointError,
    SyncNetResult,
    lag_distances,
    load_syncnet,
    run_syncnet,
)
from space_data.testing.faces import realdata_root

TRACKS = ("voxceleb2_style_224_frontal", "voxceleb2_style_224_turned")
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def reference() -> Path:
    path = realdata_root().parent / "syncnet_reference"
    if not (path / "ref_sync.model").is_file():
        pytest.skip(f"SyncNet parity fixture {path} is absent")
    return path


@pytest.fixture(scope="module")
def ref_model(reference) -> SyncNet:
    return load_syncnet(str(reference / "ref_sync.model"))


@pytest.fixture(scope="module")
def random_model() -> SyncNet:
    torch.manual_seed(0)
    return SyncNet().eval()


def decode_track(path: Path) -> tuple[list[tuple[float, np.ndarray]], np.ndarray]:
    """The fixture's input: every frame as bgr24 (PyAV), the audio as the reference decodes it
    (`reference_audio`)."""
    with av.open(str(path)) as f:
        frames = [(fr.time, fr.to_ndarray(format="bgr24")) for fr in f.decode(video=0)]
    return frames, reference_audio(path)


def reference_audio(path: Path) -> np.ndarray:
    """16 kHz mono int16 audio by the reference's own command (`ffmpeg -ac 1 -vn -acodec
    pcm_s16le -ar 16000`, run_pipeline.py), on imageio-ffmpeg's static FFmpeg with its SIMD
    code paths off (`-cpuflags 0`): FFmpeg's AAC decoder rounds one LSB differently on a few
    samples with AVX on or off, and the fixture was decoded on the plain path."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error",
               "-cpuflags", "0", "-i", str(path), "-ac", "1", "-vn", "-acodec", "pcm_s16le",
               "-ar", "16000", "-f", "s16le", "-"]  # fmt: skip
    return np.frombuffer(subprocess.run(command, capture_output=True, check=True).stdout, np.int16)


def pyav_audio(path: Path) -> np.ndarray:
    """16 kHz mono int16 audio through PyAV's FFmpeg (the extractor's decoder)."""
    with av.open(str(path)) as f:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
        chunks = [x.to_ndarray().reshape(-1) for fr in f.decode(audio=0)
                  for x in resampler.resample(fr)]  # fmt: skip
        chunks += [x.to_ndarray().reshape(-1) for x in resampler.resample(None)]
    return np.concatenate(chunks)


@pytest.mark.slow
@pytest.mark.parametrize("track", TRACKS)
def test_parity_with_reference(track, realdata, reference, ref_model):
    ref = torch.load(reference / f"ref_sync_{track}.pt", weights_only=True)
    frames, audio = decode_track(realdata / "video" / f"{track}.mp4")
    # the fixture's FFmpeg gave 256 (frontal) and 512 (turned) samples more at the end, past
    # the last window that reads audio: min_length = min(frames, samples // 640) is the same
    assert len(frames) == ref["frames"]
    assert len(audio) // SAMPLES_PER_FRAME == ref["audio_samples"] // SAMPLES_PER_FRAME
    result = run_syncnet(ref_model, CPU, frames, audio, len(frames) / 25)
    assert isinstance(result, SyncNetResult)
    mdist = ref["mdist"].numpy()
    assert result.offset == ref["offset"]
    assert np.abs(result.mdist - mdist).max() <= 0.05 * np.ptp(mdist)
    assert result.confidence == pytest.approx(ref["conf"], abs=0.05 * np.ptp(mdist))
    assert len(result.im_feat) == ref["n_windows"]
    assert np.abs(result.im_feat - ref["im_feat"].numpy()).max() <= 1e-4
    assert np.abs(result.cc_feat - ref["cc_feat"].numpy()).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("track", TRACKS)
def test_pyav_audio_moves_few_windows(track, realdata, reference, ref_model):
    """The extractor decodes audio with PyAV, whose FFmpeg rounds the AAC decode one LSB apart
    from the reference's on a few samples: the audio embeddings of the windows that read them
    move (by ~1.6e-4 per LSB, measured), the rest are bit-identical, and the offset holds."""
    ref = torch.load(reference / f"ref_sync_{track}.pt", weights_only=True)
    frames, _ = decode_track(realdata / "video" / f"{track}.mp4")
    result = run_syncnet(ref_model, CPU, frames, pyav_audio(realdata / "video" / f"{track}.mp4"),
                         len(frames) / 25)  # fmt: skip
    assert isinstance(result, SyncNetResult)
    assert result.offset == ref["offset"]
    mdist = ref["mdist"].numpy()
    assert np.abs(result.mdist - mdist).max() <= 0.001 * np.ptp(mdist)
    cc_diff = np.abs(result.cc_feat - ref["cc_feat"].numpy()).max(1)
    assert np.mean(cc_diff == 0) >= 0.7
    assert cc_diff.max() <= 0.01 * np.abs(ref["cc_feat"].numpy()).max()


def test_lip_sequence_equals_windows(random_model):
    """The streamed lip path (one sequence per batch) is the reference's stack of 5-frame
    windows."""
    frames = torch.rand(3, 7, 224, 224) * 255
    windows = torch.stack([frames[:, v : v + 5] for v in range(3)])  # (3, 3, 5, 224, 224)
    with torch.no_grad():
        expected = random_model.forward_lip(windows)
        got = random_model.lip_sequence(frames)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-5)


@pytest.fixture(scope="module")
def state_dict() -> dict:
    return SyncNet().state_dict()


def test_checkpoint_missing_is_one_line(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    with pytest.raises(FileNotFoundError) as e:
        load_syncnet(str(path))
    message = str(e.value)
    assert "\n" not in message and str(path) in message and CHECKPOINT_URL in message


def test_checkpoint_wrong_key_is_one_line(tmp_path, state_dict):
    bad = dict(state_dict)
    bad["netcnnlip.99.weight"] = bad.pop("netcnnlip.0.weight")
    path = tmp_path / "renamed.model"
    torch.save(bad, path)
    with pytest.raises(SyncNetCheckpointError) as e:
        load_syncnet(str(path))
    message = str(e.value)
    assert "\n" not in message and str(path) in message and CHECKPOINT_URL in message
    assert "netcnnlip.0.weight" in message and "netcnnlip.99.weight" in message


def test_checkpoint_wrong_shape_and_not_torch(tmp_path, state_dict):
    small = dict(state_dict)
    small["netfclip.3.weight"] = torch.zeros(512, 512)  # a 512-d head, not 1024
    path = tmp_path / "small.model"
    torch.save(small, path)
    with pytest.raises(SyncNetCheckpointError, match=r"mis-shaped netfclip\.3\.weight"):
        load_syncnet(str(path))
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SyncNetCheckpointError) as e:
        load_syncnet(str(junk))
    assert "\n" not in str(e.value) and str(junk) in str(e.value)


def test_config_needs_a_checkpoint_for_syncnet():
    with pytest.raises(ValueError, match="syncnet_checkpoint"):
        AvSyncConfig(backend="syncnet")
    with pytest.raises(ValueError, match="backend"):
        AvSyncConfig(backend="wav2lip")
    assert AvSyncConfig().backend == "offline"


@pytest.mark.parametrize("fps", [25.0, 30.0, 24.0, 29.97, 50.0])
def test_resampling_to_25fps_takes_the_nearest_frame(fps):
    rng = np.random.default_rng(int(fps * 100))
    n = 120
    times = np.arange(n) / fps
    if fps == 24.0:  # a variable frame rate: jittered timestamps, still increasing
        times = times + rng.uniform(-0.01, 0.01, n)
        times[0] = 0.0
    duration = times[-1] + 1 / fps
    resampler = NearestFrames()
    picked = []
    for i, t in enumerate(times):
        picked += resampler.add(float(t), np.array(i))
    picked += resampler.finish(duration)
    k = np.arange(math.ceil(duration * 25 - 1e-6)) / 25
    nearest = np.abs(times[None, :] - k[:, None]).argmin(1)  # argmin: the earlier on a tie
    assert [int(p) for p in picked] == nearest.tolist()
    assert resampler.count == len(k)


def test_too_short_is_unmeasured(random_model):
    frame = np.zeros((224, 224, 3), np.uint8)
    n = MIN_FRAMES - 1
    audio = np.zeros(n * SAMPLES_PER_FRAME, np.int16)
    out = run_syncnet(random_model, CPU, [(k / 25, frame) for k in range(n)], audio, n / 25)
    assert not out.measured and out.confidence == 0.0 and out.reason == "too_short"
    # long enough video, audio too short: the shorter one counts
    out = run_syncnet(random_model, CPU, [(k / 25, frame) for k in range(60)], audio, 60 / 25)
    assert not out.measured and out.reason == "too_short"


def test_edge_and_flat_curves_are_unmeasured():
    feat = np.zeros((40, 1024), np.float32)
    curve = np.linspace(2.0, 1.0, 2 * VSHIFT + 1).astype(np.float32)  # minimum at lag +15
    edge = SyncNetResult(curve, feat, feat, 45).estimate()
    assert not edge.measured and edge.reason == "edge" and len(edge.curve) == 31
    flat = SyncNetResult(np.ones(31, np.float32), feat, feat, 45).estimate()
    assert not flat.measured and flat.reason == "flat"


@pytest.mark.parametrize("delay", [-4, 3, 8])
def test_sign_audio_late_is_positive(delay):
    """Audio embeddings that match the lip embeddings `delay` windows later (the sound of
    frame v heard at v + delay: audio late) give the reference's offset −delay and ours
    +delay × 30 / 25 timeline frames."""
    rng = np.random.default_rng(1)
    n = 60
    lips = torch.from_numpy(rng.normal(size=(n, 1024)).astype(np.float32))
    sound = torch.from_numpy(rng.normal(size=(n, 1024)).astype(np.float32))
    for v in range(max(0, -delay), min(n, n - delay)):
        sound[v + delay] = lips[v] + 0.1 * sound[v + delay]
    result = SyncNetResult(lag_distances(lips, sound).numpy(), lips.numpy(), sound.numpy(), n + 5)
    assert result.offset == -delay
    assert result.estimate().offset_frames == pytest.approx(delay * 30 / 25)


@pytest.mark.slow
def test_delayed_audio_shifts_audio_embeddings(realdata, random_model):
    """Delaying a real clip's audio by N frames (640 N leading zero samples) moves its audio
    embeddings N windows later, unchanged: with the lip embeddings fixed, the curve's
    lag axis moves by +N, which the sign test above turns into +N × 1.2 timeline frames."""
    _, audio = decode_track(realdata / "video" / f"{TRACKS[1]}.mp4")
    clip = syncnet.SyncNetClip(random_model, CPU, audio)
    shift = 6
    delayed = syncnet.SyncNetClip(
        random_model, CPU, np.concatenate([np.zeros(shift * SAMPLES_PER_FRAME, np.int16), audio])
    )
    with torch.no_grad():
        base = clip._audio_embeddings(40)
        moved = delayed._audio_embeddings(40 + shift)
    assert torch.allclose(moved[shift:], base, atol=1e-4)


@pytest.fixture(scope="module")
def syncnet_records(realdata, reference):
    config = ExtractConfig(
        require_audio=False,
        av_sync=AvSyncConfig(
            backend="syncnet", syncnet_checkpoint=str(reference / "ref_sync.model")
        ),
    )
    extractor = ClipExtractor(config)
    video = realdata / "video"

    def run(name: str, dataset: str):
        clip = Clip(clip_id=name, dataset=dataset, speaker="s1", path=str(video / f"{name}.mp4"))
        return extractor(clip)

    try:
        yield {
            "track": run(TRACKS[1], "voxceleb2"),  # used whole: the fixture's input
            "silent": run("strong_yaw_noaudio_30fps", "ravdess"),
        }
    finally:
        extractor.close()


@pytest.mark.slow
def test_extraction_with_syncnet_backend(syncnet_records, reference):
    record = syncnet_records["track"]
    assert record.status == "ok", record.reason
    stats = record.stats
    assert stats.av_sync_backend == "syncnet" and len(stats.av_sync_curve) == 2 * VSHIFT + 1
    ref = torch.load(reference / f"ref_sync_{TRACKS[1]}.pt", weights_only=True)
    mdist = ref["mdist"].numpy()
    assert np.abs(np.array(stats.av_sync_curve) - mdist).max() <= 0.05 * np.ptp(mdist)
    # the random weights put the minimum at the edge of the lag search: unmeasured
    assert math.isnan(stats.av_offset_frames) and stats.av_offset_confidence == 0.0


@pytest.mark.slow
def test_extraction_without_audio_is_unmeasured(syncnet_records):
    stats = syncnet_records["silent"].stats
    assert stats.av_sync_backend == "syncnet" and not stats.has_audio
    assert math.isnan(stats.av_offset_frames) and stats.av_offset_confidence == 0.0
    assert stats.av_sync_curve == []


def test_missing_checkpoint_stops_extraction(realdata, tmp_path):
    """A missing file is the configuration's fault, not the clip's: it raises (one line)."""
    config = ExtractConfig(
        av_sync=AvSyncConfig(backend="syncnet", syncnet_checkpoint=str(tmp_path / "none.model"))
    )
    clip = Clip(clip_id="t", dataset="voxceleb2", speaker="s1",
                path=str(realdata / "video" / f"{TRACKS[1]}.mp4"))  # fmt: skip
    extractor = ClipExtractor(config)
    try:
        with pytest.raises(FileNotFoundError, match="syncnet_checkpoint"):
            extractor(clip)
    finally:
        extractor.close()
