"""VoxCeleb2: celebrity interview face tracks from YouTube, 25 fps, 224×224, AAC audio.

Source: https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox2.html (Chung, Nagrani, Zisserman,
"VoxCeleb2: Deep Speaker Recognition", Interspeech 2018). Licence: CC BY 4.0 for the metadata;
the videos stay with their YouTube owners (research use).

Expected layout (the `vox2_dev_mp4` / `vox2_test_mp4` archives, unpacked)::

    <root>/{dev,test}/mp4/idNNNNN/<youtube id>/NNNNN.mp4

`root` may be the corpus folder (holding `dev/` and `test/`), one of `dev/` or `test/`, an
`mp4/` folder, or a speaker folder: the layout is read from the last three path components.
Speaker = `idNNNNN`. The corpus's own partition is kept on each clip as `split`: `train` for
dev, `test` for test, None where the path does not say; `assign_splits` then divides the dev
speakers into train/val (or ignores the partition, see `IndexConfig`).
No emotion labels: emotion, intensity and view are null. Clip id: `make_clip_id` of the
canonical corpus-relative path `{dev,test}/mp4/<speaker>/<youtube id>/NNNNN.mp4` (e.g.
`voxceleb2-dev-mp4-id00012-21Uxsk56VDQ-00001`), the same whichever root is given; where no
`dev`/`test` folder is above the file, `<speaker>/<youtube id>/NNNNN.mp4`.

Reasons: `bad_layout` (an `NNNNN.mp4` not inside `idNNNNN/<youtube id>/`), `bad_name` (any
other malformed file name).
"""

from __future__ import annotations

import re

from space_data.clip import Clip, make_clip_id
from space_data.datasets.corpus import Corpus
from space_data.datasets.files import MediaPath, clip_rows, media_files, path_parts

DATASET = "voxceleb2"
_SPEAKER = re.compile(r"^id\d{5}$")
_UTTERANCE = re.compile(r"^\d{5}\.mp4$")
# the corpus's own partition → the split it starts as
_PARTITIONS = {"dev": "train", "test": "test"}


def scan_voxceleb2(root: str) -> list[Clip]:
    """One `Clip` per `.mp4` path below `root` (usable, or with a reason)."""
    return clip_rows(media_files(root, (".mp4",)), _clip)


def layout_clip_id(path: str) -> str:
    """The clip id of a file in the layout, from the canonical corpus-relative path."""
    parts = path_parts(path)
    folder = _partition_folder(parts[:-3])
    prefix = [folder, "mp4"] if folder else []
    return make_clip_id(DATASET, "/".join([*prefix, *parts[-3:]]))


def _clip(f: MediaPath) -> Clip:
    parts = path_parts(f.path)
    if len(parts) < 3 or not _SPEAKER.match(parts[-3]):
        # off the layout: the root-relative path is the only unique name
        if _UTTERANCE.match(parts[-1]):
            reason, detail = "bad_layout", f"{f.rel}: not inside idNNNNN/<youtube id>/"
        else:
            reason, detail = "bad_name", f"{f.rel}: not NNNNN.mp4 inside idNNNNN/<youtube id>/"
        return Clip(
            make_clip_id(DATASET, f.rel), DATASET, "unknown", f.path, reason=reason, detail=detail
        )
    speaker, _, utterance = parts[-3:]
    named = bool(_UTTERANCE.match(utterance))
    folder = _partition_folder(parts[:-3])
    return Clip(
        clip_id=layout_clip_id(f.path),
        dataset=DATASET,
        speaker=speaker,
        path=f.path,
        split=_PARTITIONS[folder] if folder and named else None,
        reason=None if named else "bad_name",
        detail=None if named else f"{f.rel}: utterance {utterance!r} is not NNNNN.mp4",
    )


def _partition_folder(above: list[str]) -> str | None:
    """`dev` or `test` when that folder is right above the speaker folder or its `mp4/`."""
    if above and above[-1] == "mp4":
        above = above[:-1]
    return above[-1] if above and above[-1] in _PARTITIONS else None


CORPUS = Corpus(
    name=DATASET,
    scan=scan_voxceleb2,
    root="the corpus folder, dev/ or test/, or an mp4/ folder",
    layout="{dev,test}/mp4/idNNNNN/<youtube id>/NNNNN.mp4",
    whole_frames=True,
    labels=(),
    licence="cc-by-4.0",
    terms=("CC BY 4.0 for the metadata; the videos stay with their YouTube owners (research use)"),
)
