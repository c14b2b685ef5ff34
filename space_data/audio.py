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

Augmentation (rows 1..A of the record) works on the clean power spectrum, computed once per
clip: a pitch transposition (the frequency axis warped, P'(k) = P(k / α), α = 2^(semitones/12),
pitch and formants together as signalsmith stretch without formant correction transposes them;
the VTLP augmentation of speech recognition), a seven-band parametric EQ (|H(f)|² of RBJ
cookbook biquads: a low shelf, five peaks, a high shelf) and a gain, all applied to every
variant, in that order. The parameters have the ranges and distributions of audiomentations'
PitchShift, SevenBandParametricEQ and Gain and come from
`np.random.default_rng(sha256(clip_id, variant index))`, so a rerun gives identical bytes and no
global RNG is touched. A frame's variant depends only on that frame's clean spectrum, so the
timing is exactly the clean row's. Against the same parameters applied to the audio
(signalsmith pitch shift, the same biquads, gain; scripts/augmentation_check.py) the MFCC
change (c1–c12) correlates 0.92–0.99 on real speech, for 1.4 instead of 31 ms of CPU per variant
of 10 s. The EQ and gain alone agree to ≥ 0.997 (filtering is a product of spectra up to the
window's edges); the rest is the pitch warp, which also scales each harmonic's peak width by α,
where a re-synthesised transposition keeps the window's width.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass

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
    store_flac: bool = True
    """Also keep the 16 kHz mono audio as FLAC in the record (training-time augmentation);
    `pack.include_audio` packs it, and needs it."""

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


def power_spectrum(audio: np.ndarray, n_frames: int, n_fft: int) -> np.ndarray:
    """(T, n_fft/2+1) float32 power spectrum |STFT|² of (S,) float32 16 kHz audio, frame k
    centred at k / 30 s (periodic-Hann window of n_fft samples).

    Audio shorter than the timeline reads as zeros past its end; longer audio is ignored past
    the last frame's window.
    """
    audio = _mono(audio)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, not {n_frames}")
    if n_frames == 0:
        return np.zeros((0, n_fft // 2 + 1), dtype=np.float32)
    half = n_fft // 2
    centres = frame_centres(n_frames)
    end = int(centres[-1]) + half
    # padded[i] = audio[i - half]: the window of centre c is padded[c : c + n_fft]
    padded = np.zeros(half + max(end, len(audio)), dtype=np.float32)
    padded[half : half + len(audio)] = audio
    frames = padded[centres[:, None] + np.arange(n_fft)]  # (T, n_fft)
    return np.abs(scipy.fft.rfft(frames * _window(n_fft), axis=1)) ** 2


def power_to_mfcc(power: np.ndarray, config: AudioConfig) -> np.ndarray:
    """(T, n_mfcc) float32 MFCCs of a (T, n_fft/2+1) power spectrum: Slaney mel, 10·log10 with
    a −100 dB floor, orthonormal DCT-II."""
    mel = power @ _mel_basis(config.n_fft, config.n_mels).T  # (T, n_mels)
    log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))  # floor −100 dB, as librosa's amin
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, : config.n_mfcc].astype(
        np.float32
    )


def mfcc_track(audio: np.ndarray, n_frames: int, config: AudioConfig) -> np.ndarray:
    """(T, n_mfcc) float32 MFCCs of (S,) float32 16 kHz audio; frame k centred at k / 30 s
    (see `power_spectrum` for audio shorter or longer than the timeline)."""
    return power_to_mfcc(power_spectrum(audio, n_frames, config.n_fft), config)


def mfcc_record(audio: np.ndarray, n_frames: int, clip_id: str, config: AudioConfig) -> np.ndarray:
    """(1 + A, T, n_mfcc) float32: row 0 from the clean audio, rows 1..A from seeded variants of
    its power spectrum (`draw_variant`, `augment_power`).

    The audio is first cut or zero-padded to the timeline (`fit_length`); the variants are
    computed frame by frame from the clean spectrum, so they keep its timing exactly.
    """
    audio = fit_length(audio, timeline_samples(n_frames))
    power = power_spectrum(audio, n_frames, config.n_fft)
    rows = [power_to_mfcc(power, config)]
    for index in range(1, config.augmentations + 1):
        variant = draw_variant(clip_id, index, config)
        rows.append(power_to_mfcc(augment_power(power, variant), config))
    return np.stack(rows)


@dataclass(frozen=True, slots=True)
class Variant:
    """The parameters of one augmented row (`draw_variant`)."""

    semitones: float
    """Transposition of pitch and formants together, semitones (positive: up)."""
    eq: tuple[tuple[float, float, float], ...]
    """(centre Hz, gain dB, Q) of each of the 7 `EQ_BANDS`, in their order."""
    gain_db: float
    """Overall level change, dB."""


EQ_BANDS = (
    ("low_shelf", 42.0, 95.0, 0.1, 0.999),
    ("peaking", 91.0, 204.0, 0.5, 5.0),
    ("peaking", 196.0, 441.0, 0.5, 5.0),
    ("peaking", 421.0, 948.0, 0.5, 5.0),
    ("peaking", 909.0, 2045.0, 0.5, 5.0),
    ("peaking", 1957.0, 4404.0, 0.5, 5.0),
    ("high_shelf", 4216.0, 9486.0, 0.1, 0.999),
)
"""The seven-band parametric EQ: (RBJ biquad kind, centre-frequency range Hz, Q range), the
ranges of audiomentations 0.43's SevenBandParametricEQ. A centre is drawn uniformly on the HTK
mel scale between its limits, a Q uniformly; a centre above 0.9999 × Nyquist is clamped there,
as audiomentations does (the high shelf then acts only next to Nyquist)."""


