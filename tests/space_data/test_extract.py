"""ClipExtractor end to end: real MediaPipe on real and synthetic talking faces, broken inputs.

Extraction results are shared through module-scoped fixtures (each clip is extracted once).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from space_data.clip import Clip
from space_data.errors import SetupError
from space_data.extract import ClipExtractor, ExtractConfig, extract_clip, extraction_hash
from space_data.face import crop_and_resize
from space_data.filters import FilterConfig, filter_clip
from space_data.keypoints import KeypointsConfig
from space_data.landmarks import LandmarksConfig, make_landmarker
from space_data.media import decode_audio, decode_video, probe, write_video
from space_data.record import ARRAY_MEMBERS, OPTIONAL_MEMBERS
from space_data.timeline import resample_track, timeline_length

pytestmark = pytest.mark.slow

# dtype and trailing shape of every member this configuration writes (T, A from the clip)
MEMBER_SHAPES = {
    "lm3d": ((68, 3), np.float32),
    "pose": ((6,), np.float32),
    "scale": ((), np.float32),
    "face": ((), np.uint8),
    "lm_norm": ((68, 3), np.float32),
    "eyes": ((52, 3), np.float32),
    "eyes_norm": ((52, 3), np.float32),
    "hands": ((), np.uint8),
    "emotion_pred": ((9,), np.float32),
}


def _clip(path: Path, dataset: str, clip_id: str | None = None, **kw) -> Clip:
    return Clip(clip_id=clip_id or path.stem, dataset=dataset, speaker="s1", path=str(path), **kw)


@pytest.fixture(scope="module")
def extractor():
    ex = ClipExtractor(ExtractConfig(require_audio=False))
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def real_records(realdata, extractor):
    """Records of three real videos (cropped 512² and whole-frame paths) and a mirrored one."""
    video = realdata / "video"
    out = {
        "may": extractor(_clip(video / "frontal_talking_may_25fps.mp4", "mead")),
        "turned": extractor(_clip(video / "voxceleb2_style_224_turned.mp4", "voxceleb2")),
        "yaw": extractor(_clip(video / "strong_yaw_noaudio_30fps.mp4", "ravdess")),
    }
    return out


@pytest.fixture(scope="module")
def mirrored_turned(realdata, extractor, tmp_path_factory):
    """The turned VoxCeleb2-style clip written left-right mirrored, then extracted."""
    src = realdata / "video" / "voxceleb2_style_224_turned.mp4"
    frames, _, _ = decode_video(str(src))
    path = tmp_path_factory.mktemp("mirror") / "turned_mirrored.mp4"
    write_video(str(path), frames[:, :, ::-1], probe(str(src)).fps, decode_audio(str(src)))
    return extractor(_clip(path, "voxceleb2"))


@pytest.mark.realdata
def test_record_members_shapes_and_timeline(real_records):
    for name, rec in real_records.items():
        assert rec.ok, (name, rec.reason)
        n = rec.stats.n_frames
        assert n == timeline_length(rec.stats.duration)
        expected = set(MEMBER_SHAPES) | ({"mfcc", "speech"} if rec.stats.has_audio else set())
        assert set(rec.arrays) == expected
        assert set(rec.arrays) <= set(ARRAY_MEMBERS)
        for member, (trailing, dtype) in MEMBER_SHAPES.items():
            arr = rec.arrays[member]
            assert arr.shape == (n, *trailing) and arr.dtype == dtype, member
        if rec.stats.has_audio:
            assert rec.arrays["mfcc"].shape == (3, n, 40)
            assert rec.arrays["mfcc"].dtype == np.float32
            assert rec.arrays["speech"].shape == (n,) and rec.arrays["speech"].dtype == np.float32
        else:
            assert np.isnan(rec.stats.speech_fraction)
        # per-frame emotion distributions where there is a face
        face = rec.arrays["face"] > 0
        np.testing.assert_allclose(rec.arrays["emotion_pred"][face].sum(1), 1.0, rtol=1e-4)
        assert np.isnan(rec.arrays["emotion_pred"][~face]).all()
        assert rec.meta.emotion_classifier["name"] == "fer-2013-mini-xception"
        assert len(rec.meta.emotion_classifier["sha256"]) == 64
        # keypoints absent without a checkpoint, and meta says why
        assert not set(rec.arrays) & (OPTIONAL_MEMBERS - {"mfcc", "speech"})
        assert "no checkpoint" in rec.meta.keypoints
        assert rec.frame0[:2] == b"\xff\xd8"  # JPEG
        json.dumps(rec.meta.to_dict())  # meta must be plain JSON


@pytest.mark.realdata
def test_real_videos_meta_crop_and_timeline(real_records, realdata):
    may, turned = real_records["may"], real_records["turned"]
    info = probe(str(realdata / "video" / "frontal_talking_may_25fps.mp4"))
    assert abs(may.stats.duration - info.duration) < 1 / info.fps
    assert may.stats.native_fps == pytest.approx(25.0)
    assert may.meta.crop_size == 512 and may.meta.native_fps == pytest.approx(25.0)
    x0, y0, x1, y1 = may.meta.crop_box
    assert x1 - x0 == y1 - y0 and x0 >= 0 and x1 <= 512 and y1 <= 512
    # landmarks in 512² crop pixels; the whole-frame clip stays in its 224² frame pixels
    assert np.nanmin(may.arrays["lm3d"][..., :2]) > 0 and np.nanmax(may.arrays["lm3d"]) < 512
    assert turned.meta.crop_box == [0, 0, 224, 224] and turned.meta.crop_size is None
    assert np.nanmax(turned.arrays["lm3d"][..., :2]) < 224
    assert may.meta.params_hash == extraction_hash(ExtractConfig(require_audio=False))
    assert may.meta.versions["mediapipe"]
    assert {"librosa", "numpy", "av"} <= set(may.meta.versions)
    assert may.stats.has_audio and abs(may.stats.av_mismatch) < 0.05
    # she talks throughout; her audio is in sync (docs/signals.md: A/V offset)
    assert may.stats.speech_fraction > 0.7
    assert abs(may.stats.av_offset_frames) <= 3


@pytest.mark.realdata
def test_landmarks_are_those_of_the_crop_resized_to_crop_size(real_records, realdata):
    """The frame models see the native crop (about 400² here); the recorded points are where
    FaceMesh puts them on the crop resized to 512², as `frame0` shows it: the same within
    MediaPipe's own resampling noise (a pixel-centre slip of half a native pixel would read
    about 1 % of the inter-ocular distance)."""
    may = real_records["may"]
    x0, y0, x1, _ = may.meta.crop_box
    frames, times, _ = decode_video(str(realdata / "video" / "frontal_talking_may_25fps.mp4"))
    assert x1 - x0 < 512  # an upscaled crop: the mapping is exercised
    crops = np.stack([crop_and_resize(f, (x0, y0, x1 - x0), 512) for f in frames])
    landmarker = make_landmarker(LandmarksConfig())
    lm512 = landmarker.batch(crops)["lm68"]
    landmarker.close()
    expected = resample_track(times, lm512, len(may.arrays["lm3d"]))
    got = may.arrays["lm3d"]
    iod = np.linalg.norm(expected[:, 36:42, :2].mean(1) - expected[:, 42:48, :2].mean(1), axis=1)
    nme = np.linalg.norm(got[..., :2] - expected[..., :2], axis=-1).mean(1) / iod
    print(f"native vs 512² crop: NME median {np.median(nme):.2%}, max {nme.max():.2%}")
    assert np.median(nme) < 0.005 and nme.max() < 0.02


@pytest.mark.realdata
def test_faces_found_in_real_talking_videos(real_records):
    for name, rec in real_records.items():
        assert rec.stats.frames_no_face == 0, name
        assert rec.arrays["face"].all()
        lm_norm = rec.arrays["lm_norm"]
        np.testing.assert_allclose(
            np.linalg.norm(lm_norm[:, 0] - lm_norm[:, 16], axis=-1), 2.0, rtol=1e-4
        )
        assert "cut" not in filter_clip(rec.stats, FilterConfig())  # no cuts in these clips
        assert rec.stats.hand_frames == 0


@pytest.mark.realdata
def test_strong_yaw_clip_exceeds_45_degrees(real_records):
    rec = real_records["yaw"]
    yaw = rec.arrays["pose"][:, 0]
    print(f"strong-yaw clip: max |yaw| {np.nanmax(np.abs(yaw)):.1f} deg")
    assert rec.stats.max_abs_yaw > 45.0
    assert not rec.stats.has_audio and "mfcc" not in rec.arrays
    frontal = real_records["may"].arrays["pose"][:, 0]
    assert np.nanmax(np.abs(frontal)) < 15.0


@pytest.mark.realdata
@pytest.mark.xfail(
    strict=True,
    reason="52° target not met: the clip (about 57° by its source) peaks near 47°; FaceMesh's "
    "pose response differs from face to face (see docs/record.md, Head pose)",
)
def test_strong_yaw_clip_reaches_52_degrees(real_records):
    assert real_records["yaw"].stats.max_abs_yaw >= 52.0


@pytest.mark.realdata
def test_mirrored_video_gives_mirrored_pose(real_records, mirrored_turned):
    pose, mirrored = real_records["turned"].arrays["pose"], mirrored_turned.arrays["pose"]
    assert pose.shape == mirrored.shape
    yaw_err = np.abs(mirrored[:, 0] + pose[:, 0])
    pitch_err = np.abs(mirrored[:, 1] - pose[:, 1])
    roll_err = np.abs(mirrored[:, 2] + pose[:, 2])
    print(
        f"mirror: median |Δ| yaw {np.median(yaw_err):.2f} pitch {np.median(pitch_err):.2f} "
        f"roll {np.median(roll_err):.2f} deg"
    )
    assert np.nanmedian(np.abs(pose[:, 0])) > 10  # the clip is really turned
    assert np.median(yaw_err) < 2.0 and np.median(pitch_err) < 2.0 and np.median(roll_err) < 2.0
    assert np.sign(np.median(mirrored[:, 0])) == -np.sign(np.median(pose[:, 0]))


@pytest.mark.realdata
def test_broken_inputs_give_reasons(realdata, extractor, tmp_path):
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n")
    cases = {
        zero: "empty_file",
        text: "unreadable",
        tmp_path / "missing.mp4": "missing_file",
    }
    for path, reason in cases.items():
        rec = extractor(_clip(path, "ravdess"))
        assert rec.status == "error" and rec.reason.startswith(reason + ":"), rec.reason
        assert rec.arrays == {}
    strict = ExtractConfig()  # audio required
    no_audio = extract_clip(
        _clip(realdata / "video" / "strong_yaw_noaudio_30fps.mp4", "ravdess"), strict
    )
    assert no_audio.status == "error" and no_audio.reason.startswith("no_audio:")


@pytest.mark.realdata
def test_failure_and_success_records_carry_the_same_meta_fields(real_records, extractor, tmp_path):
    failed = extractor(_clip(tmp_path / "missing.mp4", "mead", emotion="sad", intensity=1.0))
    assert not failed.ok
    ok = real_records["may"]
    assert set(failed.meta.to_dict()) == set(ok.meta.to_dict())
    assert (failed.meta.emotion, failed.meta.emotion_source) == ("sad", "manifest")
    assert failed.meta.versions == ok.meta.versions and failed.meta.crop_box is None


@pytest.mark.realdata
def test_truncated_file_keeps_what_decoded(realdata, extractor, tmp_path):
    src = str(realdata / "video" / "voxceleb2_style_224_frontal.mp4")
    frames, _, _ = decode_video(src)
    full = tmp_path / "short.mp4"
    write_video(str(full), frames[:50], 25.0, decode_audio(src)[: 2 * 16000])
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.7)])
    rec = extractor(_clip(cut, "voxceleb2"))
    assert rec.ok, rec.reason
    assert rec.stats.truncated and 0 < rec.stats.decoded_frames < 50
    assert rec.stats.n_frames == timeline_length(rec.stats.duration)
    assert rec.arrays["lm3d"].shape[0] == rec.stats.n_frames
    assert filter_clip(rec.stats, FilterConfig())[0] == "truncated"


def test_extractor_pickles_before_and_after_use(tmp_path):
    ex = ClipExtractor(ExtractConfig())
    clone = pickle.loads(pickle.dumps(ex))
    assert clone.config == ex.config
    rec = clone(_clip(tmp_path / "nothing.mp4", "mead"))
    assert rec.reason.startswith("missing_file:")
    clone.close()


def test_the_extraction_hash_covers_the_parameters_and_the_record_version(monkeypatch):
    """Records and commit markers carry it: a new RECORD_VERSION (extraction code that computes
    something else) makes every unit stale, as changed parameters do."""
    from space_data import extract

    base = extraction_hash(ExtractConfig())
    assert extraction_hash(ExtractConfig()) == base
    assert extraction_hash(ExtractConfig(crop_size=256)) != base
    monkeypatch.setattr(extract, "RECORD_VERSION", extract.RECORD_VERSION + 1)
    assert extraction_hash(ExtractConfig()) != base


def test_config_validation():
    with pytest.raises(ValueError, match="hands_every"):
        ExtractConfig(hands_every=0)
    with pytest.raises(ValueError, match="batch_size"):
        ExtractConfig(batch_size=0)
    with pytest.raises(ValueError, match="hands_model_complexity"):
        ExtractConfig(hands_model_complexity=2)
    with pytest.raises(ValueError, match="hands_idle_every"):
        ExtractConfig(hands_every=10, hands_idle_every=5)


# --- sample corpus: pose against the renderer's ground truth -------------------------------


@pytest.fixture(scope="module")
def sample_records(sample_corpus, extractor):
    """(clip, record, truth (N_native, 6)) for the sample corpus clips designed to be kept or
    rotated (the others test filters, not pose)."""
    from space_data.datasets import CORPORA

    truth_meta = json.loads((sample_corpus / "truth.json").read_text())
    out = []
    for dataset, corpus in CORPORA.items():
        for clip in corpus.scan(str(sample_corpus / dataset)):
            meta = truth_meta.get(clip.clip_id)
            if clip.reason is None and meta and meta["outcome"] in ("keep", "rotation"):
                truth = np.load(sample_corpus / "truth" / f"{clip.clip_id}.npy")
                out.append((clip, extractor(clip), truth))
    return out


@pytest.fixture(scope="module")
def pose_errors(sample_records) -> np.ndarray:
    """(F, 3) |estimated − true| yaw, pitch, roll (degrees) over the frames with a face whose
    true angles all lie within ±45°; printed with -s."""
    errors = []
    for clip, rec, truth in sample_records:
        assert rec.ok, (clip.clip_id, rec.reason)
        native_times = np.arange(len(truth)) / rec.stats.native_fps
        want = resample_track(native_times, truth[:, :3], rec.stats.n_frames, angles=True)
        got = rec.arrays["pose"][:, :3]
        inside = (np.abs(want) <= 45.0).all(1) & rec.arrays["face"].astype(bool)
        errors.append(np.abs((got - want + 180.0) % 360.0 - 180.0)[inside])
    err = np.concatenate(errors)
    print(
        f"\nsample corpus pose error over {len(err)} frames of {len(sample_records)} clips "
        f"(|angles| <= 45): median yaw/pitch/roll {np.median(err, 0).round(2)}, "
        f"max {err.max(0).round(2)} deg"
    )
    return err


def test_batches_give_the_frame_by_frame_records(sample_corpus, extractor):
    """Frame models fed one frame at a time or in batches (boundaries inside face-less stretches
    and across the cut) give the same record: FaceMesh's tracking state crosses batches."""
    from space_data.datasets import CORPORA

    truth = json.loads((sample_corpus / "truth.json").read_text())
    clips = [
        c
        for dataset in ("mead", "voxceleb2")
        for c in CORPORA[dataset].scan(str(sample_corpus / dataset))
        if truth.get(c.clip_id, {}).get("outcome") in ("no_face", "cut")
    ]
    assert len(clips) == 2
    one_by_one = ClipExtractor(ExtractConfig(require_audio=False, batch_size=1))
    try:
        for clip in clips:
            batched, single = extractor(clip), one_by_one(clip)
            assert batched.ok and single.ok, (batched.reason, single.reason)
            if truth[clip.clip_id]["outcome"] == "no_face":  # its face-less stretch is there
                assert not single.arrays["face"].all()
            assert set(batched.arrays) == set(single.arrays)
            for name, array in batched.arrays.items():
                np.testing.assert_array_equal(array, single.arrays[name], err_msg=name)
    finally:
        one_by_one.close()


