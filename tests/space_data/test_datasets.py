"""Corpus scanners on fake trees, splits, probing and the manifest round trip."""

from __future__ import annotations

import dataclasses
import random
import re
import unicodedata
from collections import Counter

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from space_data.clip import Clip, make_clip_id
from space_data.datasets import (
    CORPORA,
    DATASETS,
    CorporaConfig,
    CorpusLayoutError,
    IndexConfig,
    assign_splits,
    probe_clips,
    read_manifest,
    sample_clips,
    scan_corpora,
    write_manifest,
)
from space_data.datasets.hdtf import scan_hdtf
from space_data.datasets.mead import scan_mead
from space_data.datasets.ravdess import scan_ravdess
from space_data.datasets.splits import (
    balanced_table,
    empty_splits,
    read_split_table,
    speaker_position,
    split_counts,
    write_split_table,
)
from space_data.datasets.voxceleb2 import scan_voxceleb2
from space_data.testing.corpora import place, tiny_m4a, write_tiny_video


def _by_name(clips: list[Clip]) -> dict[str, Clip]:
    return {c.path.rsplit("/", 1)[-1] if c.dataset == "ravdess" else c.clip_id: c for c in clips}


# --- VoxCeleb2 ---------------------------------------------------------------------------

VOX_FILES = {
    "dev/mp4/id00012/21Uxsk56VDQ/00001.mp4": None,
    "dev/mp4/id00012/21Uxsk56VDQ/00002.mp4": None,
    "dev/mp4/id00015/0fijmz4vTVU/00001.mp4": None,
    "test/mp4/id00017/01dfn2spqyE/00001.mp4": None,
    "test/mp4/id00017/01dfn2spqyE/1.mp4": None,  # bad utterance name
    "test/mp4/id00017/00001.mp4": None,  # no youtube folder
    "test/mp4/id00017/01dfn2spqyE/notes.txt": None,  # not media: no row
    "test/mp4/.DS_Store": None,
}


@pytest.fixture
def vox_root(tmp_path):
    return place(VOX_FILES, tmp_path / "vox")


def test_voxceleb2_labels_and_reasons(vox_root):
    clips = scan_voxceleb2(str(vox_root))
    assert len(clips) == 6  # one row per .mp4
    usable = {c.clip_id: c for c in clips if c.usable}
    assert set(usable) == {
        "voxceleb2-dev-mp4-id00012-21Uxsk56VDQ-00001",
        "voxceleb2-dev-mp4-id00012-21Uxsk56VDQ-00002",
        "voxceleb2-dev-mp4-id00015-0fijmz4vTVU-00001",
        "voxceleb2-test-mp4-id00017-01dfn2spqyE-00001",
    }
    first = usable["voxceleb2-dev-mp4-id00012-21Uxsk56VDQ-00001"]
    assert (first.speaker, first.split, first.emotion, first.intensity) == (
        "id00012",
        "train",
        None,
        None,
    )
    assert first.path == str(vox_root / next(iter(VOX_FILES)))
    assert usable["voxceleb2-test-mp4-id00017-01dfn2spqyE-00001"].split == "test"
    reasons = sorted(c.reason for c in clips if not c.usable)
    assert reasons == ["bad_layout", "bad_name"]


@pytest.mark.parametrize(
    ("sub", "split"),
    [
        ("", None),
        ("dev", "train"),
        ("dev/mp4", "train"),
        ("test/mp4", "test"),
        ("dev/mp4/id00012", "train"),
    ],
)
def test_voxceleb2_root_variants_give_the_same_ids(vox_root, sub, split):
    whole = {c.clip_id: c for c in scan_voxceleb2(str(vox_root)) if c.usable}
    part = [c for c in scan_voxceleb2(str(vox_root / sub)) if c.usable]
    assert part and all(c.clip_id in whole for c in part)
    for clip in part:
        assert clip.split == whole[clip.clip_id].split
        assert split is None or clip.split == split


