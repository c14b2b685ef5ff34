"""Check the A/V-offset estimator on the realdata talking clips (README "A/V offset").

Each clip of `space_data.testing.talking.TALKING` is extracted once (`ClipExtractor`: landmarks,
scale, speech); then its audio is shifted by 0, ±8 and ±12 frames (zeros in front or its start
cut) and re-estimated. Prints per clip the raw peak lag (before `MOUTH_LEAD` is subtracted), the
bias-corrected offset and confidence at every shift, and how many clips move by the shift ± 2;
then the mean raw peak of the in-sync reference clips (`IN_SYNC`), where `MOUTH_LEAD` comes from.

Run: .venv/bin/python scripts/av_offset_check.py [--realdata ../shared/realdata]  (~1 min)
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from space_data import av_offset
from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.media import decode_audio
from space_data.testing.talking import IN_SYNC, TALKING, shifted, talking_path

SHIFTS = (-12, -8, 0, 8, 12)
"""Audio shifts, timeline frames (positive = audio made late)."""
TOLERANCE = 2
"""A shifted estimate 'moves' when it differs from the unshifted one by the shift ± this."""


@click.command()
@click.option("--realdata", type=click.Path(file_okay=False, path_type=Path),
              default=Path("../shared/realdata"), show_default=True)  # fmt: skip
def main(realdata: Path) -> None:
    """Print the offsets of the realdata talking clips with their audio shifted."""
    extractor = ClipExtractor(ExtractConfig())
    moved = dict.fromkeys(SHIFTS, 0)
    raw = {}
    click.echo("clip: raw peak | offset (confidence) at audio shift " + " / ".join(
        f"{s:+d}" for s in SHIFTS))  # fmt: skip
    for name in TALKING:
        path = talking_path(realdata, name)
        record = extractor(Clip(name, "voxceleb2", "s", str(path)))
        if not record.ok:
            raise click.ClickException(f"{name}: extraction failed ({record.reason})")
        lm, scale = record.arrays["lm3d"], record.arrays["scale"]
        audio, speech = decode_audio(str(path)), record.arrays["speech"]
        raw[name], _ = av_offset.peak_lag(*av_offset.lag_correlation(lm, scale, audio))
        est = {s: av_offset.estimate_offset(lm, scale, shifted(audio, s), speech) for s in SHIFTS}
        for s in SHIFTS:
            moved[s] += abs(est[s][0] - est[0][0] - s) <= TOLERANCE
        cells = " / ".join(f"{o:+d} ({c:.2f})" for o, c in est.values())
        click.echo(f"{name:28s} {raw[name]:+6.2f} | {cells}")
    extractor.close()
    click.echo(
        "moved by the shift ± 2: "
        + ", ".join(f"{s:+d}: {moved[s]}/{len(TALKING)}" for s in SHIFTS if s)
    )
    click.echo(
        f"in sync |offset| ≤ 3 needs the raw peak near MOUTH_LEAD = {av_offset.MOUTH_LEAD}; "
        f"mean raw peak of {', '.join(IN_SYNC)}: {np.mean([raw[n] for n in IN_SYNC]):.2f}"
    )


if __name__ == "__main__":
    main()