def test_each_media_file_is_opened_once_per_clip(sample_corpus, extractor, monkeypatch):
    """The probe, the audio and every decoding pass (also the second pass of a clip too big to
    buffer) read one open container where it seeks back (MP4); an FLV refuses a seek before its
    first packet and is opened afresh for each read after the first; a separate audio file
    (MEAD, CREMA-D) is opened once."""
    import av

    from space_data.datasets import CORPORA

    opens: list[str] = []
    real_open = av.open

    def counting_open(file, *args, **kwargs):
        opens.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    clips = [
        next(iter(CORPORA[d].scan(str(sample_corpus / d)))) for d in ("mead", "cremad", "hdtf")
    ]
    assert clips[0].audio_path and clips[1].audio_path and not clips[2].audio_path
    unbuffered = ClipExtractor(ExtractConfig(require_audio=False, buffer_mb=0))
    records: dict[str, list] = {}
    try:
        for run in (extractor, unbuffered):
            for clip in clips:
                opens.clear()
                rec = run(clip)
                assert rec.ok, rec.reason
                files = [clip.path] + ([clip.audio_path] if clip.audio_path else [])
                assert set(opens) == set(files), (clip.clip_id, opens)
                # FLV: probe, (audio in its .wav), one or two decoding passes
                flv_reads = 2 if run is extractor else 3
                expected = flv_reads if clip.path.endswith(".flv") else 1
                assert opens.count(clip.path) == expected, (clip.clip_id, opens)
                if clip.audio_path:
                    assert opens.count(clip.audio_path) == 1, opens
                records.setdefault(clip.clip_id, []).append(rec)
    finally:
        unbuffered.close()
    # frames kept in the decoder's format and decoded again give the same records
    for buffered, decoded_twice in records.values():
        assert buffered.frame0 == decoded_twice.frame0
        assert buffered.stats == decoded_twice.stats
        for name, array in buffered.arrays.items():
            np.testing.assert_array_equal(array, decoded_twice.arrays[name], err_msg=name)


