"""Calibrate the two cut cues (`filter.max_jump`, `filter.max_histogram_jump`) on real video.

Every clip of ../shared/realdata/video is re-encoded at 25, 29.97, 30 and 60 fps uncut, and
hard cuts between two different people are made at every rate and phase
(`space_data.testing.cuts`), plain and with the second face moved onto the first (identical
framing). Prints both statistics per clip and, per cue, the largest uncut value, the smallest
cut value and their geometric mean (where a threshold belongs). `emotion_angry_man_30fps`
holds a jump cut of its own (0.97 s) and counts as a cut.

Run: .venv/bin/python scripts/calibrate_cuts.py [--realdata ../shared/realdata]  (~5 min)
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import click

from space_data.extract import ClipExtractor, ExtractConfig
from space_data.testing.cuts import aligned, square_frames, stats_at_rates

JUMP_CUT_INSIDE = {"emotion_angry_man_30fps"}
"""Source clips with a cut of their own."""
PAIRS = (  # (A, its end s, B, its start s): two different people
    ("frontal_talking_may_25fps", 2.0, "news_talking_25fps", 1.0),
    ("emotion_happy_woman_30fps", 2.0, "emotion_surprised_woman_30fps", 0.5),
    ("voxceleb2_style_224_frontal", 2.0, "voxceleb2_style_224_turned", 1.0),
    ("interview_talking_25fps", 2.0, "outdoor_singing_25fps", 1.0),
)
UNCUT_RATES = dict.fromkeys((25.0, 30000 / 1001, 30.0, 60.0), 1)


@click.command()
@click.option("--realdata", type=click.Path(file_okay=False, path_type=Path),
              default=Path("../shared/realdata"), show_default=True)  # fmt: skip
def main(realdata: Path) -> None:
    """Print the cut statistics of uncut and cut real clips at every rate and phase."""
    extractor = ClipExtractor(ExtractConfig(require_audio=False, hands_every=1000))
    videos = {
        p.stem: square_frames(str(p), 256) for p in sorted((realdata / "video").glob("*.mp4"))
    }
    uncut: list[tuple[float, float]] = []
    cut: list[tuple[float, float]] = []

    def show(label: str, runs: list, into: list) -> None:
        jumps = [s.max_landmark_jump for _, _, s in runs]
        hists = [s.max_histogram_jump for _, _, s in runs]
        into.extend(zip(jumps, hists, strict=True))
        click.echo(
            f"{label:62s} jump {min(jumps):.3f}-{max(jumps):.3f}  "
            f"histogram {min(hists):.3f}-{max(hists):.3f}  ({len(runs)} encodings)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in videos.items():
            half = float(clip[1][-1]) / 2
            where = {"a_end": half, "before": half, "after": half - 0.05}
            runs = stats_at_rates(extractor, Path(tmp), clip, None, UNCUT_RATES, **where)
            inside = name in JUMP_CUT_INSIDE
            show(
                f"{'jump cut inside' if inside else 'uncut'} {name}", runs, cut if inside else uncut
            )
        for a, a_end, b, b_start in PAIRS:
            where = {"a_end": a_end, "b_start": b_start}
            runs = stats_at_rates(extractor, Path(tmp), videos[a], videos[b], **where)
            show(f"cut {a} -> {b}", runs, cut)
            moved = aligned(videos[b], b_start, videos[a], a_end)
            runs = stats_at_rates(extractor, Path(tmp), videos[a], moved, **where)
            show(f"cut {a} -> {b} (aligned)", runs, cut)
    extractor.close()
    for i, cue in enumerate(("max_jump", "max_histogram_jump")):
        top = max(u[i] for u in uncut)
        # a cut counts for a cue when that cue is its only chance, or the better one
        caught = [c[i] for c in cut if c[i] > top]
        low = min(caught) if caught else math.nan
        click.echo(
            f"{cue}: largest uncut {top:.3f}, smallest cut above it {low:.3f}, "
            f"geometric mean {math.sqrt(top * low):.3f}; cuts it alone would miss: "
            f"{sum(c[i] <= top for c in cut)} of {len(cut)}"
        )


if __name__ == "__main__":
    main()