def test_voxceleb2_without_partition_folder(tmp_path):
    root = place({"mp4/id00001/abcdefghijk/00001.mp4": None}, tmp_path / "myvox")
    (clip,) = scan_voxceleb2(str(root))
    assert clip.usable and clip.split is None
    assert clip.clip_id == "voxceleb2-id00001-abcdefghijk-00001"


def test_voxceleb2_ids_without_mp4_folder_match_the_canonical_layout(tmp_path):
    root = place({"dev/id00001/abcdefghijk/00001.mp4": None}, tmp_path / "vox")
    (clip,) = scan_voxceleb2(str(root / "dev"))
    assert clip.clip_id == "voxceleb2-dev-mp4-id00001-abcdefghijk-00001"


# --- MEAD ------------------------------------------------------------------------------

MEAD_FILES = {
    "M003/video/front/angry/level_1/001.mp4": None,
    "M003/audio/angry/level_1/001.m4a": None,
    "M003/video/top/fear/level_2/003.mp4": None,
    "M003/audio/fear/level_2/003.m4a": None,
    "M003/video/front/neutral/level_1/002.mp4": None,
    "M003/audio/neutral/level_1/002.m4a": None,
    "M003/video/left_60/angry/level_1/001.mp4": None,  # excluded view
    "M003/video/right_60/angry/level_1/001.mp4": None,  # excluded view
    "W009/video/front/happy/level_3/001.mp4": None,  # no audio
    "W009/video/front/joyful/level_1/001.mp4": None,  # unknown emotion
    "W009/video/front/happy/level_4/001.mp4": None,  # unknown level
    "W009/video/back/happy/level_1/001.mp4": None,  # unknown view
    "W009/video/front/happy/level_1/clip.mp4": None,  # bad file name
    "X1/video/front/happy/level_1/001.mp4": None,  # bad speaker
    "W009/video/front/happy/001.mp4": None,  # level folder missing
    "W009/audio/sad/level_1/009.m4a": None,  # audio without video: no row
}


def test_mead_labels_audio_and_reasons(tmp_path):
    root = place(MEAD_FILES, tmp_path / "MEAD")
    clips = {c.clip_id: c for c in scan_mead(str(root))}
    assert len(clips) == sum(rel.endswith(".mp4") for rel in MEAD_FILES)  # no rows for .m4a
    angry = clips["mead-M003-video-front-angry-level_1-001"]
    assert angry.usable
    assert (angry.speaker, angry.view, angry.emotion) == ("M003", "front", "angry")
    assert angry.intensity == pytest.approx(1 / 3)
    assert angry.audio_path == str(root / "M003/audio/angry/level_1/001.m4a")
    fear = clips["mead-M003-video-top-fear-level_2-003"]
    assert (fear.emotion, fear.intensity, fear.view) == ("fearful", pytest.approx(2 / 3), "top")
    assert clips["mead-M003-video-front-neutral-level_1-002"].intensity == 0.0

    excluded = clips["mead-M003-video-left_60-angry-level_1-001"]
    assert excluded.reason == "excluded_view" and excluded.emotion == "angry"
    assert clips["mead-M003-video-right_60-angry-level_1-001"].reason == "excluded_view"
    reasons = {
        "mead-W009-video-front-happy-level_3-001": "missing_audio",
        "mead-W009-video-front-joyful-level_1-001": "unknown_emotion",
        "mead-W009-video-front-happy-level_4-001": "unknown_level",
        "mead-W009-video-back-happy-level_1-001": "unknown_view",
        "mead-W009-video-front-happy-level_1-clip": "bad_name",
        "mead-X1-video-front-happy-level_1-001": "bad_name",
        "mead-W009-video-front-happy-001": "bad_layout",
    }
    assert {k: clips[k].reason for k in reasons} == reasons


