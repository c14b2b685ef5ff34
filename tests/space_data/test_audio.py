"""MFCC alignment, spectral-domain augmentation and FLAC bytes (space_data.audio)."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from space_data.audio import (
    EQ_BANDS,
    AudioConfig,
    augment_power,
    draw_variant,
    eq_power_response,
    eq_sections,
    fit_length,
    flac_bytes,
    frame_centres,
    mfcc_record,
    mfcc_track,
    pitch_warp,
    power_spectrum,
    power_to_mfcc,
    read_flac,
    timeline_samples,
)
from space_data.config import ConfigError, from_mapping

SR = 16_000
CONFIG = AudioConfig()


def clicks_audio(n_frames: int, click_frames: list[int], seed: int = 0) -> np.ndarray:
    """Faint noise with a 2 ms click centred on the time of each given 30 fps frame."""
    rng = np.random.default_rng(seed)
    audio = (1e-4 * rng.standard_normal(timeline_samples(n_frames))).astype(np.float32)
    for k in click_frames:
        centre = round(k * SR / 30)
        audio[max(0, centre - 16) : centre + 16] = 0.8
    return audio


def assert_clicks_peak(c0: np.ndarray, click_frames: list[int]) -> None:
    """The energy coefficient peaks within ±1 frame of every click; elsewhere it stays low."""
    near = np.zeros(len(c0), dtype=bool)
    for k in click_frames:
        lo, hi = max(0, k - 4), min(len(c0), k + 5)
        peak = lo + int(np.argmax(c0[lo:hi]))
        assert abs(peak - k) <= 1, f"click at frame {k} peaks at frame {peak}"
        near[max(0, k - 2) : k + 3] = True
    quiet = c0[~near]
    if quiet.size:
        loudest_click = min(c0[k] for k in click_frames)
        assert quiet.max() < loudest_click


# Up to 75 s: a hop of 533 samples would be a whole frame late after ~53 s.
@settings(max_examples=25, deadline=None)
@given(
    n_frames=st.integers(min_value=10, max_value=2250),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
)
def test_clicks_peak_in_their_frames(n_frames: int, fractions: list[float]) -> None:
    clicks = sorted({round(f * (n_frames - 1)) for f in fractions})
    clicks = [k for i, k in enumerate(clicks) if i == 0 or k - clicks[i - 1] >= 6]
    c0 = mfcc_track(clicks_audio(n_frames, clicks), n_frames, CONFIG)[:, 0]
    assert_clicks_peak(c0, clicks)


def test_augmented_rows_keep_click_timing() -> None:
    n_frames, clicks = 900, [3, 150, 451, 897]  # 30 s: pitch shift must not delay the audio
    record = mfcc_record(clicks_audio(n_frames, clicks), n_frames, "clip-clicks", CONFIG)
    for row in record:
        assert_clicks_peak(row[:, 0], clicks)


def test_frame_centres_are_exact_at_the_hour() -> None:
    k = np.array([0, 1, 2, 3, 30, 108_000])  # 108000 frames = 1 hour
    assert frame_centres(108_001)[k].tolist() == [0, 533, 1067, 1600, 16000, 57_600_000]


def test_matches_a_plain_stft_where_frame_centres_fall_on_a_whole_hop() -> None:
    """Every third frame centre is a multiple of 1600 samples: compare with a hop-1600 STFT
    (librosa's centred framing with zero padding), mel, dB and an explicit orthonormal DCT-II."""
    n_frames = 60
    audio = np.random.default_rng(1).standard_normal(timeline_samples(n_frames)).astype(np.float32)
    padded = np.pad(audio.astype(np.float64), 512)
    window = scipy.signal.windows.hann(1024, sym=False)
    frames = np.stack([padded[j * 1600 : j * 1600 + 1024] for j in range(20)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    log_mel = 10 * np.log10(np.maximum(power @ librosa.filters.mel(sr=SR, n_fft=1024).T, 1e-10))
    m, k = np.arange(128), np.arange(40)[:, None]
    dct = np.sqrt(2 / 128) * np.cos(np.pi * k * (2 * m + 1) / (2 * 128))
    dct[0] /= np.sqrt(2)
    expected = log_mel @ dct.T
    np.testing.assert_allclose(mfcc_track(audio, n_frames, CONFIG)[::3], expected, atol=2e-3)


@pytest.mark.parametrize("seconds", [0.5, 2.0, 3.7])  # shorter than, equal to, longer than T
def test_record_shape_for_any_audio_length(seconds: float) -> None:
    n_frames = 60
    audio = np.random.default_rng(2).uniform(-0.3, 0.3, round(seconds * SR)).astype(np.float32)
    record = mfcc_record(audio, n_frames, "clip-shape", CONFIG)
    assert record.shape == (1 + CONFIG.augmentations, n_frames, 40)
    assert record.dtype == np.float32 and np.isfinite(record).all()


def test_short_audio_reads_as_zeros_past_its_end() -> None:
    audio = np.random.default_rng(3).uniform(-0.3, 0.3, SR).astype(np.float32)  # 1 s of 2 s
    short = mfcc_track(audio, 60, CONFIG)
    padded = mfcc_track(fit_length(audio, timeline_samples(60)), 60, CONFIG)
    np.testing.assert_array_equal(short, padded)
    assert short[45:, 0].max() < short[:28, 0].min()  # silent frames after 1 s + half a window


def test_no_augmentations_and_empty_timeline() -> None:
    audio = np.zeros(SR, dtype=np.float32)
    assert mfcc_record(audio, 30, "c", AudioConfig(augmentations=0)).shape == (1, 30, 40)
    assert mfcc_record(audio, 0, "c", CONFIG).shape == (3, 0, 40)


def test_fit_length_pads_and_cuts() -> None:
    audio = np.arange(5, dtype=np.float32)
    assert fit_length(audio, 3).tolist() == [0, 1, 2]
    assert fit_length(audio, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]


def test_rejects_stereo_and_integer_audio() -> None:
    with pytest.raises(ValueError, match="mono"):
        mfcc_track(np.zeros((2, SR), np.float32), 30, CONFIG)
    with pytest.raises(ValueError, match="float"):
        mfcc_track(np.zeros(SR, np.int16), 30, CONFIG)


def test_augmentation_is_seeded_by_clip_id() -> None:
    audio = np.random.default_rng(4).uniform(-0.3, 0.3, 2 * SR).astype(np.float32)
    first = mfcc_record(audio, 60, "mead-M003-angry-001", CONFIG)
    again = mfcc_record(audio, 60, "mead-M003-angry-001", CONFIG)
    other = mfcc_record(audio, 60, "mead-M003-angry-002", CONFIG)
    assert first.tobytes() == again.tobytes()
    np.testing.assert_array_equal(first[0], other[0])  # the clean row does not depend on the id
    assert not np.allclose(first[1], other[1]) and not np.allclose(first[2], other[2])
    assert not np.allclose(first[1], first[2])  # variants of one clip differ too
    assert not np.allclose(first[0], first[1])


def test_augmentation_leaves_global_random_state_alone() -> None:
    audio = np.random.default_rng(5).uniform(-0.3, 0.3, SR).astype(np.float32)
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    mfcc_record(audio, 30, "clip", CONFIG)
    assert np.random.random() == expected


def test_draws_stay_in_the_configured_ranges() -> None:
    config = AudioConfig(pitch_semitones=(-1.0, 0.5), eq_gain_db=(-3.0, 2.0), gain_db=(1.0, 4.0))
    for index in range(1, 21):
        v = draw_variant("clip-ranges", index, config)
        assert -1.0 <= v.semitones <= 0.5 and 1.0 <= v.gain_db <= 4.0
        for (_, low_hz, high_hz, low_q, high_q), (centre, gain, q) in zip(EQ_BANDS, v.eq):
            assert low_hz <= centre <= high_hz and -3.0 <= gain <= 2.0 and low_q <= q <= high_q
    assert draw_variant("clip-ranges", 1, config) == draw_variant("clip-ranges", 1, config)


def test_gain_only_variant_shifts_c0_by_the_gain() -> None:
    """+6 dB on every mel band moves the orthonormal DCT's c0 by 6 · sqrt(128), nothing else."""
    config = AudioConfig(pitch_semitones=(0.0, 0.0), eq_gain_db=(0.0, 0.0), gain_db=(6.0, 6.0))
    audio = np.random.default_rng(6).uniform(-0.1, 0.1, SR).astype(np.float32)
    clean, variant = mfcc_record(audio, 30, "c", config)[:2]
    np.testing.assert_allclose(variant[:, 0] - clean[:, 0], 6 * np.sqrt(128), atol=1e-3)
    np.testing.assert_allclose(variant[:, 1:], clean[:, 1:], atol=1e-3)


def test_pitch_warp_moves_a_tone_by_the_transposition() -> None:
    t = np.arange(SR, dtype=np.float32) / SR
    power = power_spectrum(0.5 * np.sin(2 * np.pi * 1000.0 * t), 30, 1024)  # bin 64
    for semitones in (-2.0, 1.0, 2.0):
        config = AudioConfig(
            pitch_semitones=(semitones, semitones), eq_gain_db=(0.0, 0.0), gain_db=(0.0, 0.0)
        )
        shifted = augment_power(power, draw_variant("tone", 1, config))
        peak_hz = np.argmax(shifted[15]) * SR / 1024
        assert abs(peak_hz - 1000.0 * 2 ** (semitones / 12)) <= SR / 1024 / 2
        np.testing.assert_allclose(shifted[15].max(), power[15].max(), rtol=0.25)
    down = pitch_warp(power + 1.0, 0.5)  # an octave down: the upper half of the spectrum is empty
    assert (down[:, 257:] == 0).all() and (down[:, :257] > 0).all()
    np.testing.assert_array_equal(pitch_warp(power, 1.0), power)


def test_eq_with_zero_gains_is_the_identity() -> None:
    config = AudioConfig(pitch_semitones=(0.0, 0.0), eq_gain_db=(0.0, 0.0), gain_db=(0.0, 0.0))
    audio = np.random.default_rng(8).uniform(-0.3, 0.3, SR).astype(np.float32)
    record = mfcc_record(audio, 30, "c", config)
    np.testing.assert_allclose(record[1], record[0], atol=1e-4)
    np.testing.assert_allclose(record[2], record[0], atol=1e-4)
    response = eq_power_response(eq_sections(draw_variant("c", 1, config).eq), 1024)
    np.testing.assert_allclose(response, 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("band", "centre", "gain_db", "q"),
    [(0, 60.0, 5.0, 0.5), (0, 3000.0, -6.0, 0.9), (1, 125.0, 6.0, 4.5), (4, 3000.0, -6.0, 2.0),
     (6, 5000.0, 4.0, 0.7), (6, 300.0, -5.0, 0.2)],
)  # fmt: skip
def test_eq_response_matches_the_filtered_impulse(band, centre, gain_db, q) -> None:
    """One band's |H|² at the rfft bins equals the spectrum of its biquad run by sosfilt over an
    impulse and that of audiomentations' filter with the same parameters, and is the band's gain
    where the cookbook defines it (centre, 0 Hz or Nyquist)."""
    eq = [(1000.0, 0.0, 0.7)] * 7
    eq[band] = (centre, gain_db, q)
    sections = eq_sections(tuple(eq))
    response_db = 10 * np.log10(eq_power_response(sections, 1024))
    impulse = np.zeros(16 * 1024, dtype=np.float32)
    impulse[1] = 1.0  # audiomentations starts its filter state from the first sample

    def spectrum_db(filtered: np.ndarray) -> np.ndarray:
        return 10 * np.log10(np.abs(np.fft.rfft(filtered))[::16] ** 2)  # at the 1024-FFT bins

    np.testing.assert_allclose(
        response_db, spectrum_db(scipy.signal.sosfilt(sections, impulse)), atol=1e-4
    )
    kind = EQ_BANDS[band][0]
    at = {"low_shelf": 0, "high_shelf": 512, "peaking": round(centre * 1024 / SR)}[kind]
    assert response_db[at] == pytest.approx(gain_db, abs=1e-6)  # the peaks' centres are bins
    audiomentations = pytest.importorskip("audiomentations")
    name = {"low_shelf": "LowShelfFilter", "high_shelf": "HighShelfFilter"}
    reference = getattr(audiomentations, name.get(kind, "PeakingFilter"))(
        centre, centre, gain_db, gain_db, q, q, p=1.0
    )
    np.testing.assert_allclose(
        response_db, spectrum_db(reference(impulse, sample_rate=SR)), atol=1e-3
    )


def test_config_from_params_and_validation() -> None:
    config = from_mapping(AudioConfig, {"pitch_semitones": [-1, 1], "augmentations": 3})
    assert config.pitch_semitones == (-1.0, 1.0) and config.augmentations == 3
    with pytest.raises(ConfigError, match="pitch_semitones"):
        from_mapping(AudioConfig, {"pitch_semitones": [2, -2]})
    with pytest.raises(ConfigError, match="augmentations"):
        from_mapping(AudioConfig, {"augmentations": -1})
    with pytest.raises(ConfigError, match="unknown"):
        from_mapping(AudioConfig, {"n_mfc": 40})


def test_flac_round_trip() -> None:
    audio = np.random.default_rng(7).uniform(-0.9, 0.9, SR).astype(np.float32)
    data = flac_bytes(audio)
    info = soundfile.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.channels, info.samplerate) == ("FLAC", "PCM_16", 1, SR)
    decoded, rate = read_flac(data)
    assert rate == SR and decoded.shape == audio.shape
    np.testing.assert_allclose(decoded, audio, atol=1 / 32768)
    assert flac_bytes(audio) == data


def test_flac_clips_out_of_range_samples() -> None:
    decoded, _ = read_flac(flac_bytes(np.array([1.5, -1.5, 0.5], dtype=np.float32)))
    np.testing.assert_allclose(decoded, [1.0, -1.0, 0.5], atol=1 / 16384)


@pytest.mark.realdata
def test_real_speech(realdata) -> None:
    audio, rate = soundfile.read(realdata / "audio" / "librispeech_read_16k.wav", dtype="float32")
    assert rate == SR and audio.ndim == 1
    n_frames = round(len(audio) / SR * 30)
    record = mfcc_record(audio, n_frames, "librispeech-1088-134315-0000", CONFIG)
    assert record.shape == (3, n_frames, 40) and np.isfinite(record).all()
    # augmentation changes the voice, not the timing: the energy envelopes stay in step
    clean = record[0, :, 0]
    assert clean.std() > 5  # speech and pauses, not a flat line
    for row in record[1:]:
        assert np.corrcoef(clean, row[:, 0])[0, 1] > 0.9
        assert np.abs(row - record[0]).mean() > 0.5
    assert read_flac(flac_bytes(audio))[0].shape == audio.shape


@pytest.mark.realdata
def test_spectral_variants_follow_the_time_domain_augmentation(realdata) -> None:
    """The MFCC change of a spectral variant correlates with that of the same parameters applied
    to the audio (audiomentations' pitch shift, sosfilt EQ, gain), c1–c12: 0.95–0.99 measured
    on these 10 s (scripts/augmentation_check.py)."""
    pytest.importorskip("audiomentations")
    from scripts.augmentation_check import change_agreement, time_domain_variant

    audio, _ = soundfile.read(realdata / "audio" / "librispeech_read_16k.wav", dtype="float32")
    n_frames = 300
    audio = fit_length(audio, timeline_samples(n_frames))
    power = power_spectrum(audio, n_frames, CONFIG.n_fft)
    clean = power_to_mfcc(power, CONFIG)
    for index in (1, 2):
        variant = draw_variant("librispeech_read_16k", index, CONFIG)
        spectral = power_to_mfcc(augment_power(power, variant), CONFIG)
        reference = mfcc_track(time_domain_variant(audio, variant), n_frames, CONFIG)
        corr, residual = change_agreement(clean, spectral, reference, slice(1, 13))
        assert corr >= 0.85 and residual < 0.5, (variant, corr, residual)
