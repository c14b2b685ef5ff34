"""Unit planning, journal and commit rules of the extract job (plain files, no Ray)."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipelines.units import (
    CLIPS_TABLE,
    COMMITS,
    JOURNAL,
    UNITS,
    Journal,
    Unit,
    clip_key,
    clips_schema,
    commit_unit,
    committed_markers,
    in_flight,
    is_committed,
    open_unit,
    plan_units,
    resume_scan,
    save_record,
    unit_dir,
    write_clips_table,
)
from space_data import storage
from space_data.clip import Clip
from space_data.record import ClipFeatures, ClipMeta


def _clip(speaker: str, n: int, dataset: str = "mead", **fields) -> Clip:
    return Clip(
        f"{dataset}-{speaker}-{n:04d}",
        dataset,
        speaker,
        f"/x/{speaker}/{n}.mp4",
        split="train",
        **fields,
    )


def _corpus(per_speaker: dict[str, int]) -> list[Clip]:
    return [_clip(s, i) for s, n in per_speaker.items() for i in range(n)]


def _members(units: list[Unit]) -> dict[str, tuple[str, ...]]:
    return {u.unit_id: tuple(c.clip_id for c in u.clips) for u in units}


def test_plan_covers_every_usable_clip_once_grouped_by_speaker():
    clips = _corpus({"M003": 40, "W011": 25})
    clips.append(Clip("mead-M003-bad", "mead", "M003", "/x/bad.mp4", reason="excluded_view"))
    units = plan_units(list(reversed(clips)), clips_per_unit=4)
    ids = [c.clip_id for u in units for c in u.clips]
    assert sorted(ids) == sorted(c.clip_id for c in clips if c.usable)
    assert len(ids) == len(set(ids))
    for u in units:
        assert len({c.speaker for c in u.clips}) == 1
        assert len(u.clips) >= 1
    assert plan_units(clips, 4) == units  # input order does not matter


@settings(max_examples=30, deadline=None)
@given(st.sets(st.integers(0, 400), min_size=1, max_size=60), st.integers(0, 400))
def test_adding_a_clip_changes_at_most_two_units(existing, new):
    assume(new not in existing)
    per_unit = 5
    clips = [_clip("id00012", n, dataset="voxceleb2") for n in sorted(existing)]
    before = _members(plan_units(clips, per_unit))
    after = _members(plan_units([*clips, _clip("id00012", new, dataset="voxceleb2")], per_unit))
    changed = {k for k in after if before.get(k) != after[k]}
    assert len(changed) <= 2
    removed = set(before) - set(after)
    assert not removed  # a unit keeps its name when a clip joins or splits it


def test_other_speakers_units_are_untouched_by_new_clips():
    clips = _corpus({"M003": 30, "W011": 30})
    before = _members(plan_units(clips, 4))
    after = _members(plan_units([*clips, *(_clip("M003", 100 + i) for i in range(5))], 4))
    w011 = {k: v for k, v in before.items() if "-W011-" in k}
    assert all(after[k] == v for k, v in w011.items())


def _features(clip: Clip) -> ClipFeatures:
    return ClipFeatures.failed(ClipMeta.of(clip, "p"), "no_frames: test record")


@pytest.fixture(params=["local", "s3"])
def features(request, tmp_path) -> str:
    """A features folder on local disk, or a prefix in a bucket of the moto S3 server: the
    commit protocol is the same on both (no rename on object storage)."""
    if request.param == "local":
        return str(tmp_path / "features")
    return request.getfixturevalue("s3_bucket") + "/features"


def _run_unit(features: str, unit: Unit, params: str) -> None:
    folder = unit_dir(features, unit.unit_id)
    reusable = open_unit(folder, unit, params)
    Journal(folder).append("open", params_hash=params, pid=1)
    rows = [
        reusable.get(c.clip_id) or save_record(folder, unit, c, _features(c)) for c in unit.clips
    ]
    commit_unit(folder, unit, params, rows)


def test_commit_marker_decides_what_reruns(features):
    clips = _corpus({"M003": 6})
    [unit] = plan_units(clips, 100)
    folder = unit_dir(features, unit.unit_id)
    _run_unit(features, unit, "p1")
    markers = committed_markers(features)
    assert markers == {unit.unit_id: unit.marker_name("p1")}
    marker = json.loads(storage.read_bytes(storage.join(features, COMMITS, markers[unit.unit_id])))
    assert marker["clips"] == [c.clip_id for c in clips]
    assert is_committed(folder, unit, "p1")
    assert not is_committed(folder, unit, "p2")  # other extraction params
    assert resume_scan(features, [unit], "p1").pending == []
    moved = [*clips[:-1], _clip("M003", 5, emotion="happy")]  # one manifest row changed
    [changed] = plan_units(moved, 100)
    assert not is_committed(folder, changed, "p1")
    # the scan drops the stale marker before the unit is rewritten: readers never trust it
    assert resume_scan(features, [changed], "p1").pending == [changed]
    assert committed_markers(features) == {}
    # only the changed clip is recomputed; the others are reused from the journal
    assert set(open_unit(folder, changed, "p1")) == {c.clip_id for c in clips[:-1]}
    assert open_unit(folder, changed, "p2") == {}
    assert storage.listdir(folder) == []  # other params: everything stale


def test_uncommitted_objects_are_ignored_and_cleaned_on_the_rerun(features):
    clips = _corpus({"M003": 4})
    [unit] = plan_units(clips, 100)
    folder = unit_dir(features, unit.unit_id)
    open_unit(folder, unit, "p")
    Journal(folder).append("open", params_hash="p", pid=1)
    save_record(folder, unit, clips[0], _features(clips[0]))
    storage.write_bytes(storage.join(folder, f"{clips[1].clip_id}.npz"), b"half")  # no `done`
    assert resume_scan(features, [unit], "p").pending == [unit]  # no marker: not committed
    write_clips_table(features, [unit], "p")
    assert (
        pq.read_table(io.BytesIO(storage.read_bytes(storage.join(features, CLIPS_TABLE)))).num_rows
        == 0
    )
    assert set(open_unit(folder, unit, "p")) == {clips[0].clip_id}
    assert storage.listdir(folder) == sorted([JOURNAL, f"{clips[0].clip_id}.npz"])


def test_commit_removes_records_of_clips_that_left_the_unit(features):
    clips = _corpus({"M003": 5})
    [unit] = plan_units(clips, 100)
    _run_unit(features, unit, "p")
    smaller = Unit(unit.unit_id, unit.clips[:3])
    resume_scan(features, [smaller], "p")
    _run_unit(features, smaller, "p")
    names = storage.listdir(unit_dir(features, unit.unit_id))
    assert names == sorted([JOURNAL, *(f"{c.clip_id}.npz" for c in clips[:3])])
    assert committed_markers(features) == {unit.unit_id: smaller.marker_name("p")}


def test_in_flight_is_the_started_clip_without_done_after_the_last_open(features):
    clips = _corpus({"M003": 3})
    unit = Unit("u", tuple(clips))
    folder = unit_dir(features, "u")
    open_unit(folder, unit, "p")
    journal = Journal(folder)
    journal.append("open", params_hash="p", pid=7)
    journal.append("start", clip_id=clips[0].clip_id, key=clip_key(clips[0]), pid=7)
    save_record(folder, unit, clips[0], _features(clips[0]))
    assert in_flight(folder) is None
    journal.append("start", clip_id=clips[1].clip_id, key=clip_key(clips[1]), pid=7)
    assert in_flight(folder)["clip_id"] == clips[1].clip_id
    torn = '{"event": "do'  # an entry torn by a killed writer is skipped
    if storage.is_remote(folder):
        storage.write_text(storage.join(journal.path, "99999999999999999999-0-0.json"), torn)
    else:
        with open(journal.path, "a") as f:
            f.write("\n" + torn)
    assert in_flight(folder)["pid"] == 7
    journal.append("open", params_hash="p", pid=8)  # a new attempt settles the old one
    assert in_flight(folder) is None


def test_resume_scan_removes_units_no_longer_planned(features):
    units = plan_units(_corpus({"M003": 3, "W011": 3}), 100)
    for u in units:
        _run_unit(features, u, "p")
    scan = resume_scan(features, units[:1], "p")
    assert scan.stale == [units[1].unit_id] and scan.pending == []
    assert storage.listdir(storage.join(features, UNITS)) == [units[0].unit_id]
    assert committed_markers(features) == {units[0].unit_id: units[0].marker_name("p")}


def test_clips_table_reuses_rows_of_unchanged_commits_and_reads_new_markers(features):
    units = plan_units(_corpus({"M003": 3, "W011": 3}), 100)
    _run_unit(features, units[0], "p")
    path = write_clips_table(features, units, "p")
    assert pq.read_table(io.BytesIO(storage.read_bytes(path))).num_rows == 3
    _run_unit(features, units[1], "p")
    table = pq.read_table(io.BytesIO(storage.read_bytes(write_clips_table(features, units, "p"))))
    assert table.num_rows == 6 and table.column("clip_id").to_pylist() == sorted(
        c.clip_id for u in units for c in u.clips
    )
    assert table.schema == clips_schema()


def test_a_marker_whose_records_were_deleted_commits_nothing(features):
    [unit] = plan_units(_corpus({"M003": 2}), 100)
    _run_unit(features, unit, "p")
    storage.remove_tree(storage.join(features, UNITS))  # "delete data/features/units"
    assert resume_scan(features, [unit], "p").pending == [unit]
    assert committed_markers(features) == {}