def test_mead_root_at_a_speaker_folder(tmp_path):
    root = place(MEAD_FILES, tmp_path / "MEAD")
    whole = {c.clip_id: c for c in scan_mead(str(root))}
    for clip in scan_mead(str(root / "M003")):
        assert clip.reason == whole[clip.clip_id].reason
        assert clip.audio_path == whole[clip.clip_id].audio_path


# --- RAVDESS ---------------------------------------------------------------------------

RAVDESS_FILES = {
    "Actor_01/01-01-01-01-01-01-01.mp4": None,  # neutral speech
    "Actor_01/01-01-07-02-02-01-01.mp4": None,  # disgust, strong
    "Actor_01/01-01-03-01-01-02-01.mp4": None,  # happy, normal
    "Actor_01/02-01-03-01-01-02-01.mp4": None,  # video only
    "Actor_01/03-01-03-01-01-02-01.mp4": None,  # audio only
    "Actor_01/01-02-03-01-01-02-01.mp4": None,  # song
    "Actor_01/01-01-09-01-01-01-01.mp4": None,  # emotion 09
    "Actor_01/01-01-01-02-01-01-01.mp4": None,  # neutral has no strong intensity
    "Actor_01/01-01-03-01-01-01-02.mp4": None,  # actor 02 in Actor_01
    "Actor_01/happy.mp4": None,
    "stray/01-01-03-01-01-01-01.mp4": None,  # outside an actor folder
}


def test_ravdess_labels_and_reasons(tmp_path):
    root = place(RAVDESS_FILES, tmp_path / "RAVDESS")
    clips = _by_name(scan_ravdess(str(root)))
    assert len(clips) == len(RAVDESS_FILES)
    neutral = clips["01-01-01-01-01-01-01.mp4"]
    assert neutral.usable and neutral.clip_id == "ravdess-Actor_01-01-01-01-01-01-01-01"
    assert (neutral.speaker, neutral.emotion, neutral.intensity) == ("Actor_01", "neutral", 0.0)
    assert clips["01-01-07-02-02-01-01.mp4"].emotion == "disgusted"
    assert clips["01-01-07-02-02-01-01.mp4"].intensity == 1.0
    assert clips["01-01-03-01-01-02-01.mp4"].intensity == 0.5
    reasons = {
        "02-01-03-01-01-02-01.mp4": "video_only",
        "03-01-03-01-01-02-01.mp4": "audio_only",
        "01-02-03-01-01-02-01.mp4": "song",
        "01-01-09-01-01-01-01.mp4": "unknown_code",
        "01-01-01-02-01-01-01.mp4": "unknown_code",
        "01-01-03-01-01-01-02.mp4": "bad_name",
        "happy.mp4": "bad_name",
        "01-01-03-01-01-01-01.mp4": "bad_layout",
    }
    assert {k: clips[k].reason for k in reasons} == reasons
    assert clips["01-02-03-01-01-02-01.mp4"].emotion == "happy"  # labels kept on song rows


def test_duplicate_ids_get_a_reason(tmp_path):
    root = place(
        {
            "a/Actor_01/01-01-03-01-01-01-01.mp4": None,
            "b/Actor_01/01-01-03-01-01-01-01.mp4": None,
        },
        tmp_path / "RAVDESS",
    )
    first, second = scan_ravdess(str(root))
    assert first.clip_id == second.clip_id
    assert first.usable and second.reason == "duplicate_id"
    assert second.detail == f"{second.path} has the clip id of {first.path}"


# --- clip ids and paths that are not files ---------------------------------------------


