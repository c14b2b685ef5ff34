"""Which clips the sample corpus holds: speakers, layouts, and the designed outcome of each.

Every corpus gets `speakers_per_corpus` speakers (one identity each) and
`keep_clips_per_speaker` ordinary clips per speaker, plus clips designed to be dropped
(the `hands` clip, made only when there is a hand photo, is one extra MEAD speaker's only clip,
rendered from that photo: identity `hand`):

design      corpus     rendered                                        outcome (stage)
keep        every one  natural motion: |yaw| 15°, |pitch| 8°, |roll| 5° peaks  keep
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
from space_data.datasets import DATASETS
from space_data.synth.layouts import sample_layout

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


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """One clip to render: where it goes, who speaks, and what it is designed to trigger."""

    clip_id: str
    """make_clip_id of the dataset-relative path, as the indexer derives it."""
    dataset: str
    relpath: str
    """Video path relative to the dataset root (`sample/<dataset>/`)."""
    audio_relpath: str | None
    """Separate audio (MEAD's `.m4a`, CREMA-D's `.wav`), relative to the dataset root; None
    elsewhere."""
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
        return sample_layout(self.dataset).fps

    @property
    def size(self) -> tuple[int, int]:
        layout = sample_layout(self.dataset)
        return layout.width, layout.height

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
    """The clips of the corpus in a fixed order: every registered corpus (`DATASETS`), in its
    sample layout. `identities` must hold ≥ `speakers` names; each corpus starts at a different
    offset so neighbouring corpora use other faces first."""
    specs: list[ClipSpec] = []
    for c, dataset in enumerate(DATASETS):
        layout = sample_layout(dataset)
        rng = np.random.default_rng([seed, c])
        faces = [identities[(c * 2 + k) % len(identities)] for k in range(speakers)]
        designs = [("keep", k) for k in range(speakers) for _ in range(keep_per_speaker)]
        designs += [(d, i % speakers) for i, d in enumerate(layout.specials)]
        for i, (design, k) in enumerate(designs):
            if design == "hands" and not with_hands:
                continue
            if design == "hands":
                k = speakers  # a speaker of its own, with the face of the hand photo
            relpath, audio_relpath, speaker = layout.place(design, k, i, speakers, rng)
            clip_id = make_clip_id(
                dataset, relpath.rsplit("/", 1)[-1] if layout.id_from_name else relpath
            )
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
