"""HDTF scanner on a made folder of clips: names, speakers, metadata files, reasons, index."""

from __future__ import annotations

import pytest

from space_data.datasets import (
    CORPORA,
    CorporaConfig,
    IndexConfig,
    assign_splits,
    probe_clips,
    scan_corpora,
)
from space_data.datasets.hdtf import scan_hdtf
from space_data.datasets.splits import speaker_splits
from space_data.testing.corpora import place, write_tiny_video

GOOD = {
    "WDA_KatieHill_000.mp4": "WDA_KatieHill",
    "WDA_KatieHill_001.mp4": "WDA_KatieHill",
    "WRA_MarcoRubio_000.mp4": "WRA_MarcoRubio",
    "RD_Radio11_002.mp4": "RD_Radio11",
    "more/WDA_JoeBiden_010.mp4": "WDA_JoeBiden",  # sub-folders are fine
}
METADATA = (  # the HDTF release's files: not media, no row
    "WDA_video_url.txt",
    "WDA_annotion_time.txt",
    "WDA_crop_wh.txt",
    "WDA_resolution.txt",
    "RD_video_url.txt",
)
BAD = {
    "XYZ_KatieHill_000.mp4": "source 'XYZ' is not one of RD, WDA, WRA",
    "WDA_Katie-Hill_000.mp4": "is not <source>_<Name>_<NNN>.mp4",
    "WDA_KatieHill_0001.mp4": "clip number '0001' is not three digits",
    "WDA_KatieHill.mp4": "is not <source>_<Name>_<NNN>.mp4",
}


@pytest.fixture(scope="module")
def hdtf_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hdtf")
    video = write_tiny_video(root.parent / "hdtf_av.mp4")
    place({**dict.fromkeys(GOOD, video), **dict.fromkeys(BAD), **dict.fromkeys(METADATA)}, root)
    return root


def test_registered_as_cropped_and_unlabelled():
    corpus = CORPORA["hdtf"]
    assert corpus.scan is scan_hdtf and not corpus.whole_frames and corpus.labels == ()


def test_one_row_per_clip_file_and_none_for_metadata(hdtf_root):
    clips = scan_hdtf(str(hdtf_root))
    assert len(clips) == len(GOOD) + len(BAD)
    assert not [c for c in clips if c.path.endswith(".txt")]
    usable = {c.path.rsplit("/", 1)[-1]: c for c in clips if c.usable}
    assert {name: c.speaker for name, c in usable.items()} == {
        rel.rsplit("/", 1)[-1]: speaker for rel, speaker in GOOD.items()
    }
    first = usable["WDA_KatieHill_000.mp4"]
    assert first.clip_id == "hdtf-WDA_KatieHill_000"
    assert first.dataset == "hdtf" and first.audio_path is None
    assert first.emotion is None and first.intensity is None and first.view is None
    assert usable["WDA_JoeBiden_010.mp4"].clip_id == "hdtf-WDA_JoeBiden_010"


def test_names_that_do_not_parse_get_a_reason_and_a_detail(hdtf_root):
    rejected = {c.path.rsplit("/", 1)[-1]: c for c in scan_hdtf(str(hdtf_root)) if not c.usable}
    assert set(rejected) == set(BAD)
    for name, why in BAD.items():
        assert rejected[name].reason == "bad_name"
        assert name in rejected[name].detail and why in rejected[name].detail
        assert rejected[name].speaker == "unknown" and rejected[name].split is None


def test_indexed_with_speaker_disjoint_splits(hdtf_root):
    clips = assign_splits(
        list(probe_clips(scan_corpora(CorporaConfig(hdtf=str(hdtf_root))))), IndexConfig()
    )
    usable = [c for c in clips if c.usable]
    assert len(usable) == len(GOOD) and all(c.fps == 25.0 for c in usable)
    split_of: dict[str, set[str]] = {}
    for c in usable:
        split_of.setdefault(c.speaker, set()).add(c.split)
    assert all(len(s) == 1 for s in split_of.values())
    # each speaker where its hash puts it (hashed splits: 3 speakers need not fill 3 splits)
    hashed = speaker_splits(usable, IndexConfig())
    assert split_of == {s: {split} for (_, s), split in hashed.items()}
