"""ClipStats from made tracks (space_data.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data

from space_data.stats import colour_histogram, compute_stats, histogram_jumps, landmark_jumps


def tracks(n: int = 10):
    lm = np.zeros((n, 68, 3), np.float32)
    lm[..., 0] = np.arange(68)
    scale = np.full(n, 50.0, np.float32)
    pose = np.zeros((n, 6), np.float32)
    return lm, scale, pose


def test_jump_is_mean_displacement_over_face_size_and_bridges_gaps():
    lm, scale, _ = tracks()
    lm[6:, :, 0] += 20.0  # a cut between frames 5 and 6
    lm[5:7] = np.nan  # ... during which the face is lost for two frames
    jumps = landmark_jumps(lm, scale)
    assert len(jumps) == 7  # 8 face frames
    assert jumps.max() == pytest.approx(20.0 / 50.0)
    assert np.count_nonzero(jumps) == 1


def test_compute_stats():
    lm, scale, pose = tracks()
    pose[3, :3] = (-50.0, 10.0, 5.0)
    scale[4] = 60.0
    face = np.ones(10, np.uint8)
    face[9] = 0
    lm[9] = np.nan
    pose[9] = np.nan
    scale[9] = np.nan
    hands = np.zeros(10, np.uint8)
    hands[2:4] = 2  # a hand at the face
    hands[6] = 1  # a hand away from it: not counted
    native = lm[:8].copy()
    native[5:, :, 1] += 10.0  # a 0.2-face-size jump between native frames 4 and 5
    grey = np.full((8, 64), 1 / 64, np.float32)
    grey[6:] = np.eye(64)[0]  # the picture turns one colour at native frame 6
    stats = compute_stats(face=face, pose=pose, scale=scale, hands=hands, hand_span=0.1,
                          native_lm68=native, native_scale=np.full(8, 50.0), histograms=grey,
                          duration=1 / 3, native_fps=25.0, decoded_frames=8, truncated=True,
                          stated_duration=0.5, audio_samples=6400)  # fmt: skip
    assert stats.n_frames == 10 and stats.frames_no_face == 1 and stats.hand_frames == 2
    assert (stats.max_abs_yaw, stats.max_abs_pitch, stats.max_abs_roll) == (50.0, 10.0, 5.0)
    assert (stats.scale_min, stats.scale_max, stats.scale_median) == (50.0, 60.0, 50.0)
    assert stats.has_audio and stats.audio_duration == pytest.approx(0.4)
    assert stats.av_mismatch == pytest.approx(0.4 - 1 / 3)
    assert stats.truncated and stats.decoded_frames == 8 and stats.stated_duration == 0.5
    assert stats.hand_span == 0.1
    # the cut cues come from the native frames, not from the 30 fps tracks
    assert stats.max_landmark_jump == pytest.approx(0.2)
    assert stats.max_histogram_jump == pytest.approx(63 / 64)
    silent = compute_stats(face=face * 0, pose=pose * np.nan, scale=scale * np.nan,
                           hands=hands, hand_span=0.0, native_lm68=native * np.nan,
                           native_scale=np.full(8, 50.0), histograms=grey[:1], duration=1.0,
                           native_fps=30.0, decoded_frames=30, truncated=False,
                           stated_duration=1.0, audio_samples=None)  # fmt: skip
    assert math.isnan(silent.max_abs_yaw) and math.isnan(silent.max_landmark_jump)
    assert math.isnan(silent.max_histogram_jump)  # one frame: nothing to compare
    assert not silent.has_audio and silent.av_mismatch == 0.0


def test_colour_histogram_sees_colours_not_positions():
    picture = skimage.data.astronaut()
    h = colour_histogram(picture)
    assert h.shape == (128,) and h.sum() == pytest.approx(1.0)
    # the same picture moved (a head moving) vs other colours (another shot)
    moved = np.roll(picture, (13, 29), axis=(0, 1))
    other = np.zeros_like(picture)
    other[..., 2] = 200  # all blue
    jumps = histogram_jumps(np.stack([h, colour_histogram(moved), colour_histogram(other)]))
    assert jumps[0] < 0.1 and jumps[1] > 0.9


def test_the_hue_of_near_grey_pixels_is_not_a_colour_change():
    # a grey picture whose faint tint swings from red to blue (a codec's keyframe pop on a
    # low-saturation face) keeps its histogram; a saturated picture changing hue does not
    grey = np.full((64, 64, 3), 120, np.uint8)
    reddish, bluish = grey.copy(), grey.copy()
    reddish[..., 0] += 6
    bluish[..., 2] += 6
    assert histogram_jumps(np.stack([colour_histogram(reddish), colour_histogram(bluish)])) == 0
    red, blue = np.zeros_like(grey), np.zeros_like(grey)
    red[..., 0], blue[..., 2] = 200, 200
    assert histogram_jumps(np.stack([colour_histogram(red), colour_histogram(blue)])) == 1
