"""Check the spectral-domain MFCC augmentation against the same parameters applied to the audio
(docs/record.md, "Audio features").

For each realdata audio file (its first `--seconds`) and variants 1..`--variants` of it (clip id
= the file's stem), the parameters are drawn once (`space_data.audio.draw_variant`) and applied
(a) to the clean power spectrum, as the records do (`augment_power`), and (b) in the time domain:
audiomentations' PitchShift (signalsmith stretch, min = max = the drawn semitones), the same seven
RBJ biquads run by scipy.signal.sosfilt, and the gain; then MFCCs as usual (`mfcc_track`).
Printed per variant and per file: the correlation of the two MFCC changes from the clean row
(c1–c12 and c1–c39 of every frame), the residual ratio ‖(a) − (b)‖ / ‖(b) − clean‖ (c1–c12), the
same correlation and ratio with the pitch left out (EQ and gain alone), and the CPU time of (a)
and of (b) per variant (one thread; (b) includes its STFT, as the records' old time-domain path
did). c0 is left out: the gain moves it identically in both. Last, the CPU time of a whole
`mfcc_record` (A rows) on the first `--seconds` of the LibriSpeech file, against the clean row
plus A time-domain variants (what the records computed before).

audiomentations is a reference for this script and the tests only (requirements.txt), not a
runtime dependency.

Run (project root): .venv/bin/python -m scripts.augmentation_check [--realdata DIR]  (~3 s)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import numpy as np
import scipy.signal
from threadpoolctl import threadpool_limits

from scripts.ibug_reference import realdata_option
from space_data.audio import (
    AudioConfig,
    Variant,
    augment_power,
    draw_variant,
    eq_sections,
    fit_length,
    mfcc_record,
    mfcc_track,
    power_spectrum,
    power_to_mfcc,
    timeline_samples,
)
from space_data.media import decode_audio
from space_data.record import FPS, SAMPLE_RATE

AUDIO_FILES = ("address_16k_stereo.wav", "librispeech_read_16k.wav", "ljspeech_22k.wav")
"""The realdata speech files (under audio/)."""


def time_domain_variant(audio: np.ndarray, variant: Variant) -> np.ndarray:
    """(S,) float32: `variant` applied to (S,) float32 16 kHz audio in the time domain —
    audiomentations' PitchShift by exactly `variant.semitones`, the EQ's biquads (sosfilt), the
    gain — cut or padded to the input's length."""
    import audiomentations

    shifted = audio
    if variant.semitones:  # signalsmith fades the ends even when it shifts by nothing
        shift = audiomentations.PitchShift(variant.semitones, variant.semitones, p=1.0)
        shifted = shift(samples=audio, sample_rate=SAMPLE_RATE)
    filtered = scipy.signal.sosfilt(eq_sections(variant.eq), shifted) * 10 ** (variant.gain_db / 20)
    return fit_length(filtered.astype(np.float32), len(audio))


def change_agreement(
    clean: np.ndarray, spectral: np.ndarray, reference: np.ndarray, coefficients: slice
) -> tuple[float, float]:
    """Correlation of the (T, n_mfcc) MFCC changes spectral − clean and reference − clean over
    `coefficients` of every frame, and the residual ratio ‖spectral − reference‖ / ‖reference −
    clean‖ over the same."""
    d_spec = (spectral - clean)[:, coefficients].ravel()
    d_ref = (reference - clean)[:, coefficients].ravel()
    corr = float(np.corrcoef(d_spec, d_ref)[0, 1])
    return corr, float(np.linalg.norm(d_spec - d_ref) / np.linalg.norm(d_ref))


