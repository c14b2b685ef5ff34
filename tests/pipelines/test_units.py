"""Unit planning, journal and commit rules of the extract job (plain files, no Ray)."""

from __future__ import annotations

import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipelines.units import (
    MARKER,
    Journal,
    Unit,
    clip_key,
    commit_unit,
    in_flight,
    is_committed,
    open_unit,
    plan_units,
    prune_units,
    save_record,
)
from space_data.clip import Clip
from space_data.record import ClipFeatures


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
    return ClipFeatures.failed(clip.clip_id, "no_frames: test record")


def _run_unit(tmp_path, unit: Unit, params: str) -> None:
    unit_dir = tmp_path / "units" / unit.unit_id
    reusable = open_unit(unit_dir, unit, params)
    Journal(unit_dir).append("open", params_hash=params, pid=1)
    rows = [
        reusable.get(c.clip_id) or save_record(unit_dir, unit, c, _features(c)) for c in unit.clips
    ]
    commit_unit(unit_dir, unit, params, rows)


def test_commit_marker_decides_what_reruns(tmp_path):
    clips = _corpus({"M003": 6})
    [unit] = plan_units(clips, 100)
    unit_dir = tmp_path / "units" / unit.unit_id
    _run_unit(tmp_path, unit, "p1")
    marker = json.loads((unit_dir / MARKER).read_text())
    assert marker["clips"] == [c.clip_id for c in clips]
    assert is_committed(unit_dir, unit, "p1")
    assert not is_committed(unit_dir, unit, "p2")  # other extraction params
    moved = [*clips[:-1], _clip("M003", 5, emotion="happy")]  # one manifest row changed
    [changed] = plan_units(moved, 100)
    assert not is_committed(unit_dir, changed, "p1")
    # only the changed clip is recomputed; the others are reused from the journal
    assert set(open_unit(unit_dir, changed, "p1")) == {c.clip_id for c in clips[:-1]}
    assert open_unit(unit_dir, changed, "p2") == {}
    assert sorted(p.name for p in unit_dir.iterdir()) == []  # other params: everything stale


def test_commit_removes_records_of_clips_that_left_the_unit(tmp_path):
    clips = _corpus({"M003": 5})
    [unit] = plan_units(clips, 100)
    _run_unit(tmp_path, unit, "p")
    smaller = Unit(unit.unit_id, unit.clips[:3])
    _run_unit(tmp_path, smaller, "p")
    names = sorted(p.name for p in (tmp_path / "units" / unit.unit_id).iterdir())
    assert names == sorted([MARKER, "_JOURNAL", *(f"{c.clip_id}.npz" for c in clips[:3])])


def test_in_flight_is_the_started_clip_without_done_after_the_last_open(tmp_path):
    clips = _corpus({"M003": 3})
    unit = Unit("u", tuple(clips))
    unit_dir = tmp_path / "units" / "u"
    open_unit(unit_dir, unit, "p")
    journal = Journal(unit_dir)
    journal.append("open", params_hash="p", pid=7)
    journal.append("start", clip_id=clips[0].clip_id, key=clip_key(clips[0]), pid=7)
    save_record(unit_dir, unit, clips[0], _features(clips[0]))
    assert in_flight(unit_dir) is None
    journal.append("start", clip_id=clips[1].clip_id, key=clip_key(clips[1]), pid=7)
    assert in_flight(unit_dir)["clip_id"] == clips[1].clip_id
    with open(journal.path, "a") as f:
        f.write('\n{"event": "do')  # an entry torn by a killed writer is skipped
    assert in_flight(unit_dir)["pid"] == 7
    journal.append("open", params_hash="p", pid=8)  # a new attempt settles the old one
    assert in_flight(unit_dir) is None


def test_prune_removes_units_no_longer_planned(tmp_path):
    units = plan_units(_corpus({"M003": 3, "W011": 3}), 100)
    for u in units:
        _run_unit(tmp_path, u, "p")
    assert prune_units(tmp_path, units[:1]) == [units[1].unit_id]
    assert [p.name for p in (tmp_path / "units").iterdir()] == [units[0].unit_id]
