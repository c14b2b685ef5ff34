"""`space extract` options and failures that need no Ray, RayConfig validation, and the
clips.parquet schema (manifest fields, outcome, location, every ClipStats field)."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipelines.extract import RayConfig, cli
from pipelines.units import (
    Journal,
    clips_schema,
    commit_unit,
    open_unit,
    plan_units,
    save_record,
    write_clips_table,
)
from space_data.clip import Clip
from space_data.config import ConfigError, from_mapping
from space_data.record import ClipFeatures, ClipMeta, ClipStats


def test_help_names_the_options():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for option in ("--manifest", "--out", "--params", "RAY_ADDRESS"):
        assert option in result.output


def test_missing_manifest_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["--manifest", str(tmp_path / "nope.parquet")])
    assert result.exit_code != 0
    assert "run `space index` first" in result.output


@pytest.mark.parametrize(
    "section",
    [
        {"cpus_per_worker": 0},
        {"clips_per_unit": 0},
        {"num_workers": 0},
        {"max_retries": -1},
        {"max_clip_deaths": 0},
        {"placement_timeout_s": 0},
        {"recycle_after_units": 0},
        {"gpus_per_worker": -1},
        {"actors": 2},
    ],
)
def test_bad_ray_params_fail_at_load(section):
    with pytest.raises(ConfigError, match="ray"):
        from_mapping(RayConfig, section, "ray")


def test_clips_table_has_the_contract_columns_sorted_by_clip_id(tmp_path):
    clips = [
        Clip(
            f"mead-M003-{n:03d}",
            "mead",
            "M003",
            f"/x/{n}.mp4",
            split="test",
            emotion="happy",
            intensity=0.5,
            view="front",
        )
        for n in (3, 1, 2)
    ]
    units = plan_units(clips, 1)
    for unit in units:
        unit_dir = tmp_path / "units" / unit.unit_id
        journal = Journal(unit_dir, "a1")
        open_unit(journal, unit, "p")
        journal.append("open", params_hash="p", pid=1)
        rows = [
            save_record(journal, unit, c, ClipFeatures.failed(ClipMeta.of(c, "p"), "no_frames: x"))
            for c in unit.clips
        ]
        commit_unit(unit_dir, unit, "p", rows)
    table = pq.read_table(write_clips_table(tmp_path, units, "p"))
    contract = [
        "clip_id",
        "dataset",
        "speaker",
        "split",
        "emotion",
        "intensity",
        "view",
        "path",
        "status",
        "reason",
        "unit",
        "record",
        "params_hash",
        "members_hash",
    ]
    stats = [f.name for f in dataclasses.fields(ClipStats)]
    assert table.column_names == contract + stats
    assert table.schema == clips_schema()
    rows = table.to_pylist()
    assert [r["clip_id"] for r in rows] == sorted(c.clip_id for c in clips)
    assert all(r["status"] == "error" and r["reason"] == "no_frames: x" for r in rows)
    assert all((tmp_path / r["record"]).is_file() for r in rows)
    write_clips_table(tmp_path, units, "other")
    assert pq.read_table(tmp_path / "clips.parquet").num_rows == 0  # other params: not committed