def test_a_clip_is_extracted_on_one_core(sample_corpus, extractor, monkeypatch):
    """numpy's BLAS, OpenCV and torch run one thread each inside the extractor (a clip is one
    core's work), and the process's own settings are back afterwards."""
    import cv2
    import torch
    from threadpoolctl import threadpool_info

    from space_data import extract
    from space_data.datasets import CORPORA

    def threads() -> tuple:
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        return blas, cv2.getNumThreads(), torch.get_num_threads()

    seen: list[tuple] = []
    real_mfcc = extract.audio_features.mfcc_record

    def recording_mfcc(*args, **kwargs):
        seen.append(threads())
        return real_mfcc(*args, **kwargs)

    monkeypatch.setattr(extract.audio_features, "mfcc_record", recording_mfcc)
    original = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(2)  # the process's own settings, more than one thread each
    torch.set_num_threads(2)
    before = threads()
    clip = next(iter(CORPORA["hdtf"].scan(str(sample_corpus / "hdtf"))))
    try:
        assert extractor(clip).ok
        assert before[0], "threadpoolctl found no BLAS: the check below would prove nothing"
        assert seen and seen[0][0] == [1] * len(before[0]) and seen[0][1:] == (1, 1), seen
        assert threads() == before
    finally:
        cv2.setNumThreads(original[0])
        torch.set_num_threads(original[1])


