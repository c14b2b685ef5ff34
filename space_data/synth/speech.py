"""Speech-like audio from the project's own code: a source-filter formant synthesizer.

A glottal pulse train (Rosenberg pulses, falling pitch contour with jitter) is shaped by three
formant resonators per vowel; syllables get a noise-burst consonant onset and an attack/release
envelope; words are separated by short pauses and phrases by longer ones. It is not
intelligible speech, but it has what the pipeline measures: voiced harmonics with a pitch
contour, formant structure, syllable-rate amplitude modulation and silences (so MFCCs vary and
the mouth opens and closes with the audio). 16 kHz mono float32.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from space_data.record import SAMPLE_RATE

# (F1, F2, F3) Hz of five vowels (adult averages), bandwidths (B1, B2, B3) Hz
VOWELS = {
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
}
BANDWIDTHS = (90, 110, 170)
JAW_LEAD_S = 4.4 / 30
"""Seconds by which the jaw leads the sound it makes (`mouth_envelope`): the raw peak lag of the
offline A/V estimator on real in-sync talking clips, 4.4 timeline frames at 30 fps
(docs/signals.md, `space_data.av_offset.MOUTH_LEAD`): real mouths open before the sound."""


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Two-pole resonator (Klatt) with unit gain at 0 Hz."""
    r = np.exp(-np.pi * bandwidth / sr)
    a1, a2 = -2 * r * np.cos(2 * np.pi * freq / sr), r * r
    return lfilter([1 + a1 + a2], [1, a1, a2], x)


def _glottal_source(f0: np.ndarray, sr: int) -> np.ndarray:
    """Differentiated Rosenberg pulse train following the pitch track f0 (Hz per sample)."""
    phase = np.cumsum(f0 / sr) % 1.0
    open_q = 0.6
    pulse = np.where(phase < open_q, np.sin(np.pi * phase / open_q) ** 2, 0.0)
    return np.diff(pulse, prepend=0.0)


def synthesize_speech(
    duration: float,
    rng: np.random.Generator,
    f0: float = 120.0,
    sung: bool = False,
    sr: int = SAMPLE_RATE,
) -> np.ndarray:
    """(round(duration·sr),) float32 in [-1, 1] at mean pitch f0 Hz.

    Spoken: syllables of 0.14–0.28 s (~4/s), pitch falling within each, pauses between words.
    Sung (`sung=True`): notes of 0.35–0.7 s on a major scale above f0, with vibrato.
    """
    n = int(round(duration * sr))
    out = np.zeros(n)
    lengths = (0.35, 0.7) if sung else (0.14, 0.28)
    t = rng.uniform(0.1, 0.3)  # leading silence, s
    while t < duration - 0.25:
        for _ in range(rng.integers(1, 4)):  # syllables of one word / notes of one phrase
            length = rng.uniform(*lengths)
            if t + length > duration - 0.05:
                break
            pitch = f0 * 2 ** (rng.choice([0, 2, 4, 5, 7, 9]) / 12) if sung else f0
            out += _syllable(n, int(t * sr), int(length * sr), rng, pitch, sung, sr)
            t += length + rng.uniform(0.02, 0.06)
        t += rng.uniform(0.12, 0.45) if rng.random() < 0.75 else rng.uniform(0.5, 0.8)
    peak = np.abs(out).max()
    return (0.7 * out / peak).astype(np.float32) if peak > 0 else out.astype(np.float32)


def _syllable(
    n: int, start: int, length: int, rng: np.random.Generator, f0: float, sung: bool, sr: int
) -> np.ndarray:
    """A consonant burst + vowel placed at `start` in a zero signal of n samples."""
    out = np.zeros(n)
    k = np.arange(length)
    if sung:  # held note with 5.5 Hz vibrato of ±2 %
        pitch = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * k / sr))
    else:  # pitch falls ~15 % over the syllable
        pitch = f0 * rng.uniform(0.9, 1.15) * (1 - 0.15 * k / length)
    pitch *= 1 + 0.01 * rng.standard_normal(length)  # jitter
    voice = _glottal_source(pitch, sr)
    formants = np.array(VOWELS[rng.choice(list(VOWELS))]) * rng.uniform(0.95, 1.1)
    for freq, bw in zip(formants, BANDWIDTHS, strict=True):
        voice = _resonator(voice, freq, bw, sr)
    attack, release = int(0.025 * sr), int(0.06 * sr)
    env = np.minimum(1.0, np.minimum(k / attack, (length - k) / release))
    seg = voice * np.clip(env, 0.0, 1.0)
    seg /= np.abs(seg).max() + 1e-9
    if rng.random() < 0.7:  # fricative / plosive onset: band-passed noise before the vowel
        burst = int(rng.uniform(0.03, 0.07) * sr)
        noise = _resonator(rng.standard_normal(burst), rng.uniform(2500, 5000), 1500, sr)
        noise *= np.hanning(burst) * 0.25 / (np.abs(noise).max() + 1e-9)
        start = max(0, start - burst)
        seg = np.concatenate([noise, seg])
    end = min(n, start + len(seg))
    out[start:end] = seg[: end - start]
    return out


def mouth_envelope(
    audio: np.ndarray, n_frames: int, fps: float, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """(n_frames,) float64 in [0, 1]: how far the jaw opens at each video frame.

    Frame k (at k / fps s) opens with the RMS loudness of the audio in the window of one frame
    either side of k / fps + `JAW_LEAD_S`, normalised by its 95th percentile (of the clip) and
    then averaged with both neighbouring frames. The window and the average are centred, so the
    jaw leads the sound by exactly `JAW_LEAD_S` (silence beyond the audio's end reads 0).
    """
    half = int(sr / fps)
    centres = np.round((np.arange(n_frames) / fps + JAW_LEAD_S) * sr).astype(int)
    after = max(0, centres[-1] + half - len(audio))
    padded = np.pad(audio.astype(np.float64) ** 2, (half, after))
    cum = np.concatenate([[0.0], np.cumsum(padded)])  # cum[c + 2 half] − cum[c]: audio[c ± half]
    rms = np.sqrt((cum[centres + 2 * half] - cum[centres]) / (2 * half))
    ref = np.percentile(rms, 95)
    env = np.clip(rms / ref, 0.0, 1.0) if ref > 0 else np.zeros(n_frames)
    return np.convolve(np.pad(env, 1, mode="edge"), np.ones(3) / 3, mode="valid")