def test_clip_ids_keep_plain_paths_and_separate_paths_slugging_would_merge():
    # a path the slug renders exactly keeps its plain id
    assert make_clip_id("mead", "M003/video/front/angry/level_1/001.mp4") == (
        "mead-M003-video-front-angry-level_1-001"
    )
    a = make_clip_id("hdtf", "Ünï cødé Vd.mp4")
    b = make_clip_id("hdtf", "Ñnï cødé Vd.mp4")
    assert a != b
    assert a.startswith("hdtf-Uni_c_de_Vd-") and b.startswith("hdtf-Nni_c_de_Vd-")
    assert make_clip_id("hdtf", "a.b.mp4") != make_clip_id("hdtf", "a_b.mp4") == "hdtf-a_b"
    # stable: the NFD spelling of the same name (as macOS writes it) gives the same id
    assert make_clip_id("hdtf", unicodedata.normalize("NFD", "Ünï cødé Vd.mp4")) == a


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=2, max_size=2, unique=True))
def test_distinct_names_give_distinct_valid_ids(names):
    names = [unicodedata.normalize("NFC", n.replace("/", "").replace("\\", "")) for n in names]
    if len(set(names)) < 2 or not all(names):
        return
    ids = [make_clip_id("x", f"d/{n}.mp4") for n in names]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
    assert ids[0] != ids[1]


def test_non_ascii_names_are_both_kept(tmp_path):
    root = place({"Ünï cødé Vd.mp4": None, "Ñnï cødé Vd.mp4": None}, tmp_path / "hdtf")
    clips = scan_hdtf(str(root))  # neither parses, each still its own row
    assert len({c.clip_id for c in clips}) == 2
    assert [c.reason for c in clips] == ["bad_name", "bad_name"]


def test_every_path_named_like_a_clip_gets_a_row(tmp_path):
    root = place({"Actor_01/01-01-03-01-01-01-01.mp4": None}, tmp_path / "RAVDESS")
    actor = root / "Actor_01"
    (actor / "01-01-03-01-01-02-01.mp4").mkdir()  # a folder named like a clip
    (actor / "01-01-03-01-01-02-01.mp4" / "inner.txt").write_text("x")
    (actor / "01-01-03-02-01-01-01.mp4").symlink_to(actor / "gone.mp4")  # target missing
    (actor / "01-01-03-02-01-02-01.mp4").symlink_to(actor / "01-01-03-02-01-02-01.mp4")  # loop
    (actor / "01-01-04-01-01-01-01.mp4").symlink_to(actor / "01-01-03-01-01-01-01.mp4")  # fine
    (actor / "up").symlink_to(root)  # a folder link: listed, never descended
    clips = {c.path.rsplit("/", 1)[-1]: c for c in scan_ravdess(str(root))}
    assert len(clips) == 5
    folder = clips["01-01-03-01-01-02-01.mp4"]
    assert folder.reason == "not_a_file" and "is a folder" in folder.detail
    assert folder.clip_id == "ravdess-Actor_01-01-01-03-01-01-02-01"  # labels still parsed
    missing = clips["01-01-03-02-01-01-01.mp4"]
    assert missing.reason == "broken_link" and "gone.mp4" in missing.detail
    assert "does not exist" in missing.detail
    looping = clips["01-01-03-02-01-02-01.mp4"]
    assert looping.reason == "broken_link" and "loops" in looping.detail
    assert clips["01-01-04-01-01-01-01.mp4"].usable and clips["01-01-03-01-01-01-01.mp4"].usable


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_rejected_row_says_why(tmp_path, dataset):
    """Every corpus: a folder named like a clip and a broken link get rows with a detail, and
    every rejected row of the corpus's fixture tree carries a detail."""
    suffix = {"cremad": "flv"}.get(dataset, "mp4")
    where = {"cremad": "VideoFlash/", "ravdess": "Actor_01/"}.get(dataset, "")
    root = tmp_path / dataset
    (root / f"{where}x1.{suffix}").mkdir(parents=True)
    (root / f"{where}x2.{suffix}").symlink_to(root / "nowhere")
    place({f"{where}bad name.{suffix}": None, f"elsewhere/deep/x/y/z/1.{suffix}": None}, root)
    clips = CORPORA[dataset].scan(str(root))
    assert len(clips) == 4
    reasons = {c.path.rsplit("/", 1)[-1]: c.reason for c in clips}
    assert reasons[f"x1.{suffix}"] == "not_a_file" and reasons[f"x2.{suffix}"] == "broken_link"
    assert all(not c.usable and c.detail for c in clips)


