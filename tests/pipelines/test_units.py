"""Unit planning, journal and commit rules of the extract job (plain files, no Ray)."""

from __future__ import annotations

import dataclasses
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
    UNRECORDED,
    Death,
    Journal,
    Unit,
    clips_schema,
    commit_unit,
    committed_markers,
    deaths,
    is_committed,
    open_unit,
    plan_units,
    resume_scan,
    save_record,
    unit_dir,
    write_clips_table,
)
from space_data import storage
from space_data.clip import EXTRACTION_FIELDS, Clip, clip_key
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


def _run_unit(features: str, unit: Unit, params: str) -> set[str]:
    """Process `unit` as the extract job's task does (records are failures: no media); the
    clips it computed."""
    journal = Journal(unit_dir(features, unit.unit_id), "a1")
    reusable = open_unit(journal, unit, params).reusable
    journal.append("open", params_hash=params, pid=1)
    rows = [
        reusable.get(c.clip_id) or save_record(journal, unit, c, _features(c)) for c in unit.clips
    ]
    commit_unit(journal.unit_dir, unit, params, rows)
    return {c.clip_id for c in unit.clips} - set(reusable)


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
    reused = open_unit(Journal(folder), changed, "p1").reusable
    assert set(reused) == {c.clip_id for c in clips[:-1]}
    assert open_unit(Journal(folder), changed, "p2").reusable == {}
    assert storage.listdir(folder) == []  # other params: everything stale


def test_uncommitted_objects_are_ignored_and_cleaned_on_the_rerun(features):
    clips = _corpus({"M003": 4})
    [unit] = plan_units(clips, 100)
    folder = unit_dir(features, unit.unit_id)
    journal = Journal(folder, "a1")
    open_unit(journal, unit, "p")
    journal.append("open", params_hash="p", pid=1)
    save_record(journal, unit, clips[0], _features(clips[0]))
    storage.write_bytes(storage.join(folder, f"{clips[1].clip_id}.npz"), b"half")  # no `done`
    assert resume_scan(features, [unit], "p").pending == [unit]  # no marker: not committed
    write_clips_table(features, [unit], "p")
    assert (
        pq.read_table(io.BytesIO(storage.read_bytes(storage.join(features, CLIPS_TABLE)))).num_rows
        == 0
    )
    assert set(open_unit(Journal(folder), unit, "p").reusable) == {clips[0].clip_id}
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


def test_deaths_are_read_per_attempt_whatever_the_pids_and_the_order(features):
    """Five attempts of one unit, their entries interleaved as writers on two nodes can leave
    them, one PID reused by the OS: `a` died with clip 1 in flight (the driver journaled the
    cause late, after `b` had begun), `b` died with no cause recorded (its driver died too),
    `c` was interrupted by the job, `d` died before opening the unit, `e` finished."""
    clips = _corpus({"M003": 3})
    unit = Unit("u", tuple(clips))
    folder = unit_dir(features, "u")
    a, b, c, d, e = (Journal(folder, name) for name in "abcde")
    ids, keys = [x.clip_id for x in clips], [clip_key(x) for x in clips]

    def start(journal: Journal, k: int, pid: int, node: str) -> None:
        journal.append("start", clip_id=ids[k], key=keys[k], pid=pid, node=node)

    a.append("open", params_hash="p", pid=7, node="n1")
    start(a, 0, 7, "n1")
    save_record(a, unit, clips[0], _features(clips[0]))
    start(a, 1, 7, "n1")
    b.append("open", params_hash="p", pid=7, node="n2")  # the same PID on another node
    start(b, 1, 7, "n2")
    Journal(folder, "a").append("died", cause="node lost")  # the driver, late
    c.append("open", params_hash="p", pid=8, node="n1")
    start(c, 1, 8, "n1")
    Journal(folder, "c").append("interrupted")
    d.append("died", cause="killed by the memory monitor")
    e.append("open", params_hash="p", pid=9, node="n1")
    for k in (1, 2):
        start(e, k, 9, "n1")
        save_record(e, unit, clips[k], _features(clips[k]))
    torn = '{"event": "do'  # an entry torn by a killed writer is skipped
    if storage.is_remote(folder):
        storage.write_text(storage.join(a.path, f"{99:020d}-x.json"), torn)
    else:
        with open(a.path, "a") as f:
            f.write("\n" + torn)
    assert deaths(Journal(folder).read()) == [
        Death("a", ids[1], keys[1], 7, "n1", "node lost"),
        Death("b", ids[1], keys[1], 7, "n2", UNRECORDED),
    ]
    opened = open_unit(Journal(folder), unit, "p")
    assert set(opened.reusable) == set(ids) and len(opened.deaths) == 2
    assert all(set(row) == {"clip_id", "key", "status", "reason", "record", "stats"}
               for row in opened.reusable.values())  # fmt: skip


def test_object_storage_journal_objects_are_named_by_the_units_sequence(s3_bucket):
    """One object per entry, named by the unit's own count (never a clock), so two writers on
    nodes whose clocks disagree still read back in the order they wrote."""
    folder = unit_dir(s3_bucket + "/features", "u")
    worker, driver = Journal(folder, "w1"), Journal(folder, "w1")
    worker.append("open", params_hash="p", pid=1)
    worker.append("start", clip_id="c", key="k", pid=1)
    driver.append("died", cause="x")
    names = storage.listdir(worker.path)
    assert [n.split("-")[0] for n in names] == [f"{i:020d}" for i in range(3)]
    assert [e["event"] for e in Journal(folder).read()] == ["open", "start", "died"]


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


def test_a_clip_field_extraction_does_not_read_recomputes_nothing(features):
    """A field added to `Clip`, or a changed fps / duration (header values extraction reads
    from the file itself), keeps every key, member hash and commit: nothing reruns."""
    extended = dataclasses.make_dataclass(
        "Extended", [("quality", float | None, None)], bases=(Clip,), slots=True
    )
    clips = _corpus({"M003": 4})
    [unit] = plan_units(clips, 100)
    assert _run_unit(features, unit, "p") == {c.clip_id for c in clips}
    grown = [
        dataclasses.replace(extended(**c.to_row(), quality=0.9), fps=30.0, duration=3.0)
        for c in clips
    ]
    [again] = plan_units(grown, 100)
    assert again.marker_name("p") == unit.marker_name("p")
    assert resume_scan(features, [again], "p").pending == []
    assert _run_unit(features, again, "p") == set()  # run anyway: every record reused


def test_every_field_extraction_reads_changes_the_key():
    clip = _clip("M003", 1, emotion="happy", intensity=0.5, view="front", audio_path="/x/a.m4a")
    changed = {
        "clip_id": "mead-M003-9999",
        "dataset": "ravdess",
        "speaker": "W011",
        "path": "/y/1.mp4",
        "audio_path": "/y/1.m4a",
        "emotion": "sad",
        "intensity": 1.0,
        "view": "top",
        "split": "val",
    }
    assert set(changed) == set(EXTRACTION_FIELDS)
    for name, value in changed.items():
        assert clip_key(dataclasses.replace(clip, **{name: value})) != clip_key(clip), name
    # what a record copies from the manifest row is in the key
    assert ClipMeta.of(clip, "p") == ClipMeta.of(dataclasses.replace(clip, fps=5.0), "p")
