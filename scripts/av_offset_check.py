"""Check the A/V-offset estimator on the realdata talking clips, with a second opinion from a
FaceSync-style canonical correlation (README "A/V offset").

Each clip of `space_data.testing.talking.TALKING` (and, not counted, the 4.3-s turned
VoxCeleb2-style clip) is extracted once (`ClipExtractor`: landmarks, scale); then its audio is
shifted by −12, −8, 0, +8 and +12 frames (its start cut, or zeros in front) and each estimator's
raw peak lag (before any mouth lead is subtracted) and confidence (peak − median) are printed.
Per estimator: the mean raw peak of the in-sync reference clips (`IN_SYNC`), the offsets after
its mouth lead (windows: `MOUTH_LEAD`; cca: that mean), and on how many clips each shift moves the
offset by the shift ± 2.

Estimators:
- windows: `space_data.av_offset.lag_correlation` (what the extractor uses);
- cca: per lag, the first canonical correlation (Slaney & Covell, "FaceSync", NIPS 2000) between
  4 mouth velocities (inner gap, outer gap 51–57, width 48–54, jaw opening 8–27, / face scale)
  and 4 audio velocities (log energy of 80–300, 300–1000, 1000–3000, 3000–7500 Hz), all smoothed
  like the windows estimator, over one fixed set of frames (the same mouth frames at every lag),
  ridge 0.01 on each covariance. Its design was fixed before it was run, not tuned on these clips.

Run (project root): .venv/bin/python -m scripts.av_offset_check [--realdata DIR]  (~40 s)
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from scripts.ibug_reference import realdata_option
from space_data import av_offset
from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.media import decode_audio
from space_data.testing.talking import IN_SYNC, TALKING, shifted, talking_path

EXTRA = ("voxceleb2_style_224_turned",)
"""Printed but not counted: under 5 s and turned about 23°."""
SHIFTS = (-12, -8, 0, 8, 12)
"""Audio shifts, timeline frames (positive = audio made late)."""
TOLERANCE = 2
"""A shifted estimate 'moves' when it differs from the unshifted one by the shift ± this."""
MOUTH_PAIRS = ((51, 57), (48, 54), (8, 27))
"""iBUG point pairs of the CCA's mouth features besides the inner gap: outer gap, width, jaw."""
BANDS = ((80.0, 300.0), (300.0, 1000.0), (1000.0, 3000.0), (3000.0, 7500.0))
"""The CCA's audio bands, Hz: voicing, first formant, second formant, frication."""
RIDGE = 0.01
"""Added to the diagonal of each (z-scored) covariance of the CCA."""


def cca_correlation(
    lm3d: np.ndarray, scale: np.ndarray, audio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lags −MAX_LAG..MAX_LAG (frames) and the first canonical correlation of the mouth
    velocities at t with the band-energy velocities at t + lag (all NaN for too short a clip)."""
    lm = np.asarray(lm3d, np.float64)[..., :2]
    levels = [av_offset.mouth_gap(lm3d, scale)] + [
        np.linalg.norm(lm[:, a] - lm[:, b], axis=-1) / scale for a, b in MOUTH_PAIRS
    ]
    mouth = np.stack([np.diff(av_offset.smooth(x)) for x in levels], 1)  # (T-1, 4)
    sound = np.stack(
        [np.diff(av_offset.smooth(av_offset.speech_envelope(audio, len(scale), b))) for b in BANDS],
        1,
    )  # (T-1, 4)
    lags = np.arange(-av_offset.MAX_LAG, av_offset.MAX_LAG + 1)
    t = np.arange(av_offset.MAX_LAG, len(mouth) - av_offset.MAX_LAG)
    ok = np.isfinite(mouth[t]).all(1)
    for lag in lags:
        ok &= np.isfinite(sound[t + lag]).all(1)
    t = t[ok]  # one set of mouth frames for every lag
    if len(t) < av_offset.WINDOW:
        return lags, np.full(len(lags), np.nan)
    return lags, np.array([_first_canonical(mouth[t], sound[t + lag]) for lag in lags])


def _first_canonical(x: np.ndarray, y: np.ndarray) -> float:
    """Largest canonical correlation of (N, P) `x` and (N, Q) `y`."""
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean(0)) / y.std(0)
    lx = np.linalg.cholesky(x.T @ x / len(x) + RIDGE * np.eye(x.shape[1]))
    ly = np.linalg.cholesky(y.T @ y / len(y) + RIDGE * np.eye(y.shape[1]))
    whitened = np.linalg.solve(ly, np.linalg.solve(lx, x.T @ y / len(x)).T)  # Ly⁻¹ Cyx Lx⁻ᵀ
    return float(np.linalg.svd(whitened, compute_uv=False)[0])


ESTIMATORS = {"windows": av_offset.lag_correlation, "cca": cca_correlation}


@click.command()
@realdata_option
def main(realdata: Path) -> None:
    """Print both estimators' readings of the realdata talking clips with shifted audio."""
    extractor = ClipExtractor(ExtractConfig())
    raw: dict[str, dict[str, dict[int, tuple[float, float]]]] = {e: {} for e in ESTIMATORS}
    for name in TALKING + EXTRA:
        path = talking_path(realdata, name)
        record = extractor(Clip(name, "voxceleb2", "s", str(path)))
        if not record.ok:
            raise click.ClickException(f"{name}: extraction failed ({record.reason})")
        lm, scale, audio = record.arrays["lm3d"], record.arrays["scale"], decode_audio(str(path))
        for label, correlation in ESTIMATORS.items():
            raw[label][name] = {
                s: av_offset.peak_lag(*correlation(lm, scale, shifted(audio, s))) for s in SHIFTS
            }
    extractor.close()
    shifts = " / ".join(f"{s:+d}" for s in SHIFTS)
    for label, clips in raw.items():
        measured = float(np.mean([clips[n][0][0] for n in IN_SYNC]))
        lead = av_offset.MOUTH_LEAD if label == "windows" else measured
        click.echo(f"== {label}: raw peak lag (confidence) at audio shift {shifts}")
        moved = dict.fromkeys(SHIFTS[:2] + SHIFTS[3:], 0)
        for name, est in clips.items():
            cells = " / ".join(f"{p:+6.2f} ({c:.2f})" for p, c in est.values())
            offset = round(est[0][0] - lead)
            click.echo(f"{name:28s} {cells} | offset {offset:+d}{' (extra)' * (name in EXTRA)}")
            for s in moved:
                moved[s] += (
                    name in TALKING and abs(round(est[s][0] - lead) - offset - s) <= TOLERANCE
                )
        click.echo(
            f"mean raw peak of {', '.join(IN_SYNC)}: {measured:.2f}; lead subtracted: {lead:.2f}; "
            f"moved by the shift ± {TOLERANCE}: "
            + ", ".join(f"{s:+d}: {m}/{len(TALKING)}" for s, m in moved.items())
        )


if __name__ == "__main__":
    main()