# --- splits ----------------------------------------------------------------------------


def _clips(dataset: str, n_speakers: int, per_speaker: int = 3, split=None) -> list[Clip]:
    return [
        Clip(f"{dataset}-s{s:03d}-{i}", dataset, f"s{s:03d}", f"/x/{s}/{i}.mp4", split=split)
        for s in range(n_speakers)
        for i in range(per_speaker)
    ]


def _speaker_splits(clips: list[Clip]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for c in clips:
        out.setdefault((c.dataset, c.speaker), set()).add(c.split)
    return out


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 1000),
    train=st.sampled_from([0.8, 0.6, 0.34, 1.0]),
)
def test_splits_speaker_disjoint_and_deterministic(n, seed, train):
    config = IndexConfig(train=train, val=(1 - train) / 2, test=(1 - train) / 2, seed=seed)
    clips = _clips("mead", n)
    out = assign_splits(clips, config)
    assert all(len(s) == 1 for s in _speaker_splits(out).values())
    shuffled = clips[:]
    random.Random(seed).shuffle(shuffled)
    again = {c.clip_id: c.split for c in assign_splits(shuffled, config)}
    assert again == {c.clip_id: c.split for c in out}
    assert assign_splits(out, config) == out  # assigning twice changes nothing


def _speaker_split(clips: list[Clip]) -> dict[tuple[str, str], str]:
    return {(c.dataset, c.speaker): c.split for c in clips if c.usable}


def test_hashed_fractions_hold_in_expectation():
    out = _speaker_split(assign_splits(_clips("mead", 3000, per_speaker=1), IndexConfig()))
    shares = {s: sum(v == s for v in out.values()) / len(out) for s in ("train", "val", "test")}
    # binomial standard deviation at n = 3000 is under 0.008
    assert shares == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1}, abs=0.03)
    reseeded = _speaker_split(
        assign_splits(_clips("mead", 3000, per_speaker=1), IndexConfig(seed=1))
    )
    assert reseeded != out


@settings(max_examples=40, deadline=None)
@given(
    dataset=st.sampled_from(["mead", "voxceleb2"]),
    before=st.sets(st.integers(0, 400), max_size=40),
    after=st.sets(st.integers(0, 400), max_size=40),
    pin=st.sets(st.integers(0, 400), max_size=10),
)
def test_growing_shrinking_or_renaming_moves_no_speaker(dataset, before, after, pin):
    """The corpus changes from `before` to `after` speakers (some added, some removed, which is
    also what renaming is): every speaker in both keeps its split, pinned ones too."""

    def clips(speakers):
        partition = "train" if dataset == "voxceleb2" else None
        return [
            Clip(f"{dataset}-s{s}-0", dataset, f"s{s:03d}", f"/x/{s}.mp4", split=partition)
            for s in sorted(speakers)
        ]

    table = {(dataset, f"s{s:03d}"): "test" for s in pin}
    old = _speaker_split(assign_splits(clips(before), IndexConfig(), table))
    new = _speaker_split(assign_splits(clips(after), IndexConfig(), table))
    assert {k: old[k] for k in old.keys() & new.keys()} == {
        k: new[k] for k in old.keys() & new.keys()
    }


