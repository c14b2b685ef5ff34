"""Calibrate the two cut cues (`filter.max_jump`, `filter.max_histogram_jump`) on real video.

Every clip of ../shared/realdata/video is re-encoded at 25, 29.97, 30 and 60 fps uncut, and
hard cuts between two different people are made at every rate and phase
(`space_data.testing.cuts`), plain and with the second face moved onto the first (identical
framing). Prints both statistics per clip; then, per cue, the largest uncut value, the smallest
value of the cuts that cue is for, their geometric mean (where its threshold belongs), and what
the thresholds in FilterConfig catch. `emotion_angry_man_30fps` holds a jump cut of its own
(0.97 s: the same man before the same wall, head turned), the kind only the landmarks see; a
cut between two people is the kind the colour histogram is for.

Run: .venv/bin/python scripts/calibrate_cuts.py [--realdata ../shared/realdata]  (~5 min)
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import click

from space_data.extract import ClipExtractor, ExtractConfig
from space_data.filters import FilterConfig
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
    extractor = ClipExtractor(
        ExtractConfig(require_audio=False, hands_every=1000, hands_idle_every=1000)
    )
    videos = {
        p.stem: square_frames(str(p), 256) for p in sorted((realdata / "video").glob("*.mp4"))
    }
    groups: dict[str, list[tuple[float, float]]] = {"uncut": [], "jump cut": [], "two people": []}

    def show(label: str, runs: list, group: str) -> None:
        jumps = [s.max_landmark_jump for _, _, s in runs]
        hists = [s.max_histogram_jump for _, _, s in runs]
        groups[group].extend(zip(jumps, hists, strict=True))
        click.echo(
            f"{label:62s} jump {min(jumps):.3f}-{max(jumps):.3f}  "
            f"histogram {min(hists):.3f}-{max(hists):.3f}  ({len(runs)} encodings)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in videos.items():
            half = float(clip[1][-1]) / 2
            where = {"a_end": half, "before": half, "after": half - 0.05}
            runs = stats_at_rates(extractor, Path(tmp), clip, None, UNCUT_RATES, **where)
            group = "jump cut" if name in JUMP_CUT_INSIDE else "uncut"
            show(f"{group} {name}", runs, group)
        for a, a_end, b, b_start in PAIRS:
            where = {"a_end": a_end, "b_start": b_start}
            runs = stats_at_rates(extractor, Path(tmp), videos[a], videos[b], **where)
            show(f"cut {a} -> {b}", runs, "two people")
            moved = aligned(videos[b], b_start, videos[a], a_end)
            runs = stats_at_rates(extractor, Path(tmp), videos[a], moved, **where)
            show(f"cut {a} -> {b} (aligned)", runs, "two people")
    extractor.close()
    limits = FilterConfig()
    for i, (cue, kind) in enumerate(
        (("max_jump", "jump cut"), ("max_histogram_jump", "two people"))
    ):
        top = max(u[i] for u in groups["uncut"])
        low = min(c[i] for c in groups[kind])
        click.echo(
            f"{cue}: largest uncut {top:.3f}, smallest {kind} {low:.3f}, geometric mean "
            f"{math.sqrt(top * low):.3f}; set {getattr(limits, cue)}"
        )
    cuts = groups["jump cut"] + groups["two people"]
    by = [sum(c[i] > getattr(limits, cue) for c in cuts) for i, cue in
          enumerate(("max_jump", "max_histogram_jump"))]  # fmt: skip
    either = sum(c[0] > limits.max_jump or c[1] > limits.max_histogram_jump for c in cuts)
    kept = sum(
        u[0] <= limits.max_jump and u[1] <= limits.max_histogram_jump for u in groups["uncut"]
    )
    click.echo(
        f"of {len(cuts)} cut encodings: {by[0]} caught by the landmarks, {by[1]} by the histogram, "
        f"{either} by either; uncut encodings below both: {kept} of {len(groups['uncut'])}"
    )


if __name__ == "__main__":
    main()