def draw_variant(clip_id: str, index: int, config: AudioConfig) -> Variant:
    """The parameters of variant `index` (1..A) of a clip, from
    `np.random.default_rng(variant_seed(clip_id, index))`: deterministic in (clip_id, index,
    config) and the numpy version; no global RNG is touched."""
    rng = np.random.default_rng(variant_seed(clip_id, index))
    semitones = float(rng.uniform(*config.pitch_semitones))
    eq = []
    for _, low_hz, high_hz, low_q, high_q in EQ_BANDS:
        centre = _mel_to_hz(rng.uniform(_hz_to_mel(low_hz), _hz_to_mel(high_hz)))
        eq.append(
            (
                float(centre),
                float(rng.uniform(*config.eq_gain_db)),
                float(rng.uniform(low_q, high_q)),
            )
        )
    return Variant(semitones, tuple(eq), float(rng.uniform(*config.gain_db)))


def augment_power(power: np.ndarray, variant: Variant) -> np.ndarray:
    """(T, K) float32 power spectrum of the variant of a (T, K = n_fft/2+1) power spectrum:
    transposed by `variant.semitones` (`pitch_warp`), then multiplied by the EQ's |H|² at each
    bin's frequency (`eq_power_response`) and by the gain's power ratio."""
    n_fft = 2 * (power.shape[1] - 1)
    response = eq_power_response(eq_sections(variant.eq), n_fft) * 10.0 ** (variant.gain_db / 10)
    return pitch_warp(power, 2.0 ** (variant.semitones / 12)) * response.astype(np.float32)


def pitch_warp(power: np.ndarray, alpha: float) -> np.ndarray:
    """(T, K) float32: P'(k) = P(k / alpha) for every frame of a (T, K) power spectrum, linear
    between bins, zero where k / alpha lies beyond Nyquist (bin K-1).

    This transposes pitch and formants together by the factor `alpha`, as a time-domain pitch
    shift without formant correction does (signalsmith stretch in audiomentations; VTLP in
    speech recognition). A tone's peak keeps its height and moves from bin k to alpha · k.
    """
    k = power.shape[1]
    source = np.arange(k) / alpha  # fractional source bin of each output bin
    left = np.minimum(np.floor(source).astype(np.intp), k - 2)
    right_weight = source - left  # 0..1 inside the spectrum; source = K-1 gives left K-2, 1
    inside = source <= k - 1
    w_left = np.where(inside, 1.0 - right_weight, 0.0).astype(np.float32)
    w_right = np.where(inside, right_weight, 0.0).astype(np.float32)
    return power[:, left] * w_left + power[:, left + 1] * w_right


def eq_sections(eq: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """(7, 6) float64 second-order sections [b0, b1, b2, 1, a1, a2] of the seven `EQ_BANDS` with
    (centre Hz, gain dB, Q) each, from the RBJ audio-EQ cookbook at 16 kHz (for
    scipy.signal.sosfilt / sosfreqz). A = 10^(dB/40), so a peak's gain at its centre, a low
    shelf's at 0 Hz and a high shelf's at Nyquist is the band's dB."""
    sections = []
    for (kind, *_), (centre, gain_db, q) in zip(EQ_BANDS, eq, strict=True):
        w0 = 2 * np.pi * min(centre, 0.9999 * SAMPLE_RATE / 2) / SAMPLE_RATE
        amp, cos, alpha = 10 ** (gain_db / 40), np.cos(w0), np.sin(w0) / (2 * q)
        if kind == "peaking":
            b = [1 + alpha * amp, -2 * cos, 1 - alpha * amp]
            a = [1 + alpha / amp, -2 * cos, 1 - alpha / amp]
        else:
            # the high shelf is the low shelf with cos(w0) and the odd coefficients negated
            s = 1.0 if kind == "low_shelf" else -1.0
            root = 2 * np.sqrt(amp) * alpha
            b = [
                amp * ((amp + 1) - s * (amp - 1) * cos + root),
                s * 2 * amp * ((amp - 1) - s * (amp + 1) * cos),
                amp * ((amp + 1) - s * (amp - 1) * cos - root),
            ]
            a = [
                (amp + 1) + s * (amp - 1) * cos + root,
                -s * 2 * ((amp - 1) + s * (amp + 1) * cos),
                (amp + 1) + s * (amp - 1) * cos - root,
            ]
        sections.append(np.array([*b, *a]) / a[0])
    return np.stack(sections)


def eq_power_response(sections: np.ndarray, n_fft: int) -> np.ndarray:
    """(n_fft/2+1,) float64 |H(f)|² of cascaded (N, 6) second-order sections at the rfft bin
    frequencies f = k · 16000 / n_fft."""
    z = np.exp(-2j * np.pi * np.arange(n_fft // 2 + 1) / n_fft)[:, None] ** np.arange(3)  # (K, 3)
    num, den = z @ sections[:, :3].T, z @ sections[:, 3:].T  # (K, N)
    return np.prod(np.abs(num) ** 2 / np.abs(den) ** 2, axis=1)


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


def _hz_to_mel(hz: float) -> float:
    """HTK mel scale (the one audiomentations draws EQ centres on)."""
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: float) -> float:
    return 700.0 * (10 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=4)
def _window(n_fft: int) -> np.ndarray:
    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _mel_basis(n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft/2+1) float32 Slaney mel filterbank, 0 Hz to 8 kHz."""
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