def test_pinned_table_wins_and_leaves_the_others_alone():
    clips = _clips("mead", 30) + [
        Clip("voxceleb2-t0", "voxceleb2", "id00001", "/x/t.mp4", split="test"),
        Clip("voxceleb2-d0", "voxceleb2", "id00002", "/x/d.mp4", split="train"),
    ]
    hashed = _speaker_split(assign_splits(clips, IndexConfig()))
    table = {
        ("mead", "s000"): "test",
        ("mead", "s001"): "val",
        ("voxceleb2", "id00001"): "train",  # over the corpus partition too
        ("mead", "gone"): "val",  # a speaker this corpus lacks: ignored
    }
    pinned = _speaker_split(assign_splits(clips, IndexConfig(), table))
    assert {k: pinned[k] for k in table if k in pinned} == {
        k: v for k, v in table.items() if k[1] != "gone"
    }
    assert {k: v for k, v in pinned.items() if k not in table} == {
        k: v for k, v in hashed.items() if k not in table
    }
    assert hashed[("voxceleb2", "id00001")] == "test"


def test_balanced_table_has_exact_fractions_and_keeps_pinned_rows(tmp_path):
    assert split_counts(100, (0.8, 0.1, 0.1)) == [80, 10, 10]
    assert split_counts(3, (0.8, 0.1, 0.1)) == [1, 1, 1]  # every split gets a speaker
    assert split_counts(2, (0.8, 0.1, 0.1)) == [2, 0, 0]
    assert split_counts(7, (1.0, 0.0, 0.0)) == [7, 0, 0]
    clips = _clips("ravdess", 24)
    table = balanced_table(clips, IndexConfig())
    assert sorted(Counter(table.values()).items()) == [("test", 2), ("train", 19), ("val", 3)]
    # the order splits had before they were hashed: speakers by hash, cut train | val | test
    order = sorted(table, key=lambda k: speaker_position(*k, 0))
    assert [table[k] for k in order] == ["train"] * 19 + ["val"] * 3 + ["test"] * 2
    small = balanced_table(_clips("mead", 3), IndexConfig())
    assert sorted(small.values()) == ["test", "train", "val"]
    # rows already pinned stay, absent speakers' rows included; the rest fill the shares
    pinned = {("ravdess", "s000"): "test", ("ravdess", "s001"): "test", ("mead", "x"): "val"}
    again = balanced_table(clips, IndexConfig(), pinned)
    assert {k: again[k] for k in pinned} == pinned
    ravdess = Counter(v for (d, _), v in again.items() if d == "ravdess")
    assert ravdess == {"train": 19, "val": 3, "test": 2}
    path = str(tmp_path / "splits.csv")
    write_split_table(again, path)
    assert read_split_table(path) == again
    assert (tmp_path / "splits.csv").read_text().splitlines()[:2] == [
        "dataset,speaker,split",
        "mead,x,val",
    ]
    grown = clips + _clips("ravdess", 30)[len(clips) :]  # 6 speakers more, table unchanged
    assert _speaker_split(assign_splits(grown, IndexConfig(), again)) == {
        **_speaker_split(assign_splits(clips, IndexConfig(), again)),
        **_speaker_split(assign_splits(grown[len(clips) :], IndexConfig())),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("speaker,split\n", "first line must be dataset,speaker,split"),
        ("dataset,speaker,split\nmead,M003,holdout\n", "line 2: expected dataset,speaker,split"),
        ("dataset,speaker,split\nmead,M003\n", "line 2"),
        ("dataset,speaker,split\nmead,M003,val\nmead,M003,test\n", "line 3: mead/M003 pinned"),
    ],
)
def test_malformed_split_table_names_the_line(tmp_path, text, message):
    path = tmp_path / "splits.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_split_table(str(path))


def test_empty_splits_are_reported_per_dataset():
    clips = assign_splits(_clips("hdtf", 2) + _clips("mead", 200), IndexConfig())
    table = {("hdtf", "s000"): "train", ("hdtf", "s001"): "train"}
    clips = assign_splits(clips, IndexConfig(), table)
    assert empty_splits(clips, IndexConfig()) == {"hdtf": ["val", "test"]}
    # VoxCeleb2's dev speakers can only be train or val: no test partition is not "missing"
    vox = [Clip("voxceleb2-a", "voxceleb2", "id00001", "/a.mp4", split="train")]
    vox = assign_splits(vox, IndexConfig(), {("voxceleb2", "id00001"): "train"})
    assert empty_splits(vox, IndexConfig()) == {"voxceleb2": ["val"]}
    assert empty_splits(vox, IndexConfig(train=1.0, val=0.0, test=0.0)) == {}


