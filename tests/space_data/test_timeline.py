"""Resampling onto the 30 fps timeline: exactness, NaN rules, angle unwrap, frame counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from space_data.timeline import SNAP, resample_flags, resample_track, timeline_length

NATIVE_FPS = st.sampled_from([25.0, 30.0, 30000 / 1001, 24.0, 50.0, 15.0])
DURATIONS = st.floats(min_value=0.2, max_value=20.0)


def _native_times(fps: float, duration: float) -> np.ndarray:
    return np.arange(int(np.ceil(duration * fps)) + 1) / fps


@settings(max_examples=60, deadline=None)
@given(fps=NATIVE_FPS, duration=DURATIONS, slope=st.floats(-50, 50), offset=st.floats(-90, 90))
def test_linear_ramp_is_exact(fps, duration, slope, offset):
    times = _native_times(fps, duration)
    n = timeline_length(duration)
    out = resample_track(times, offset + slope * times, n)
    t = np.arange(n) / 30
    inside = t <= times[-1]
    np.testing.assert_allclose(out[inside], (offset + slope * t)[inside], atol=1e-3, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(fps=NATIVE_FPS, duration=DURATIONS, value=st.floats(-1e3, 1e3))
def test_constant_stays_constant(fps, duration, value):
    times = _native_times(fps, duration)
    values = np.full((len(times), 68, 3), value)
    out = resample_track(times, values, timeline_length(duration))
    assert out.shape == (timeline_length(duration), 68, 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32(value))


@settings(max_examples=60, deadline=None)
@given(
    fps=NATIVE_FPS,
    duration=st.floats(0.5, 5.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_nan_blanks_exactly_the_targets_next_to_it(fps, duration, seed):
    rng = np.random.default_rng(seed)
    times = _native_times(fps, duration)
    values = rng.normal(size=len(times))
    values[rng.random(len(times)) < 0.2] = np.nan
    n = timeline_length(duration)
    out = resample_track(times, values, n)
    for k, t in enumerate(np.arange(n) / 30):
        on = np.flatnonzero(np.abs(times - t) <= SNAP)
        if len(on):  # on a sample: that sample
            expected_nan = np.isnan(values[on[0]])
        elif t > times[-1]:  # held end
            expected_nan = np.isnan(values[-1])
        else:  # between two samples: NaN if either is
            i = np.searchsorted(times, t) - 1
            expected_nan = np.isnan(values[i]) or np.isnan(values[i + 1])
        assert np.isnan(out[k]) == expected_nan, (k, t)


@pytest.mark.parametrize("duration", [0.0, 1 / 60, 0.05, 1.0, 4.3, 6.32, 10.01])
def test_timeline_length(duration):
    assert timeline_length(duration) == int(np.floor(duration * 30 + 0.5))
    assert timeline_length(4.3) == 129  # 4.3 × 30 = 128.99999999999997 in floats


def test_25_to_30_fps():
    times = np.arange(50) / 25  # 2 s at 25 fps
    out = resample_track(times, times * 10, timeline_length(2.0))
    assert out.shape == (60,)
    # t = 1/30 lies 5/6 of the way from sample 0 (0 s) to sample 1 (0.04 s)
    assert out[1] == pytest.approx(10 / 30)
    # the last native sample is at 1.96 s: later targets hold it
    np.testing.assert_allclose(out[59], 19.6)


def test_2997_to_30_fps_drifts_one_frame_in_1000():
    fps = 30000 / 1001
    times = np.arange(300) / fps  # ~10 s
    out = resample_track(times, np.arange(300, dtype=float), 300)
    # sample index at target k is k × 29.97 / 30: 0.999 native frames per target frame
    np.testing.assert_allclose(out[:299], np.arange(299) * fps / 30, atol=1e-4)


def test_native_30_fps_keeps_samples_despite_pts_rounding():
    # a 1/12800 s time base puts frame k at round(k × 426.67) / 12800, not exactly k / 30
    times = np.round(np.arange(30) * 12800 / 30) / 12800
    values = np.arange(30, dtype=float)
    values[10] = np.nan
    out = resample_track(times, values, 30)
    assert np.flatnonzero(np.isnan(out)).tolist() == [10]
    np.testing.assert_allclose(out[[9, 11]], [9, 11], atol=1e-2)


def test_angles_do_not_jump_through_zero():
    times = np.arange(4) / 15  # targets 1 and 3 fall halfway between samples
    yaw = np.array([170.0, 178.0, -176.0, -170.0])
    out = resample_track(times, yaw, 6, angles=True)
    # halfway between 178° and −176° (= 184°) is 181° = −179°, not 1°
    assert out[3] == pytest.approx(-179.0)
    assert out[1] == pytest.approx(174.0)
    plain = resample_track(times, yaw, 6)
    assert plain[3] == pytest.approx(1.0)


def test_angles_unwrap_across_nan_gap():
    times = np.arange(5) / 15
    roll = np.array([[170.0], [np.nan], [179.0], [-179.0], [np.nan]])
    out = resample_track(times, roll, 10, angles=True)
    assert np.isnan(out[1:4, 0]).all()
    # a NaN must not poison the unwrap of everything after it
    assert out[4, 0] == pytest.approx(179.0)
    assert out[5, 0] == pytest.approx(-180.0)


def test_variable_frame_rate_uses_real_times():
    times = np.array([0.0, 0.1, 0.5])  # a stall between 0.1 s and 0.5 s
    out = resample_track(times, np.array([0.0, 1.0, 5.0]), 16)
    np.testing.assert_allclose(out[:4], [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    np.testing.assert_allclose(out[6], 1 + 4 * (0.2 - 0.1) / 0.4, atol=1e-6)
    assert out[15] == pytest.approx(5.0)


def test_no_samples_gives_nan():
    assert np.isnan(resample_track(np.zeros(0), np.zeros((0, 3)), 7)).all()
    assert resample_flags(np.zeros(0), np.zeros(0), 4).tolist() == [0, 0, 0, 0]


def test_unsorted_times_rejected():
    with pytest.raises(ValueError, match="non-decreasing"):
        resample_track(np.array([0.0, 0.2, 0.1]), np.zeros(3), 5)


def test_flags_sample_and_hold():
    times = np.array([0.0, 0.2, 0.4])  # hands sampled every 0.2 s
    flags = np.array([0, 1, 0])
    out = resample_flags(times, flags, 15)
    assert out.dtype == np.uint8
    assert out.tolist() == [0] * 6 + [1] * 6 + [0] * 3


@settings(max_examples=40, deadline=None)
@given(fps=NATIVE_FPS, duration=DURATIONS, seed=st.integers(0, 2**31 - 1))
def test_flags_take_the_latest_sample(fps, duration, seed):
    times = _native_times(fps, duration)
    flags = np.random.default_rng(seed).integers(0, 2, len(times))
    n = timeline_length(duration)
    out = resample_flags(times, flags, n)
    for k, t in enumerate(np.arange(n) / 30):
        i = max(0, np.searchsorted(times, t + SNAP, side="right") - 1)
        assert out[k] == flags[i]
