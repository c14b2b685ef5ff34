"""RAVDESS: 24 actors speaking and singing two statements with 8 emotions, 29.97 fps, 720p.

Source: https://zenodo.org/record/1188976 (Livingstone & Russo, "The Ryerson Audio-Visual
Database of Emotional Speech and Song", PLoS ONE 2018). Licence: CC BY-NC-SA 4.0.

Expected layout (the `Video_Speech_Actor_NN.zip` / `Video_Song_Actor_NN.zip` archives unpacked
into one folder; any folders above `Actor_NN` are fine)::

    <root>/Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4

File name fields: modality MM (01 audio-video, 02 video-only, 03 audio-only), vocal channel VV
(01 speech, 02 song), emotion EE (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
07 disgust, 08 surprised), intensity II (01 normal, 02 strong; neutral has no strong),
statement SS (01, 02), repetition RR (01, 02), actor AA (01–24; odd male, even female).
Only audio-video speech is used. Emotions map into the shared vocabulary (`disgust` →
`disgusted`); intensity normal → 0.5, strong → 1, neutral → 0. Speaker = `Actor_NN`.
Clip id: `ravdess-Actor_NN-MM-VV-EE-II-SS-RR-AA`.

Reasons: `bad_layout` (not inside an `Actor_NN` folder), `bad_name` (not seven two-digit
fields, or an actor field that disagrees with the folder), `unknown_code` (a field value
outside the table above), `video_only`, `audio_only`, `song`.
"""

from __future__ import annotations

import re

from space_data.clip import Clip, make_clip_id
from space_data.datasets.corpus import Corpus
from space_data.datasets.files import MediaPath, clip_rows, media_files, path_parts

DATASET = "ravdess"
MODALITIES = {"01": None, "02": "video_only", "03": "audio_only"}  # code → reason (None = use)
CHANNELS = {"01": None, "02": "song"}
EMOTION_CODES: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgusted",
    "08": "surprised",
}
INTENSITIES = {"01": 0.5, "02": 1.0}
_ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.mp4$")


def scan_ravdess(root: str) -> list[Clip]:
    """One `Clip` per `.mp4` path below `root` (usable, or with a reason)."""
    return clip_rows(media_files(root, (".mp4",)), _clip)


def _clip(f: MediaPath) -> Clip:
    path = f.path
    parts = path_parts(path)
    actor_dir = _ACTOR_DIR.match(parts[-2]) if len(parts) >= 2 else None
    if actor_dir is None:
        # off the layout: the root-relative path is the only unique name
        clip_id = make_clip_id(DATASET, f.rel)
        detail = f"{f.rel}: not inside an Actor_NN folder"
        return Clip(clip_id, DATASET, "unknown", path, reason="bad_layout", detail=detail)
    speaker = parts[-2]
    clip_id = make_clip_id(DATASET, "/".join(parts[-2:]))
    fields = _NAME.match(parts[-1])
    if fields is None:
        detail = f"{f.rel}: not seven two-digit fields MM-VV-EE-II-SS-RR-AA.mp4"
        return Clip(clip_id, DATASET, speaker, path, reason="bad_name", detail=detail)
    if fields.group(7) != actor_dir.group(1):
        detail = f"{f.rel}: actor field {fields.group(7)} disagrees with the folder {speaker}"
        return Clip(clip_id, DATASET, speaker, path, reason="bad_name", detail=detail)
    modality, channel, emotion_code, intensity_code, statement, repetition, actor = fields.groups()
    emotion = EMOTION_CODES.get(emotion_code)
    known = (
        modality in MODALITIES
        and channel in CHANNELS
        and emotion is not None
        and intensity_code in INTENSITIES
        and not (emotion == "neutral" and intensity_code == "02")
        and statement in ("01", "02")
        and repetition in ("01", "02")
        and 1 <= int(actor) <= 24
    )
    if not known:
        detail = f"{f.rel}: a field value outside the RAVDESS code table"
        return Clip(clip_id, DATASET, speaker, path, reason="unknown_code", detail=detail)
    intensity = 0.0 if emotion == "neutral" else INTENSITIES[intensity_code]
    reason = MODALITIES[modality] or CHANNELS[channel]
    return Clip(
        clip_id=clip_id,
        dataset=DATASET,
        speaker=speaker,
        path=path,
        emotion=emotion,
        intensity=intensity,
        reason=reason,
        detail=reason and f"{f.rel}: {_NOT_USED[reason]}",
    )


_NOT_USED = {
    "video_only": "modality 02, video only (no audio)",
    "audio_only": "modality 03, audio only (no video)",
    "song": "vocal channel 02, song (only speech is used)",
}

CORPUS = Corpus(
    name=DATASET,
    scan=scan_ravdess,
    root="the folder holding the Actor_NN folders",
    layout="Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4",
    whole_frames=False,
    labels=tuple(EMOTION_CODES.values()),
    licence="cc-by-nc-sa-4.0",
    terms="CC BY-NC-SA 4.0 (non-commercial, share alike)",
)
