"""CREMA-D: 91 actors saying 12 sentences with 6 emotions, 7,442 clips, 480×360 Flash video.

Source: https://github.com/CheyneyComputerScience/CREMA-D (Cao, Cooper, Keutmann, Gur, Nenkova,
Verma, "CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset", IEEE Trans. Affective
Computing 2014). Licence: Open Database License (ODbL) 1.0, contents under the Database
Contents License (DbCL) 1.0.

Expected layout (the repository's folders; the root may be the corpus folder or its
`VideoFlash` folder, and `AudioWAV` is then looked up beside it)::

    <root>/VideoFlash/<ActorID>_<Sentence>_<Emotion>_<Level>.flv      video with audio
    <root>/AudioWAV/<ActorID>_<Sentence>_<Emotion>_<Level>.wav        the same clip's audio

ActorID 1001–1091 (the speaker); Sentence one of `SENTENCES`; Emotion ANG, DIS, FEA, HAP, NEU,
SAD → angry, disgusted, fearful, happy, neutral, sad; Level LO, MD, HI → intensity 1/3, 2/3, 1,
and XX (unspecified: the actors were given no level, as for 11 of the 12 sentences) → 2/3,
the medium level, since an unprompted portrayal is neither the weakest nor the strongest;
the crowd-sourced perceived intensities in the release's `processedResults/` are not read.
Neutral is 0 whatever its level. The `.wav` (the 16 kHz recording) is the clip's `audio_path`;
a clip without one uses the audio inside its `.flv`. Other folders of the release
(`AudioMP3/`, `processedResults/`, ...) hold no `.flv` and get no rows. The frames are whole
camera frames: they are cropped around the face and resized like MEAD and RAVDESS.
Clip id: `cremad-<file stem>` (`cremad-1001_DFA_ANG_XX`).

Reasons: `bad_layout` (an `.flv` outside `VideoFlash/`), `bad_name` (not four `_`-separated
fields: four digits, three letters, three letters, two letters), `unknown_actor` (outside
1001–1091), `unknown_sentence`, `unknown_emotion`, `unknown_level`.
"""

from __future__ import annotations

import re

from space_data import storage
from space_data.clip import Clip, make_clip_id
from space_data.datasets.corpus import Corpus
from space_data.datasets.files import MediaPath, clip_rows, media_files, path_parts

DATASET = "cremad"
VIDEO_DIR = "VideoFlash"
AUDIO_DIR = "AudioWAV"
ACTORS = range(1001, 1092)
SENTENCES: tuple[str, ...] = (
    "IEO",  # It's eleven o'clock
    "TIE",  # That is exactly what happened
    "IOM",  # I'm on my way to the meeting
    "IWW",  # I wonder what this is about
    "TAI",  # The airplane is almost full
    "MTI",  # Maybe tomorrow it will be cold
    "IWL",  # I would like a new alarm clock
    "ITH",  # I think I have a doctor's appointment
    "DFA",  # Don't forget a jacket
    "ITS",  # I think I've seen this before
    "TSI",  # The surface is slick
    "WSI",  # We'll stop in a couple of minutes
)
EMOTION_CODES: dict[str, str] = {
    "ANG": "angry",
    "DIS": "disgusted",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
UNSPECIFIED_INTENSITY = 2 / 3
"""Intensity of level XX (no level given to the actor): the medium level MD."""
LEVELS: dict[str, float] = {"LO": 1 / 3, "MD": 2 / 3, "HI": 1.0, "XX": UNSPECIFIED_INTENSITY}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.flv$")


def scan_cremad(root: str) -> list[Clip]:
    """One `Clip` per `.flv` path below `root` (usable, or with a reason); the `.wav` of the
    same name in `AudioWAV/` is attached as its audio, `.wav` files are not rows."""
    parts = path_parts(root)
    if parts and parts[-1] == VIDEO_DIR:
        files = media_files(root, (".flv",))
        beside = root.rstrip("/")[: -len(VIDEO_DIR)] + AUDIO_DIR
        if storage.isdir(beside):
            files += media_files(beside, (".wav",))
    else:
        files = media_files(root, (".flv", ".wav"))
    audio = {}
    for f in files:
        folder, name = path_parts(f.path)[-2:]
        if folder == AUDIO_DIR and name.lower().endswith(".wav") and f.problem is None:
            audio[name[:-4]] = f.path
    videos = [f for f in files if f.path.lower().endswith(".flv")]
    return clip_rows(videos, lambda f: _clip(f, audio))


def _clip(f: MediaPath, audio: dict[str, str]) -> Clip:
    folder, name = path_parts(f.path)[-2:]
    if folder != VIDEO_DIR:
        why = f"not inside a {VIDEO_DIR} folder"
        return _reject(make_clip_id(DATASET, f.rel), f, "unknown", "bad_layout", why)
    clip_id = make_clip_id(DATASET, name)
    fields = _NAME.match(name)
    if fields is None:
        why = f"{name!r} is not <ActorID>_<Sentence>_<Emotion>_<Level>.flv"
        return _reject(clip_id, f, "unknown", "bad_name", why)
    actor, sentence, emotion_code, level = fields.groups()
    emotion = EMOTION_CODES.get(emotion_code)
    checks = (
        ("unknown_actor", int(actor) not in ACTORS, f"actor {actor} is outside 1001–1091"),
        ("unknown_sentence", sentence not in SENTENCES, f"sentence {sentence} is not CREMA-D's"),
        ("unknown_emotion", emotion is None, f"emotion {emotion_code} is not CREMA-D's"),
        ("unknown_level", level not in LEVELS, f"level {level} is not LO, MD, HI or XX"),
    )
    for reason, failed, why in checks:
        if failed:
            return _reject(clip_id, f, actor, reason, why)
    return Clip(
        clip_id=clip_id,
        dataset=DATASET,
        speaker=actor,
        path=f.path,
        audio_path=audio.get(name[:-4]),
        emotion=emotion,
        intensity=0.0 if emotion == "neutral" else LEVELS[level],
    )


def _reject(clip_id: str, f: MediaPath, speaker: str, reason: str, why: str) -> Clip:
    return Clip(clip_id, DATASET, speaker, f.path, reason=reason, detail=f"{f.rel}: {why}")


CORPUS = Corpus(
    name=DATASET,
    scan=scan_cremad,
    root="the corpus folder (holding VideoFlash/ and AudioWAV/) or its VideoFlash/ folder",
    layout="VideoFlash/<ActorID>_<Sentence>_<Emotion>_<Level>.flv",
    whole_frames=False,
    labels=tuple(EMOTION_CODES.values()),
    licence="odbl",
    terms=("Open Database License 1.0, contents under the Database Contents License 1.0"),
)
