"""The `hands` rule's calibration: per clip, the hand samples, how far the nearest hand was from
the face, the longest span of a hand at the face, and the filter's decision.

Clips: the realdata hand photos made into clips, real talking clips with a hand pasted over the
face for one second and in the lower third (`space_data.testing.hand_clips`),
every realdata video (hand-free), and with `--sample DIR` every clip of a built sample corpus
(its truth.json says which is the designed hands clip). Extraction as params.yaml's `extract`
section sets it, audio optional.

Run: .venv/bin/python benchmarks/hands_calibration.py [--sample /tmp/sample] [--params params.yaml]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import numpy as np

from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.filters import FilterConfig, filter_clip
from space_data.params import load_section
from space_data.testing.faces import realdata_root
from space_data.testing.hand_clips import composite_clips, still_clip

COMPOSITED = (
    "frontal_talking_may_25fps.mp4",
    "news_talking_25fps.mp4",
    "outdoor_singing_25fps.mp4",
)
"""Realdata talking clips hands are pasted into."""


def designed(realdata: Path, folder: Path) -> list[tuple[str, Clip]]:
    """(kind, clip) of the made clips: kind "at face" or "away"."""
    out = []
    for image in ("hand_on_cheek.jpg", "hand_waving_beside_face.png"):
        path = still_clip(realdata, image, folder / f"still_{Path(image).stem}.mp4")
        out.append(("at face", path))
    for video in COMPOSITED:
        made = composite_clips(realdata, video, folder)
        out += [("at face", made["over_face"]), ("away", made["lower_third"])]
    return [(kind, _clip(path)) for kind, path in out]


def _clip(path: Path) -> Clip:
    return Clip(clip_id=path.stem, dataset="mead", speaker="s", path=str(path))


def sample_clips(root: Path) -> list[tuple[str, Clip]]:
    truth = json.loads((root / "truth.json").read_text())
    clips = []
    for clip_id, t in sorted(truth.items()):
        audio = str(root / t["audio_path"]) if t["audio_path"] else None
        kind = "at face" if t["design"] == "hands" else "sample"
        clip = Clip(clip_id=clip_id, dataset=t["dataset"], speaker=t["speaker"],
                    path=str(root / t["path"]), audio_path=audio)  # fmt: skip
        clips.append((kind, clip))
    return clips


@click.command()
@click.option("--sample", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--params", "params_path", default="params.yaml", show_default=True)
def main(sample: Path | None, params_path: str) -> None:
    config = load_section("extract", ExtractConfig, params_path)
    config.require_audio = False
    filters = load_section("filter", FilterConfig, params_path)
    realdata = realdata_root()
    extractor = ClipExtractor(config)
    print(
        f"hands every {config.hands_every} / idle {config.hands_idle_every} native frames, "
        f"margin {config.hands_face_margin} face sizes, min_hand_span {filters.min_hand_span} s"
    )
    print(f"{'clip':44s} {'kind':8s} {'samples':>7s} {'hands':>5s} {'at face':>7s} "
          f"{'min gap':>7s} {'span s':>6s} {'T at face':>9s}  reasons")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        clips = designed(realdata, Path(tmp))
        clips += [("real", _clip(p)) for p in sorted((realdata / "video").glob("*.mp4"))]
        if sample is not None:
            clips += sample_clips(sample)
        for kind, clip in clips:
            rec = extractor(clip)
            if not rec.ok:
                print(f"{clip.clip_id:44s} {kind:8s} error: {rec.reason}")
                continue
            hands, s = extractor._hands, rec.stats
            gaps = np.asarray(hands.gaps)
            found = gaps[np.isfinite(gaps)]
            gap = f"{found.min():.2f}" if found.size else "-"
            print(
                f"{clip.clip_id:44s} {kind:8s} {len(gaps):7d} {found.size:5d} "
                f"{int(np.sum(hands.at_face)):7d} {gap:>7s} {s.hand_span:6.2f} "
                f"{s.hand_frames:4d}/{s.n_frames:<4d}  {filter_clip(s, filters)}",
                flush=True,
            )
    total = sum(extractor.timings.values())
    hands, crop = extractor.timings["hands"], extractor.timings["crop"]
    print(
        f"CPU: hands {hands:.1f} s of {total:.1f} s ({100 * hands / total:.0f} %), crops and "
        f"hand views {crop:.1f} s, face mesh {extractor.timings['face_mesh']:.1f} s"
    )
    extractor.close()


if __name__ == "__main__":
    main()