@click.command()
@realdata_option
@click.option("--seconds", default=10.0, show_default=True, help="Seconds of each file used.")
@click.option("--variants", default=4, show_default=True, help="Variants (seeds) per file.")
def main(realdata: Path, seconds: float, variants: int) -> None:
    """Print the agreement and CPU time of spectral vs time-domain augmentation per file."""
    config = AudioConfig()
    low, high = slice(1, 13), slice(1, config.n_mfcc)
    click.echo(
        "file / variant: semitones; corr c1-12, c1-39; residual c1-12; "
        "EQ+gain alone: corr, residual; ms spectral, time domain"
    )
    for name in AUDIO_FILES:
        audio = decode_audio(str(realdata / "audio" / name), SAMPLE_RATE)
        n_frames = int(min(len(audio) / SAMPLE_RATE, seconds) * FPS)
        audio = fit_length(audio, timeline_samples(n_frames))
        power = power_spectrum(audio, n_frames, config.n_fft)
        clean = power_to_mfcc(power, config)
        rows = []
        for index in range(1, variants + 1):
            variant = draw_variant(Path(name).stem, index, config)
            with threadpool_limits(1):
                start = time.process_time()
                spectral = power_to_mfcc(augment_power(power, variant), config)
                mid = time.process_time()
                reference = mfcc_track(time_domain_variant(audio, variant), n_frames, config)
                end = time.process_time()
            unshifted = dataclasses.replace(variant, semitones=0.0)
            eq_only = change_agreement(
                clean,
                power_to_mfcc(augment_power(power, unshifted), config),
                mfcc_track(time_domain_variant(audio, unshifted), n_frames, config),
                low,
            )
            row = (
                *change_agreement(clean, spectral, reference, low),
                change_agreement(clean, spectral, reference, high)[0],
                *eq_only,
                (mid - start) * 1e3,
                (end - mid) * 1e3,
            )
            rows.append(row)
            click.echo(
                f"  {name} / {index}: {variant.semitones:+.2f} st; {row[0]:.3f}, {row[2]:.3f}; "
                f"{row[1]:.2f}; {row[3]:.3f}, {row[4]:.2f}; {row[5]:.1f}, {row[6]:.1f}"
            )
        corr, residual, corr_all, eq_corr, eq_residual, t_spec, t_time = np.array(rows).T
        click.echo(
            f"{name} ({n_frames / FPS:.1f} s): corr c1-12 {corr.min():.3f}–{corr.max():.3f}, "
            f"c1-39 {corr_all.min():.3f}–{corr_all.max():.3f}; residual c1-12 "
            f"{residual.min():.2f}–{residual.max():.2f}; EQ+gain alone: corr "
            f"{eq_corr.min():.3f}–{eq_corr.max():.3f}, residual {eq_residual.min():.2f}–"
            f"{eq_residual.max():.2f}; ms per variant (median): spectral {np.median(t_spec):.1f}, "
            f"time domain {np.median(t_time):.1f}"
        )
    clip_times(realdata / "audio" / AUDIO_FILES[1], seconds, config)


def clip_times(path: Path, seconds: float, config: AudioConfig, repeats: int = 15) -> None:
    """Print the median CPU ms (one thread) of `mfcc_record` on the first `seconds` of `path`,
    of its clean row alone, and of the clean row plus A time-domain variants (the old path)."""
    audio = decode_audio(str(path), SAMPLE_RATE)
    n_frames = int(min(len(audio) / SAMPLE_RATE, seconds) * FPS)
    variants = [draw_variant(path.stem, i, config) for i in range(1, config.augmentations + 1)]

    def time_domain_record() -> None:
        clean = fit_length(audio, timeline_samples(n_frames))
        for variant in variants:
            mfcc_track(time_domain_variant(clean, variant), n_frames, config)
        mfcc_track(clean, n_frames, config)

    steps = {
        "mfcc_record": lambda: mfcc_record(audio, n_frames, path.stem, config),
        "clean row alone": lambda: mfcc_track(audio, n_frames, config),
        "clean + time-domain variants": time_domain_record,
    }
    cells = []
    with threadpool_limits(1):
        for label, step in steps.items():
            times = []
            for _ in range(repeats + 1):  # the first run warms caches
                start = time.process_time()
                step()
                times.append(time.process_time() - start)
            cells.append(f"{label} {np.median(times[1:]) * 1e3:.1f}")
    click.echo(
        f"{path.name}, {n_frames / FPS:.1f} s, A = {config.augmentations}, ms CPU (median of "
        f"{repeats}): " + "; ".join(cells)
    )


if __name__ == "__main__":
    main()
