"""Which clips the sample corpus holds: speakers, layouts, and the designed outcome of each.

Every corpus gets `speakers_per_corpus` speakers (one identity each) and
`keep_clips_per_speaker` ordinary clips per speaker, plus clips designed to be dropped
(the `hands` clip, made only when there is a hand photo, is one extra MEAD speaker's only clip,
rendered from that photo: identity `hand`):

design      corpus     rendered                                        outcome (stage)
keep        all        natural motion: |yaw| 15°, |pitch| 8°, |roll| 5° peaks  keep
moderate    voxceleb2  yaw swings to ±30°                              keep
left_30     mead       MEAD left_30 view: yaw −30° ± 5°                keep
rotation    voxceleb2  yaw turns to ~60° and back                      rotation (filter)
zoom        voxceleb2  scale grows 0.7 → 1.5 (range/median ≈ 0.75)     zoom (filter)
cut         voxceleb2  hard cut to another speaker's face, shifted     cut (filter)
no_face     mead       1 s of background only in the middle            no_face (filter)
hands       mead       a photo with a hand on the cheek (hand_photo)   hands (filter)
left_60     mead       MEAD left_60 view: yaw −60°                     excluded_view (index)
song        ravdess    sung audio (vocal channel 02)                   song (index)
video_only  ravdess    no audio stream (modality 02)                   video_only (index)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from space_data.clip import make_clip_id

# corpus → (width, height, fps, base scale px per canonical unit, layout)
FORMATS: dict[str, tuple[int, int, float, float]] = {
    "voxceleb2": (224, 224, 25.0, 46.0),
    "mead": (384, 216, 30.0, 44.0),
    "ravdess": (384, 216, 30000 / 1001, 42.0),
}
DESIGNS: dict[str, tuple[str, str]] = {
    # design → (designed outcome, stage that decides it)
    "keep": ("keep", "filter"),
    "moderate": ("keep", "filter"),
    "left_30": ("keep", "filter"),
    "rotation": ("rotation", "filter"),
    "zoom": ("zoom", "filter"),
    "cut": ("cut", "filter"),
    "no_face": ("no_face", "filter"),
    "hands": ("hands", "filter"),
    "left_60": ("excluded_view", "index"),
    "song": ("song", "index"),
    "video_only": ("video_only", "index"),
}
SPECIALS: dict[str, tuple[str, ...]] = {
    "voxceleb2": ("rotation", "zoom", "cut", "moderate"),
    "mead": ("left_30", "no_face", "hands", "left_60"),
    "ravdess": ("song", "video_only"),
}
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
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """One clip to render: where it goes, who speaks, and what it is designed to trigger."""

    clip_id: str
    """make_clip_id of the dataset-relative path, as the indexer derives it."""
    dataset: str
    relpath: str
    """Video path relative to the dataset root (`sample/<dataset>/`)."""
    audio_relpath: str | None
    """MEAD's separate `.m4a`, relative to the dataset root; None elsewhere."""
    speaker: str
    identity: str
    """Face identity (see photos.identity_names)."""
    other_identity: str | None
    """The face after the hard cut (design `cut`); None otherwise."""
    design: str
    duration: float
    """Seconds."""
    seed: int

    @property
    def outcome(self) -> str:
        return DESIGNS[self.design][0]

    @property
    def stage(self) -> str:
        return DESIGNS[self.design][1]

    @property
    def fps(self) -> float:
        return FORMATS[self.dataset][2]

    @property
    def size(self) -> tuple[int, int]:
        return FORMATS[self.dataset][:2]

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))


def plan_corpus(
    seed: int,
    speakers: int,
    keep_per_speaker: int,
    seconds: tuple[float, float],
    identities: list[str],
    with_hands: bool,
) -> list[ClipSpec]:
    """The clips of the corpus in a fixed order. `identities` must hold ≥ `speakers` names;
    each corpus starts at a different offset so neighbouring corpora use other faces first."""
    specs: list[ClipSpec] = []
    for c, dataset in enumerate(FORMATS):
        rng = np.random.default_rng([seed, c])
        faces = [identities[(c * 2 + k) % len(identities)] for k in range(speakers)]
        designs = [("keep", k) for k in range(speakers) for _ in range(keep_per_speaker)]
        designs += [(d, i % speakers) for i, d in enumerate(SPECIALS[dataset])]
        for i, (design, k) in enumerate(designs):
            if design == "hands" and not with_hands:
                continue
            if design == "hands":
                k = speakers  # a speaker of its own, with the face of the hand photo
            relpath, audio_relpath, speaker = _layout(dataset, design, k, i, speakers, rng)
            clip_id = make_clip_id(dataset, relpath)
            other = faces[(k + 1) % speakers] if design == "cut" else None
            face = "hand" if design == "hands" else faces[k]
            specs.append(
                ClipSpec(
                    clip_id=clip_id,
                    dataset=dataset,
                    relpath=relpath,
                    audio_relpath=audio_relpath,
                    speaker=speaker,
                    identity=face,
                    other_identity=other,
                    design=design,
                    duration=round(float(rng.uniform(*seconds)), 2),
                    seed=zlib.crc32(f"{seed}/{clip_id}".encode()),
                )
            )
    return specs


def _layout(
    dataset: str, design: str, k: int, i: int, speakers: int, rng: np.random.Generator
) -> tuple[str, str | None, str]:
    """(video relpath, audio relpath or None, speaker) of clip i by speaker k of `speakers`,
    in the corpus's real layout."""
    if dataset == "voxceleb2":
        speaker = f"id{10017 + 113 * k:05d}"
        youtube = "".join(rng.choice(list(_ID_CHARS), 11))
        # the last third of the speakers (at least one) form the corpus's own test partition
        part = "test" if k >= speakers - max(1, round(speakers / 3)) else "dev"
        return f"{part}/mp4/{speaker}/{youtube}/{i + 1:05d}.mp4", None, speaker
    if dataset == "mead":
        speaker = f"{'MW'[k % 2]}{3 + 7 * k:03d}"  # M003, W010, M017, ...
        view = {"left_30": "left_30", "left_60": "left_60"}.get(design, "front")
        emotion, level = MEAD_TAKES[i % len(MEAD_TAKES)]
        take = f"{emotion}/level_{level}/{i + 1:03d}"
        return f"{speaker}/video/{view}/{take}.mp4", f"{speaker}/audio/{take}.m4a", speaker
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