def test_voxceleb2_partition_kept_unless_configured():
    clips = _clips("voxceleb2", 20, split="train") + [
        dataclasses.replace(c, clip_id=c.clip_id + "t", speaker="t" + c.speaker, split="test")
        for c in _clips("voxceleb2", 4)
    ]
    out = assign_splits(clips, IndexConfig())
    dev = {c.split for c in out if not c.speaker.startswith("t")}
    assert dev == {"train", "val"}
    assert {c.split for c in out if c.speaker.startswith("t")} == {"test"}
    # without the partition, VoxCeleb2 is split like any corpus: as if the scanner had not said
    ignore = IndexConfig(voxceleb2_own_splits=False)
    mixed = assign_splits(clips, ignore)
    unmarked = [dataclasses.replace(c, split=None) for c in clips]
    assert mixed == assign_splits(unmarked, ignore)
    assert {c.split for c in mixed} == {"train", "val", "test"}


def test_rejected_clips_get_no_split():
    clips = _clips("mead", 5)
    clips[0] = dataclasses.replace(clips[0], reason="excluded_view")
    out = assign_splits(clips, IndexConfig())
    assert out[0].split is None and all(c.split for c in out[1:])


def test_index_config_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        IndexConfig(train=0.8, val=0.3, test=0.1)
    with pytest.raises(ValueError, match="probe_workers"):
        IndexConfig(probe_workers=0)


# --- probing, corpora, manifest ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "text.mp4").write_text("no video here")
    return {
        "av": write_tiny_video(d / "av.mp4"),
        "silent": write_tiny_video(d / "silent.mp4", audio=False),
        "m4a": tiny_m4a(d / "a.m4a"),
        "text": d / "text.mp4",
    }


def test_probe_fills_fps_and_records_bad_files(tmp_path, tiny):
    ravdess = place(
        {
            "Actor_01/01-01-03-01-01-01-01.mp4": tiny["av"],
            "Actor_01/01-01-03-01-01-02-01.mp4": tiny["silent"],
            "Actor_01/01-01-03-02-01-01-01.mp4": None,
            "Actor_01/01-01-03-02-01-02-01.mp4": tiny["text"],
            "Actor_01/01-02-03-02-01-02-01.mp4": tiny["text"],  # song: not probed
        },
        tmp_path / "ravdess",
    )
    mead = place(
        {
            "M003/video/front/happy/level_1/001.mp4": tiny["silent"],
            "M003/audio/happy/level_1/001.m4a": tiny["m4a"],
        },
        tmp_path / "mead",
    )
    clips = scan_corpora(CorporaConfig(mead=str(mead), ravdess=str(ravdess)))
    probed = {c.clip_id: c for c in probe_clips(clips, workers=2)}
    assert [c.clip_id for c in clips] == list(probed)  # order kept
    ok = probed["ravdess-Actor_01-01-01-03-01-01-01-01"]
    assert ok.usable and ok.fps == 25.0 and ok.duration == pytest.approx(0.4)
    assert probed["mead-M003-video-front-happy-level_1-001"].usable  # audio in the .m4a
    reasons = {
        "ravdess-Actor_01-01-01-03-01-01-02-01": "no_audio",
        "ravdess-Actor_01-01-01-03-02-01-01-01": "empty_file",
        "ravdess-Actor_01-01-01-03-02-01-02-01": "unreadable",
        "ravdess-Actor_01-01-02-03-02-01-02-01": "song",
    }
    assert {k: probed[k].reason for k in reasons} == reasons


