"""CREMA-D scanner on a made corpus folder: names, labels, levels, audio, both roots, index."""

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
from space_data.datasets.cremad import UNSPECIFIED_INTENSITY, scan_cremad
from space_data.datasets.splits import speaker_splits
from space_data.testing.corpora import place, write_tiny_video

# name → (speaker, emotion, intensity)
GOOD = {
    "1001_IEO_ANG_HI": ("1001", "angry", 1.0),
    "1001_IEO_HAP_MD": ("1001", "happy", 2 / 3),
    "1001_IEO_SAD_LO": ("1001", "sad", 1 / 3),
    "1001_DFA_DIS_XX": ("1001", "disgusted", UNSPECIFIED_INTENSITY),
    "1045_TIE_FEA_XX": ("1045", "fearful", UNSPECIFIED_INTENSITY),
    "1045_WSI_NEU_XX": ("1045", "neutral", 0.0),
    "1091_ITS_NEU_XX": ("1091", "neutral", 0.0),  # no .wav: the .flv's own audio
    "1091_MTI_ANG_XX": ("1091", "angry", UNSPECIFIED_INTENSITY),
}
BAD = {
    "1000_IEO_ANG_HI": ("unknown_actor", "actor 1000 is outside 1001–1091"),
    "1092_IEO_ANG_HI": ("unknown_actor", "actor 1092 is outside 1001–1091"),
    "1001_XYZ_ANG_HI": ("unknown_sentence", "sentence XYZ"),
    "1001_IEO_SUR_HI": ("unknown_emotion", "emotion SUR"),
    "1001_IEO_ANG_ZZ": ("unknown_level", "level ZZ"),
    "1001_IEO_ANG": ("bad_name", "is not <ActorID>_<Sentence>_<Emotion>_<Level>.flv"),
}


@pytest.fixture(scope="module")
def cremad_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("CREMA-D")
    video = write_tiny_video(root.parent / "cremad_av.flv", size=64)
    files = {f"VideoFlash/{n}.flv": video for n in (*GOOD, *BAD)}
    files.update({f"AudioWAV/{n}.wav": None for n in (*GOOD, *BAD) if n != "1091_ITS_NEU_XX"})
    files["Stray/1002_IEO_ANG_HI.flv"] = video  # outside VideoFlash
    files["AudioMP3/1001_IEO_ANG_HI.mp3"] = None  # other release folders: no rows
    files["processedResults/tabulatedVotes.csv"] = None
    return place(files, root)


def test_registered_as_cropped_with_six_emotions():
    corpus = CORPORA["cremad"]
    assert corpus.scan is scan_cremad and not corpus.whole_frames
    assert set(corpus.labels) == {"angry", "disgusted", "fearful", "happy", "neutral", "sad"}


@pytest.mark.parametrize("sub", ["", "VideoFlash"])
def test_labels_speakers_and_audio_from_either_root(cremad_root, sub):
    clips = scan_cremad(str(cremad_root / sub) if sub else str(cremad_root))
    assert all(c.path.endswith(".flv") for c in clips)  # .wav files are audio, not rows
    usable = {c.clip_id: c for c in clips if c.usable}
    assert set(usable) == {f"cremad-{n}" for n in GOOD}
    for name, (speaker, emotion, intensity) in GOOD.items():
        clip = usable[f"cremad-{name}"]
        assert (clip.speaker, clip.emotion, clip.intensity) == (speaker, emotion, intensity)
        if name == "1091_ITS_NEU_XX":
            assert clip.audio_path is None
        else:
            assert clip.audio_path == str(cremad_root / "AudioWAV" / f"{name}.wav")


def test_everything_else_gets_a_reason_and_a_detail(cremad_root):
    rejected = {
        c.path.rsplit("/", 1)[-1][:-4]: c for c in scan_cremad(str(cremad_root)) if not c.usable
    }
    stray = rejected.pop("1002_IEO_ANG_HI")
    assert stray.reason == "bad_layout" and "not inside a VideoFlash folder" in stray.detail
    assert set(rejected) == set(BAD)
    for name, (reason, why) in BAD.items():
        assert rejected[name].reason == reason, name
        assert why in rejected[name].detail and f"{name}.flv" in rejected[name].detail


def test_flash_video_is_probed_and_split_by_speaker(cremad_root):
    config = CorporaConfig(cremad=str(cremad_root / "VideoFlash"))
    clips = assign_splits(list(probe_clips(scan_corpora(config))), IndexConfig())
    usable = [c for c in clips if c.usable]
    assert len(usable) == len(GOOD)
    assert all(c.fps == 25.0 and c.duration == pytest.approx(0.4, abs=0.1) for c in usable)
    split_of = {c.speaker: c.split for c in usable}
    assert all(c.split == split_of[c.speaker] for c in usable)
    # each speaker where its hash puts it (hashed splits: 3 speakers need not fill 3 splits)
    assert split_of == {s: split for (_, s), split in speaker_splits(usable, IndexConfig()).items()}
