"""The SPACE filter rules on hand-made statistics, and the per-manifest-clip decisions."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from space_data.config import ConfigError, from_mapping
from space_data.filters import (
    RULE_REASONS,
    AvOffsetConfig,
    FilterConfig,
    SyncThresholds,
    filter_clip,
    filter_clips,
)
from space_data.record import ClipStats

CONFIG = FilterConfig()


def clean_stats(**changes) -> ClipStats:
    """Statistics of a clip every default rule keeps."""
    base = ClipStats(
        n_frames=90, duration=3.0, native_fps=30.0, decoded_frames=90, frames_no_face=0,
        max_abs_yaw=12.0, max_abs_pitch=8.0, max_abs_roll=4.0,
        scale_min=95.0, scale_max=105.0, scale_median=100.0, max_landmark_jump=0.03,
        max_histogram_jump=0.04,
        hand_frames=0, has_audio=True, audio_duration=3.0, av_mismatch=0.0,
        speech_fraction=0.8, av_offset_frames=1.0, av_offset_confidence=0.9,
        av_sync_backend="offline",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_clean_clip_is_kept():
    assert filter_clip(clean_stats(), CONFIG) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"frames_no_face": CONFIG.max_no_face_frames + 1}, "no_face"),
        ({"max_landmark_jump": CONFIG.max_jump * 1.5}, "cut"),
        ({"max_histogram_jump": CONFIG.max_histogram_jump * 1.5}, "cut"),
        ({"max_abs_yaw": 46.0}, "rotation"),
        ({"max_abs_pitch": 50.0}, "rotation"),
        ({"max_abs_roll": 45.5}, "rotation"),
        ({"scale_min": 60.0, "scale_max": 100.0, "scale_median": 80.0}, "zoom"),
        ({"hand_frames": 15, "hand_span": 0.4}, "hands"),
        ({"duration": 0.5, "n_frames": 15}, "too_short"),
        ({"audio_duration": 2.0, "av_mismatch": -1.0}, "av_mismatch"),
        ({"truncated": True, "decoded_frames": 60}, "truncated"),
        ({"speech_fraction": 0.1}, "no_speech"),
        ({"av_offset_frames": -8}, "av_offset"),
    ],
)
def test_each_rule_names_its_reason(changes, reason):
    assert filter_clip(clean_stats(**changes), CONFIG) == [reason]


def test_rotation_limit_is_inclusive_and_nan_is_not_a_rotation():
    assert filter_clip(clean_stats(max_abs_yaw=45.0), CONFIG) == []
    # no face anywhere: angles are NaN; only no_face reports it
    nothing = clean_stats(frames_no_face=90, max_abs_yaw=math.nan, max_abs_pitch=math.nan,
                          max_abs_roll=math.nan, scale_min=math.nan, scale_max=math.nan,
                          scale_median=math.nan, max_landmark_jump=math.nan)  # fmt: skip
    assert filter_clip(nothing, CONFIG) == ["no_face"]


def test_all_reasons_in_rule_order():
    stats = clean_stats(
        hand_frames=6, hand_span=0.5, max_abs_yaw=60.0, frames_no_face=9, duration=0.2
    )
    assert filter_clip(stats, CONFIG) == ["rotation", "hands", "no_face", "too_short"]
    assert RULE_REASONS == (
        "truncated", "rotation", "hands", "no_face", "cut", "zoom", "too_short", "av_mismatch",
        "no_speech", "av_offset",
    )  # fmt: skip
    # half a file whose audio outlasts it: the damage is the reason, the mismatch its symptom
    damaged = clean_stats(truncated=True, duration=1.5, av_mismatch=1.5)
    assert filter_clip(damaged, CONFIG) == ["truncated", "av_mismatch"]
    assert filter_clip(damaged, FilterConfig(drop_truncated=False)) == ["av_mismatch"]


def test_speech_and_offset_rules_need_audio_and_confidence():
    # no audio: speech is not judged here (extract.require_audio decides), no sync backend ran
    silent_video = clean_stats(has_audio=False, speech_fraction=math.nan,
                               av_offset_frames=math.nan, av_offset_confidence=0.0,
                               av_sync_backend="")  # fmt: skip
    assert filter_clip(silent_video, CONFIG) == []
    # unmeasured (NaN, confidence 0, a reason) never drops, for either backend
    for backend in ("offline", "syncnet"):
        unmeasured = clean_stats(av_offset_frames=math.nan, av_offset_confidence=0.0,
                                 av_sync_backend=backend, av_sync_reason="flat")  # fmt: skip
        assert filter_clip(unmeasured, CONFIG) == [], backend
    # offline: a large offset read with low confidence is not trusted; the limit is inclusive
    offline = CONFIG.av_offset.offline
    low = offline.min_confidence - 0.1
    assert filter_clip(clean_stats(av_offset_frames=12.0, av_offset_confidence=low), CONFIG) == []
    assert filter_clip(clean_stats(av_offset_frames=offline.max_offset_frames), CONFIG) == []
    assert filter_clip(clean_stats(av_offset_frames=-6.5), CONFIG) == ["av_offset"]
    disabled = FilterConfig(av_offset=AvOffsetConfig(offline=SyncThresholds(None, 0.7)))
    assert filter_clip(clean_stats(av_offset_frames=12.0), disabled) == []

    # syncnet (LatentSync's practice): |offset| <= 6 frames at 25 fps and confidence >= 3,
    # and a measured offset below that confidence drops too
    def syncnet(frames: float, confidence: float) -> list[str]:
        stats = clean_stats(av_offset_frames=frames, av_offset_confidence=confidence,
                            av_sync_backend="syncnet")  # fmt: skip
        return filter_clip(stats, CONFIG)

    assert syncnet(6 * 30 / 25, 5.0) == [] and syncnet(8.4, 5.0) == ["av_offset"]
    assert syncnet(0.0, 2.0) == ["av_offset"] and syncnet(0.0, 3.0) == []
    with pytest.raises(ConfigError, match="min_speech_fraction"):
        from_mapping(FilterConfig, {"min_speech_fraction": 1.5})
    with pytest.raises(ConfigError, match="av_offset.offline.max_offset_frames"):
        from_mapping(FilterConfig, {"av_offset": {"offline": {"max_offset_frames": -1}}})
    # a nested override keeps the backend's other defaults
    partial = from_mapping(FilterConfig, {"av_offset": {"syncnet": {"min_confidence": 2.0}}})
    assert partial.av_offset.syncnet == SyncThresholds(7.2, 2.0, True)
    assert partial.av_offset.offline == CONFIG.av_offset.offline


def test_tolerances_and_disabled_av_check():
    loose = FilterConfig(max_no_face_frames=6, max_av_mismatch=None)
    # hand samples at the face for 0.3 s: a moment (or MediaPipe's false hand), not a hand
    # that stays
    stats = clean_stats(frames_no_face=6, hand_frames=9, hand_span=0.3, av_mismatch=-2.5)
    assert filter_clip(stats, loose) == []
    assert filter_clip(stats, FilterConfig(min_hand_span=None, max_no_face_frames=6)) == [
        "av_mismatch"
    ]
    strict = FilterConfig(min_hand_span=0.0)
    assert filter_clip(stats, strict) == ["hands", "no_face", "av_mismatch"]
    # a clip without audio has no mismatch to judge
    assert (
        filter_clip(clean_stats(has_audio=False, av_mismatch=0.0, audio_duration=0.0), CONFIG) == []
    )


finite = st.floats(0.0, 200.0, allow_nan=False)


@given(
    stats=st.builds(
        ClipStats,
        duration=st.floats(0.0, 20.0),
        frames_no_face=st.integers(0, 10),
        max_abs_yaw=finite | st.just(math.nan),
        max_abs_pitch=finite,
        max_abs_roll=finite,
        scale_min=st.floats(1.0, 100.0),
        scale_max=st.floats(100.0, 300.0),
        scale_median=st.floats(50.0, 150.0),
        max_landmark_jump=st.floats(0.0, 2.0) | st.just(math.nan),
        max_histogram_jump=st.floats(0.0, 1.0) | st.just(math.nan),
        n_frames=st.integers(0, 200),
        hand_frames=st.integers(0, 200),
        hand_span=st.floats(0.0, 3.0),
        has_audio=st.booleans(),
        av_mismatch=st.floats(-3.0, 3.0),
    ),
    slack=st.floats(0.0, 10.0),
    extra=st.integers(0, 5),
)
def test_loosening_thresholds_never_drops_more(stats, slack, extra):
    strict = FilterConfig()
    loose = FilterConfig(
        max_no_face_frames=strict.max_no_face_frames + extra,
        max_jump=strict.max_jump + slack,
        max_histogram_jump=strict.max_histogram_jump + slack,
        max_rotation_deg=min(180.0, strict.max_rotation_deg + 10 * slack),
        max_zoom=strict.max_zoom + slack,
        min_hand_span=strict.min_hand_span + slack,
        min_duration=max(0.0, strict.min_duration - slack),
        max_av_mismatch=strict.max_av_mismatch + slack,
    )
    assert set(filter_clip(stats, loose)) <= set(filter_clip(stats, strict))


@pytest.mark.parametrize(
    "bad",
    [{"max_rotation_deg": 0}, {"max_jump": -1.0}, {"max_histogram_jump": 0.0}, {"max_zoom": 0.0},
     {"min_hand_span": -0.1}, {"min_duration": -0.1}, {"max_av_mismatch": -1.0},
     {"max_rotaton_deg": 30}],
)  # fmt: skip
def test_bad_config_is_refused(bad):
    with pytest.raises(ConfigError):
        from_mapping(FilterConfig, bad, "filter")


def test_filter_clips_carries_index_and_extraction_reasons():
    manifest = pd.DataFrame(
        {
            "clip_id": ["a", "b", "c", "d", "e"],
            "dataset": ["mead"] * 5,
            "path": [f"/x/{c}.mp4" for c in "abcde"],
            "split": ["train", "val", None, "test", "train"],
            "reason": [None, None, "excluded_view", None, None],
        }
    )
    ok = clean_stats().to_dict()
    rotated = clean_stats(max_abs_yaw=70.0, hand_frames=90, hand_span=2.9).to_dict()
    clips = pd.DataFrame(
        [
            {"clip_id": "a", "status": "ok", "reason": None, **ok},
            {"clip_id": "b", "status": "error", "reason": "unreadable: moov atom not found",
             **ClipStats().to_dict()},
            {"clip_id": "e", "status": "ok", "reason": None, **rotated},
        ]
    )  # fmt: skip
    keep = filter_clips(manifest, clips, CONFIG).set_index("clip_id")
    assert list(keep.index) == ["a", "b", "c", "d", "e"]
    assert keep["keep"].tolist() == [True, False, False, False, False]
    assert keep["reason"].fillna("-").tolist() == [
        "-", "error:unreadable", "index:excluded_view", "error:not_extracted", "rotation"
    ]  # fmt: skip
    assert keep.loc["b", "detail"] == "moov atom not found"
    assert list(keep.loc["e", "reasons"]) == ["rotation", "hands"]
    assert keep.loc["a", "path"] == "/x/a.mp4" and keep.loc["d", "split"] == "test"
