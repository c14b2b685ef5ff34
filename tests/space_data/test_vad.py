"""Silero VAD on the timeline (space_data.vad): real speech reads speech, silence, noise and
synthetic music do not, and the per-frame track lands where the speech is."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from space_data.filters import FilterConfig
from space_data.record import SAMPLE_RATE
from space_data.vad import SpeechDetector, speech_fraction


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector()


@pytest.fixture(scope="module")
def read_speech(realdata) -> np.ndarray:
    """16 s of read English (LibriSpeech), 16 kHz mono float32."""
    audio, sr = soundfile.read(realdata / "audio" / "librispeech_read_16k.wav", dtype="float32")
    assert sr == SAMPLE_RATE and audio.ndim == 1
    return audio


def _music(seconds: float) -> np.ndarray:
    """A melody of harmonic notes (no voice): eight half-second notes, five partials each."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    out = np.zeros_like(t)
    for i, f0 in enumerate([220, 247, 262, 294, 330, 349, 392, 440]):
        note = (t >= i * seconds / 8) & (t < (i + 1) * seconds / 8)
        for h in range(1, 6):
            out[note] += np.sin(2 * np.pi * f0 * h * t[note]) / h
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


def test_speech_reads_speech_and_the_rest_does_not(detector, read_speech) -> None:
    """Measured: read speech 0.93; silence, white noise, music 0.00 (threshold 0.2)."""
    limit = FilterConfig().min_speech_fraction
    speech = detector(read_speech[: 4 * SAMPLE_RATE], 120)
    assert speech.shape == (120,) and speech.dtype == np.float32
    assert speech_fraction(speech) > 0.7
    rng = np.random.default_rng(0)
    others = {
        "silence": np.zeros(4 * SAMPLE_RATE, np.float32),
        "white noise": (0.1 * rng.standard_normal(4 * SAMPLE_RATE)).astype(np.float32),
        "music": _music(4.0),
    }
    for name, audio in others.items():
        assert speech_fraction(detector(audio, 120)) < limit / 2, name


def test_track_follows_where_the_speech_is(detector, read_speech) -> None:
    # 2 s of silence, then 2 s of speech: frames 0..59 silent, 60..119 speech
    audio = np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), read_speech[: 2 * SAMPLE_RATE]])
    speech = detector(audio, 120)
    assert speech[:55].max() < 0.5
    assert (speech[65:] >= 0.5).mean() > 0.8
    # audio shorter than the timeline reads as silence past its end; no audio at all is 0
    assert detector(audio[: SAMPLE_RATE // 2], 30).shape == (30,)
    assert detector(np.zeros(0, np.float32), 10).tolist() == [0.0] * 10