def test_sample_corpus_pose_error_median(pose_errors):
    assert np.median(pose_errors) < 2.0
    assert (np.median(pose_errors, axis=0) < 2.0).all()
    # regression bound on the worst frame (the 6° target is the xfail test below)
    assert pose_errors.max() < 15.0


@pytest.mark.xfail(
    strict=True,
    reason="max error target 6° not met: FaceMesh's mesh deforms near |yaw| 45° and each "
    "identity's own frontal pitch differs from the canonical face's by up to ~4°",
)
def test_sample_corpus_pose_error_max_target(pose_errors):
    assert pose_errors.max() < 6.0


@pytest.mark.realdata
def test_a_bad_keypoint_checkpoint_stops_the_run_instead_of_failing_each_clip(realdata, tmp_path):
    not_a_checkpoint = tmp_path / "vox-256.pth.tar"
    not_a_checkpoint.write_text("not a torch file\n")
    config = ExtractConfig(
        require_audio=False, keypoints=KeypointsConfig(checkpoint=str(not_a_checkpoint))
    )
    clip = _clip(realdata / "video" / "strong_yaw_noaudio_30fps.mp4", "ravdess")
    with pytest.raises(SetupError, match="vox-256.pth.tar is not a readable torch checkpoint"):
        extract_clip(clip, config)
