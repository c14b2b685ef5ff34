"""MEAD: 60 actors speaking with 8 emotions at 3 intensities, filmed from 7 views, 30 fps, 1080p.

Source: https://wywu.github.io/projects/MEAD/MEAD.html (Wang et al., "MEAD: A Large-scale
Audio-visual Dataset for Emotional Talking-face Generation", ECCV 2020). Licence: research
use only, by request to the authors (see the project page).

Expected layout (each actor's `video.tar` and `audio.tar` unpacked in the actor folder)::

    <root>/<speaker>/video/<view>/<emotion>/level_<1-3>/NNN.mp4
    <root>/<speaker>/audio/<emotion>/level_<1-3>/NNN.m4a

Speaker = `M003`, `W009`, ... Views: front, top, down, left_30, left_60, right_30, right_60;
left_60 and right_60 are excluded as in the SPACE paper (rows kept with reason
`excluded_view`). The videos carry no audio: each clip's `audio_path` is its `.m4a`, shared
by all views of that take. Emotions map into the shared vocabulary (`fear` → `fearful`);
intensity is level / 3, and 0 for neutral. Clip id: `mead-<speaker>-video-<view>-<emotion>-
level_<n>-<NNN>`.

Reasons: `bad_layout`, `bad_name` (speaker or file name malformed), `unknown_view`,
`unknown_emotion`, `unknown_level`, `excluded_view`, `missing_audio` (no matching `.m4a`).
"""

from __future__ import annotations

import re

from space_data.clip import Clip, make_clip_id
from space_data.datasets.corpus import Corpus
from space_data.datasets.files import MediaPath, clip_rows, media_files, path_parts

DATASET = "mead"
VIEWS: tuple[str, ...] = ("front", "top", "down", "left_30", "left_60", "right_30", "right_60")
EXCLUDED_VIEWS: frozenset[str] = frozenset({"left_60", "right_60"})
# MEAD's emotion folder names → the shared vocabulary (space_data.clip.EMOTIONS)
EMOTION_MAP: dict[str, str] = {
    "angry": "angry",
    "contempt": "contempt",
    "disgusted": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprised": "surprised",
}
_SPEAKER = re.compile(r"^[MW]\d{3}$")
_LEVEL = re.compile(r"^level_([123])$")
_UTTERANCE = re.compile(r"^\d{3}\.mp4$")


def scan_mead(root: str) -> list[Clip]:
    """One `Clip` per `.mp4` path below `root`; `.m4a` files are attached as audio, not rows.

    `root` is the folder holding the speaker folders, a single speaker folder, or any folder
    above them: the layout is read from the last six path components.
    """
    files = media_files(root, (".mp4", ".m4a"))
    audio = {
        "/".join(path_parts(f.path)[-5:]): f.path
        for f in files
        if f.rel.lower().endswith(".m4a") and f.problem is None
    }
    videos = [f for f in files if f.rel.lower().endswith(".mp4")]
    return clip_rows(videos, lambda f: _clip(f, audio))


def _clip(f: MediaPath, audio: dict[str, str]) -> Clip:
    path = f.path
    parts = path_parts(path)[-6:]
    if len(parts) != 6 or parts[1] != "video":
        # off the layout: the root-relative path is the only unique name
        clip_id = make_clip_id(DATASET, f.rel)
        why = f"{f.rel}: not <speaker>/video/<view>/<emotion>/level_<n>/NNN.mp4"
        return Clip(clip_id, DATASET, "unknown", path, reason="bad_layout", detail=why)
    speaker, _, view, emotion_dir, level_dir, name = parts
    emotion = EMOTION_MAP.get(emotion_dir)
    level = _LEVEL.match(level_dir)
    audio_rel = "/".join([speaker, "audio", emotion_dir, level_dir, name[:-4] + ".m4a"])
    audio_path = audio.get(audio_rel)
    checks = (
        ("bad_name", not _SPEAKER.match(speaker), f"speaker {speaker!r} is not M/W + 3 digits"),
        ("bad_name", not _UTTERANCE.match(name), f"file name {name!r} is not NNN.mp4"),
        ("unknown_view", view not in VIEWS, f"view {view!r} is not one of {', '.join(VIEWS)}"),
        ("unknown_emotion", emotion is None, f"emotion folder {emotion_dir!r} is not MEAD's"),
        ("unknown_level", level is None, f"level folder {level_dir!r} is not level_1/2/3"),
        ("excluded_view", view in EXCLUDED_VIEWS, f"view {view} is excluded (SPACE paper)"),
        ("missing_audio", audio_path is None, f"no audio file {audio_rel}"),
    )
    failed = [(r, d) for r, bad, d in checks if bad]
    reason: str | None = failed[0][0] if failed else None
    detail: str | None = f"{f.rel}: {failed[0][1]}" if failed else None
    intensity = None
    if emotion is not None and level is not None:
        intensity = 0.0 if emotion == "neutral" else int(level.group(1)) / 3
    return Clip(
        clip_id=make_clip_id(DATASET, "/".join(parts)),
        dataset=DATASET,
        speaker=speaker,
        path=path,
        audio_path=audio_path,
        emotion=emotion,
        intensity=intensity,
        view=view if view in VIEWS else None,
        reason=reason,
        detail=detail,
    )


CORPUS = Corpus(
    name=DATASET,
    scan=scan_mead,
    root="the folder holding the speaker folders (M003, W009, ...)",
    layout="<speaker>/video/<view>/<emotion>/level_<1-3>/NNN.mp4",
    whole_frames=False,
    labels=tuple(EMOTION_MAP.values()),
    licence="other",
    terms="research use only, by request to the authors (see the MEAD project page)",
)
