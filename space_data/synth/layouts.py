"""Where each registered corpus's sample clips go: format, designed clips and file layout.

One `SampleLayout` per corpus of `space_data.datasets.CORPORA`; `sample_layout` fails loudly for
a registered corpus without one, so a new corpus cannot be left out of the sample corpus.
Each `place` function writes paths in the corpus's real layout, the inverse of its scanner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# (video relpath, separate-audio relpath or None, speaker) of clip i by speaker k
Place = Callable[[str, int, int, int, np.random.Generator], tuple[str, str | None, str]]


@dataclass(frozen=True, slots=True)
class SampleLayout:
    """How one corpus's sample clips look and where they go."""

    width: int
    """Frame width, pixels (even)."""
    height: int
    """Frame height, pixels (even)."""
    fps: float
    """Frame rate, frames per second."""
    scale: float
    """Base face scale, pixels per canonical unit (outer-eye-corner distance)."""
    specials: tuple[str, ...]
    """Designs (`plan.DESIGNS`) rendered besides the ordinary `keep` clips."""
    place: Place
    """(design, speaker k, clip i, speakers, rng) → (video relpath, separate audio relpath or
    None, speaker), relative to the corpus root."""
    video_audio: bool = True
    """The video file carries the speech (MEAD: False, its audio is only in the `.m4a`)."""
    id_from_name: bool = False
    """The scanner makes the clip id from the file name alone (HDTF, CREMA-D), not from the
    root-relative path."""


_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
MEAD_TAKES = (  # (emotion folder, level) of ordinary MEAD clips, cycled
    ("neutral", 1),
    ("happy", 2),
    ("angry", 3),
    ("sad", 1),
    ("surprised", 2),
    ("contempt", 1),
)
RAVDESS_TAKES = (  # (emotion code, intensity code) of ordinary RAVDESS clips, cycled
    ("01", "01"),
    ("03", "02"),
    ("05", "01"),
    ("04", "02"),
    ("08", "01"),
    ("06", "02"),
)
CREMAD_TAKES = (  # (sentence, emotion, level) of CREMA-D clips, cycled
    ("IEO", "ANG", "HI"),
    ("DFA", "NEU", "XX"),
    ("TIE", "HAP", "XX"),
    ("IEO", "SAD", "LO"),
    ("ITS", "FEA", "XX"),
    ("IEO", "DIS", "MD"),
)
HDTF_NAMES = ("WDA_KatieHill", "WRA_MarcoRubio", "RD_Radio11", "WDA_JoeBiden", "WRA_JohnKasich")


def _voxceleb2(design: str, k: int, i: int, speakers: int, rng: np.random.Generator):
    speaker = f"id{10017 + 113 * k:05d}"
    youtube = "".join(rng.choice(list(_ID_CHARS), 11))
    # the last third of the speakers (at least one) form the corpus's own test partition
    part = "test" if k >= speakers - max(1, round(speakers / 3)) else "dev"
    return f"{part}/mp4/{speaker}/{youtube}/{i + 1:05d}.mp4", None, speaker


def _mead(design: str, k: int, i: int, speakers: int, rng: np.random.Generator):
    speaker = f"{'MW'[k % 2]}{3 + 7 * k:03d}"  # M003, W010, M017, ...
    view = {"left_30": "left_30", "left_60": "left_60"}.get(design, "front")
    emotion, level = MEAD_TAKES[i % len(MEAD_TAKES)]
    take = f"{emotion}/level_{level}/{i + 1:03d}"
    return f"{speaker}/video/{view}/{take}.mp4", f"{speaker}/audio/{take}.m4a", speaker


def _ravdess(design: str, k: int, i: int, speakers: int, rng: np.random.Generator):
    actor = k + 1
    emotion, intensity = RAVDESS_TAKES[i % len(RAVDESS_TAKES)]
    if emotion == "01":
        intensity = "01"  # RAVDESS has no strong neutral
    modality = "02" if design == "video_only" else "01"
    channel = "02" if design == "song" else "01"
    statement, repetition = 1 + i % 2, 1 + (i // 2) % 2
    name = (
        f"{modality}-{channel}-{emotion}-{intensity}-{statement:02d}-{repetition:02d}-{actor:02d}"
    )
    return f"Actor_{actor:02d}/{name}.mp4", None, f"Actor_{actor:02d}"


def _hdtf(design: str, k: int, i: int, speakers: int, rng: np.random.Generator):
    speaker = f"{HDTF_NAMES[k % len(HDTF_NAMES)]}{k // len(HDTF_NAMES) or ''}"
    return f"{speaker}_{i:03d}.mp4", None, speaker


def _cremad(design: str, k: int, i: int, speakers: int, rng: np.random.Generator):
    actor = f"{1001 + 7 * k}"
    sentence, emotion, level = CREMAD_TAKES[i % len(CREMAD_TAKES)]
    name = f"{actor}_{sentence}_{emotion}_{level}"
    return f"VideoFlash/{name}.flv", f"AudioWAV/{name}.wav", actor


LAYOUTS: dict[str, SampleLayout] = {
    "voxceleb2": SampleLayout(
        224, 224, 25.0, 46.0, ("rotation", "zoom", "cut", "moderate"), _voxceleb2
    ),
    "mead": SampleLayout(
        384, 216, 30.0, 44.0, ("left_30", "no_face", "hands", "left_60"), _mead, video_audio=False
    ),
    "ravdess": SampleLayout(384, 216, 30000 / 1001, 42.0, ("song", "video_only"), _ravdess),
    # HDTF clips are cut around a large face; at 384×216 (face scale 44) MediaPipe Hands saw a
    # hand in 48 of 90 frames of the headset portrait (dropped as `hands`), at 256×256 in 12
    "hdtf": SampleLayout(256, 256, 25.0, 60.0, (), _hdtf, id_from_name=True),
    "cremad": SampleLayout(320, 240, 30.0, 52.0, (), _cremad, id_from_name=True),
}


def sample_layout(dataset: str) -> SampleLayout:
    """The sample layout of a registered corpus; a clear error when it has none."""
    try:
        return LAYOUTS[dataset]
    except KeyError:
        raise KeyError(
            f"corpus {dataset!r} is registered in space_data.datasets.CORPORA but has no sample "
            "layout: add one to LAYOUTS in space_data/synth/layouts.py"
        ) from None