def test_missing_corpus_root_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpora\.mead"):
        scan_corpora(CorporaConfig(mead=str(tmp_path / "nope")))


@pytest.mark.parametrize(
    ("files", "found"),
    [
        ({}, "found no file at all"),
        ({"README.txt": None}, r"found 1 files \(1 \.txt; e\.g\. README\.txt\)"),
        # another corpus's tree: media files, none where MEAD puts them
        (
            {"Actor_01/01-01-03-01-01-01-01.mp4": None, "Actor_02/01-01-03-01-01-01-02.mp4": None},
            r"found 2 files \(2 \.mp4; e\.g\. Actor_01/01-01-03-01-01-01-01\.mp4: not",
        ),
    ],
)
def test_root_without_a_file_of_its_layout_is_an_error(tmp_path, files, found):
    root = place(files, tmp_path / "mead")
    root.mkdir(exist_ok=True)
    with pytest.raises(CorpusLayoutError) as error:
        scan_corpora(CorporaConfig(mead=str(root)))
    message = str(error.value)
    assert message.startswith("corpus mead: no media file of its layout below")
    assert CORPORA["mead"].layout in message and "\n" not in message
    assert re.search(found, message), message


def test_root_whose_files_are_all_rejected_but_in_layout_is_scanned(tmp_path):
    root = place({"Actor_01/01-02-03-01-01-01-01.mp4": None}, tmp_path / "ravdess")  # a song
    [clip] = scan_corpora(CorporaConfig(ravdess=str(root)))
    assert clip.reason == "song"


def test_manifest_round_trip(tmp_path):
    labelled = Clip(
        "mead-a",
        "mead",
        "M003",
        "/d/a.mp4",
        "/d/a.m4a",
        "happy",
        2 / 3,
        "front",
        "train",
        30.0,
        3.2,
    )
    clips = [labelled, Clip("ravdess-b", "ravdess", "Actor_01", "/d/b.mp4", reason="song")]
    path = tmp_path / "out" / "manifest.parquet"
    write_manifest(clips, str(path))
    assert read_manifest(str(path)) == clips
    write_manifest(clips[1:], str(path))  # an all-null column keeps its type
    assert read_manifest(str(path)) == clips[1:]
    assert not list(tmp_path.glob("out/*.tmp"))


def test_scan_and_probe_through_a_url(tiny):
    """Any fsspec URL works like a local root (memory:// here; s3:// needs s3fs installed)."""
    fs = fsspec.filesystem("memory")
    fs.pipe("/corpus/RAVDESS/Actor_05/01-01-04-02-01-01-05.mp4", tiny["av"].read_bytes())
    fs.pipe("/corpus/RAVDESS/Actor_05/01-02-04-02-01-01-05.mp4", b"")
    try:
        clips = scan_ravdess("memory://corpus/RAVDESS")
        assert [c.clip_id for c in clips] == [
            "ravdess-Actor_05-01-01-04-02-01-01-05",
            "ravdess-Actor_05-01-02-04-02-01-01-05",
        ]
        assert clips[0].path.startswith("memory://")
        probed = list(probe_clips(clips, workers=1))
        assert probed[0].usable and probed[0].fps == 25.0 and probed[0].emotion == "sad"
        assert probed[1].reason == "song"
    finally:
        fs.rm("/corpus", recursive=True)


def test_sample_clips_are_the_usable_clips_of_every_corpus_tree(sample_corpus, tmp_path):
    clips = sample_clips(str(sample_corpus))
    assert {c.dataset for c in clips} == set(DATASETS) and all(c.usable for c in clips)
    scanned = [c for name in DATASETS for c in CORPORA[name].scan(str(sample_corpus / name))]
    assert [c.clip_id for c in clips] == [c.clip_id for c in scanned if c.usable]
    assert len(clips) < len(scanned)  # the designed index rejects (song, excluded view, ...)
    assert sample_clips(str(tmp_path)) == []
