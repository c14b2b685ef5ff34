"""Audio features on the shared 30 fps timeline: MFCCs, seeded augmentations, FLAC bytes.

Alignment rule: MFCC frame k is centred at sample round(k · 16000 / 30) of the 16 kHz mono
audio, i.e. at t = k / 30 s, the same instant as landmark frame k. Framing is done here by
index, not with librosa's integer hop (a hop of 533 samples drifts a whole video frame after
~53 s). Each frame is a periodic-Hann window of `n_fft` samples; samples before 0 and after
the end of the audio are zeros, so there are always exactly T frames.

Features: power spectrum → Slaney mel filterbank (librosa.filters.mel) → 10·log10 with a fixed
floor of −100 dB (no clip-relative `top_db`, so a frame depends only on its own window) →
orthonormal DCT-II, first `n_mfcc` coefficients. This equals `librosa.feature.mfcc` on
`librosa.power_to_db(mel, top_db=None)` at the same frame centres.

Augmentation (rows 1..A of the record): audiomentations PitchShift, SevenBandParametricEQ and
Gain, all applied to every variant, their parameters drawn from RNGs seeded by
sha256(clip_id, variant index), so a rerun gives identical bytes. The pitch shifter is
audiomentations' default (signalsmith stretch): it keeps the timing to the sample (the phase
vocoder alternative delays by ~40 samples), fading only the first and last ~20 ms.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import audiomentations
import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile

from space_data.record import FPS, SAMPLE_RATE


@dataclass
class AudioConfig:
    """MFCC and augmentation settings (`extract.audio` in params.yaml)."""

    n_mfcc: int = 40
    """Cepstral coefficients per frame."""
    n_fft: int = 1024
    """Analysis window and FFT length in samples at 16 kHz (64 ms)."""
    n_mels: int = 128
    """Mel bands between 0 Hz and 8 kHz before the DCT."""
    augmentations: int = 2
    """A: augmented MFCC variants per clip, stored as rows 1..A after the clean row 0."""
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    """Pitch-shift range in semitones (uniform)."""
    eq_gain_db: tuple[float, float] = (-6.0, 6.0)
    """Per-band gain range of the seven-band parametric EQ in dB (uniform, each band)."""
    gain_db: tuple[float, float] = (-6.0, 6.0)
    """Overall loudness change in dB (uniform)."""
    store_flac: bool = False
    """Also keep the 16 kHz mono audio as FLAC in the record (training-time augmentation)."""

    def __post_init__(self) -> None:
        if self.n_mfcc < 1 or self.n_mels < self.n_mfcc:
            raise ValueError(f"need 1 <= n_mfcc <= n_mels, got {self.n_mfcc}, {self.n_mels}")
        if self.n_fft < 64 or self.n_fft % 2:
            raise ValueError(f"n_fft must be an even number >= 64, not {self.n_fft}")
        if self.augmentations < 0:
            raise ValueError(f"augmentations must be >= 0, not {self.augmentations}")
        # YAML gives lists; keep tuples so configs compare and hash the same either way
        self.pitch_semitones = _range("pitch_semitones", self.pitch_semitones, 24.0)
        self.eq_gain_db = _range("eq_gain_db", self.eq_gain_db, 24.0)
        self.gain_db = _range("gain_db", self.gain_db, 40.0)


def _range(name: str, value: tuple[float, float], limit: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not -limit <= lo <= hi <= limit:
        raise ValueError(f"{name} must be [low, high] with -{limit} <= low <= high <= {limit}")
    return lo, hi


def frame_centres(n_frames: int) -> np.ndarray:
    """(T,) int64 sample index of each frame centre: round(k · 16000 / 30)."""
    # floor(k·1600/3 + 1/2) in integers: exact for any clip length (k·1600/3 never ends in .5)
    k = np.arange(n_frames, dtype=np.int64)
    return (2 * k * SAMPLE_RATE + FPS) // (2 * FPS)


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """`audio` cut to `n_samples` or padded with zeros at the end; (n_samples,) float32."""
    audio = _mono(audio)
    if len(audio) >= n_samples:
        return audio[:n_samples].copy()
    return np.pad(audio, (0, n_samples - len(audio)))


def timeline_samples(n_frames: int) -> int:
    """Samples of 16 kHz audio that cover T frames of the 30 fps timeline: round(T · 16000 / 30)."""
    return round(n_frames * SAMPLE_RATE / FPS)


def mfcc_track(audio: np.ndarray, n_frames: int, config: AudioConfig) -> np.ndarray:
    """(T, n_mfcc) float32 MFCCs of (S,) float32 16 kHz audio; frame k centred at k / 30 s.

    Audio shorter than the timeline reads as zeros past its end; longer audio is ignored past
    the last frame's window.
    """
    audio = _mono(audio)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, not {n_frames}")
    if n_frames == 0:
        return np.zeros((0, config.n_mfcc), dtype=np.float32)
    half = config.n_fft // 2
    centres = frame_centres(n_frames)
    end = int(centres[-1]) + half
    # padded[i] = audio[i - half]: the window of centre c is padded[c : c + n_fft]
    padded = np.zeros(half + max(end, len(audio)), dtype=np.float32)
    padded[half : half + len(audio)] = audio
    frames = padded[centres[:, None] + np.arange(config.n_fft)]  # (T, n_fft)
    power = np.abs(scipy.fft.rfft(frames * _window(config.n_fft), axis=1)) ** 2  # (T, n_fft/2+1)
    mel = power @ _mel_basis(config.n_fft, config.n_mels).T  # (T, n_mels)
    log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))  # floor −100 dB, as librosa's amin
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, : config.n_mfcc].astype(
        np.float32
    )


def mfcc_record(audio: np.ndarray, n_frames: int, clip_id: str, config: AudioConfig) -> np.ndarray:
    """(1 + A, T, n_mfcc) float32: row 0 from the clean audio, rows 1..A from seeded variants.

    The audio is first cut or zero-padded to the timeline (`fit_length`), so every row sees
    the same samples; variants keep the length and timing of the clean audio.
    """
    audio = fit_length(audio, timeline_samples(n_frames))
    rows = [mfcc_track(audio, n_frames, config)]
    for index in range(1, config.augmentations + 1):
        variant = augment_audio(audio, clip_id, index, config) if n_frames else audio
        rows.append(mfcc_track(variant, n_frames, config))
    return np.stack(rows)


def augment_audio(audio: np.ndarray, clip_id: str, index: int, config: AudioConfig) -> np.ndarray:
    """Variant `index` (1..A) of (S,) float32 audio: pitch shift, 7-band EQ, gain; same length.

    Deterministic in (clip_id, index, config) and the audiomentations version.
    """
    audio = _mono(audio)
    augmenter = audiomentations.Compose(
        [
            audiomentations.PitchShift(*config.pitch_semitones, p=1.0),
            audiomentations.SevenBandParametricEQ(*config.eq_gain_db, p=1.0),
            audiomentations.Gain(*config.gain_db, p=1.0),
        ],
        p=1.0,
    )
    with _seeded_global_rngs(variant_seed(clip_id, index)):
        out = augmenter(samples=audio, sample_rate=SAMPLE_RATE)
    return fit_length(out, len(audio))


def variant_seed(clip_id: str, index: int) -> int:
    """Stable 32-bit seed of augmentation variant `index` of a clip (sha256, not `hash`)."""
    digest = hashlib.sha256(f"{clip_id}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def flac_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """FLAC file bytes (16-bit PCM, mono) of (S,) float32 audio in [-1, 1] (clipped)."""
    buf = io.BytesIO()
    # libsndfile would wrap, not clip, out-of-range floats
    samples = np.clip(_mono(audio), -1.0, 1.0)
    soundfile.write(buf, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def read_flac(data: bytes) -> tuple[np.ndarray, int]:
    """(S,) float32 samples and the sample rate of FLAC bytes (e.g. a shard's `audio.flac`)."""
    samples, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return samples, sample_rate


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D mono samples, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    return audio.astype(np.float32, copy=False)


@contextmanager
def _seeded_global_rngs(seed: int) -> Iterator[None]:
    """audiomentations draws from the global `random` and `np.random`: seed both, then restore."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@functools.lru_cache(maxsize=4)
def _window(n_fft: int) -> np.ndarray:
    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _mel_basis(n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft/2+1) float32 Slaney mel filterbank, 0 Hz to 8 kHz."""
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
