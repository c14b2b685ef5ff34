"""HDTF: about 16 hours of high-resolution talking-head clips of ~300 speakers from YouTube.

Source: https://github.com/MRzzm/HDTF (Zhang, Li, Ding, Fan, "Flow-guided One-shot Talking
Face Generation with a High-resolution Audio-visual Dataset", CVPR 2021). The release is a list
of YouTube URLs with annotated time spans and crop boxes; the videos stay with their YouTube
owners (research use).

Expected layout (the clips HDTF's download-and-cut scripts write, in one folder; sub-folders
are fine, only the file name is read)::

    <root>/<source>_<Name>_<NNN>.mp4        e.g. WDA_KatieHill_000.mp4

source ∈ {RD, WDA, WRA} (radio addresses, White House Democratic / Republican addresses);
Name is letters and digits; NNN three digits. Speaker = `<source>_<Name>` (`WDA_KatieHill`).
No emotion labels (emotion and intensity null). The frames are whole YouTube frames: they are
cropped around the face and resized like MEAD and RAVDESS. The release's metadata files
(`*_video_url.txt`, `*_annotion_time.txt`, `*_crop_wh.txt`, `*_resolution.txt`) may sit in the
same folder: they are not media, so they get no row. Clip id: `hdtf-<file stem>`
(`hdtf-WDA_KatieHill_000`).

Reasons: `bad_name` (an `.mp4` whose name does not parse: unknown source, a name with other
characters, a clip number that is not three digits).
"""

from __future__ import annotations

import re

from space_data.clip import Clip, make_clip_id
from space_data.datasets.corpus import Corpus
from space_data.datasets.files import MediaPath, clip_rows, media_files, path_parts

DATASET = "hdtf"
SOURCES: tuple[str, ...] = ("RD", "WDA", "WRA")
_NAME = re.compile(r"^(?P<source>[A-Za-z]+)_(?P<name>[A-Za-z0-9]+)_(?P<number>\d+)\.mp4$")


def scan_hdtf(root: str) -> list[Clip]:
    """One `Clip` per `.mp4` path below `root` (usable, or with a reason)."""
    return clip_rows(media_files(root, (".mp4",)), _clip)


def _clip(f: MediaPath) -> Clip:
    name = path_parts(f.path)[-1]
    fields = _NAME.match(name)
    if fields is None:
        return _bad(f, f"{name!r} is not <source>_<Name>_<NNN>.mp4 (Name letters and digits)")
    if fields["source"] not in SOURCES:
        return _bad(f, f"source {fields['source']!r} is not one of {', '.join(SOURCES)}")
    if len(fields["number"]) != 3:
        return _bad(f, f"clip number {fields['number']!r} is not three digits")
    return Clip(
        clip_id=make_clip_id(DATASET, name),
        dataset=DATASET,
        speaker=f"{fields['source']}_{fields['name']}",
        path=f.path,
    )


def _bad(f: MediaPath, why: str) -> Clip:
    # the name does not parse: the root-relative path is the only unique name
    clip_id = make_clip_id(DATASET, f.rel)
    return Clip(clip_id, DATASET, "unknown", f.path, reason="bad_name", detail=f"{f.rel}: {why}")


CORPUS = Corpus(
    name=DATASET,
    scan=scan_hdtf,
    root="the folder of clips <source>_<Name>_<NNN>.mp4",
    layout="<source>_<Name>_<NNN>.mp4 (source RD, WDA or WRA)",
    whole_frames=False,
    labels=(),
    licence="other",
    terms=(
        "a list of YouTube URLs and time spans; the videos stay with their YouTube owners "
        "(research use)"
    ),
)
