"""`space filter` → `space pack` → `space report` through their click commands."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from pipelines import filter as filter_cmd
from pipelines import pack as pack_cmd
from pipelines import report as report_cmd
from space_data.clip import Clip
from space_data.record import ClipFeatures
from space_data.shards import open_shards, shard_urls
from space_data.testing.records import make_record, write_tables

PARAMS = """\
filter: {max_rotation_deg: 45.0}
pack: {max_shard_samples: 2}
report: {max_pose_clips: 10, n_examples: 3}
"""


def run(command, *args: str) -> str:
    result = CliRunner().invoke(command.cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture()
def made_data(tmp_path):
    """Manifest + features of 8 made clips: 5 clean, one turned 60°, one failed extraction,
    one rejected by the indexer."""
    records = [
        make_record("mead-a", split="train", max_yaw=10.0),
        make_record("mead-b", split="train", max_yaw=20.0, emotion="sad"),
        make_record("mead-c", split="test", max_yaw=10.0),
        make_record("ravdess-d", dataset="ravdess", split="test", max_yaw=35.0, emotion="calm"),
        make_record("voxceleb2-e", dataset="voxceleb2", split="val", emotion=None),
        make_record("voxceleb2-f", dataset="voxceleb2", split="train", emotion=None, max_yaw=60.0),
        ClipFeatures.failed("mead-g", "no_frames: nothing decoded",
                            meta={"dataset": "mead", "speaker": "S02", "emotion": "angry",
                                  "intensity": 1.0, "split": "val", "native_fps": 30.0}),
    ]  # fmt: skip
    rejected = [Clip("ravdess-h", "ravdess", "Actor_01", "/corpus/h.mp4", reason="song")]
    write_tables(records, tmp_path, rejected)
    (tmp_path / "params.yaml").write_text(PARAMS)
    return tmp_path


def paths(root):
    return {
        "manifest": str(root / "manifest.parquet"),
        "clips": str(root / "features" / "clips.parquet"),
        "features": str(root / "features"),
        "keep": str(root / "keep.parquet"),
        "shards": str(root / "shards"),
        "reports": str(root / "reports"),
        "params": str(root / "params.yaml"),
    }


def test_filter_pack_report(made_data):
    p = paths(made_data)
    out = run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
              "--params", p["params"])  # fmt: skip
    assert "5 of 8 clips kept" in out and "rotation" in out and "error:no_frames" in out
    keep = pd.read_parquet(p["keep"]).set_index("clip_id")
    assert keep.loc["voxceleb2-f", "reason"] == "rotation"
    assert keep.loc["mead-g", "reason"] == "error:no_frames"
    assert keep.loc["ravdess-h", "reason"] == "index:song"
    assert keep["keep"].sum() == 5

    pack_args = ["--keep", p["keep"], "--features", p["features"], "--out", p["shards"],
                 "--params", p["params"]]  # fmt: skip
    run(pack_cmd, *pack_args)
    index = json.loads((made_data / "shards" / "index.json").read_text())
    assert {s["name"]: s["samples"] for s in index["shards"]} == {
        "train-000000.tar": 2, "val-000000.tar": 1, "test-000000.tar": 2
    }  # fmt: skip
    first = {f.name: f.read_bytes() for f in (made_data / "shards").iterdir()}
    run(pack_cmd, *pack_args)
    assert {f.name: f.read_bytes() for f in (made_data / "shards").iterdir()} == first
    keys = [s["__key__"] for s in open_shards(shard_urls(p["shards"], "test"))]
    assert keys == ["mead-c", "ravdess-d"]

    run(report_cmd, "--manifest", p["manifest"], "--keep", p["keep"], "--features", p["features"],
        "--shards", p["shards"], "--out", p["reports"], "--params", p["params"])  # fmt: skip
    reports = made_data / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["clips_total"] == 8 and metrics["clips_kept"] == 5
    assert metrics["dropped_rotation"] == 1 and metrics["dropped_index_song"] == 1
    assert metrics["kept_test"] == 2 and metrics["shards"] == 3
    # test clips: max rotation 10° and 35° → one in <15°, one in 30–45°
    assert metrics["test_rotation_0_15_pct"] == 50.0 and metrics["test_rotation_30_45_pct"] == 50.0
    page = (reports / "report.html").read_text()
    for png in (
        "counts.png",
        "reasons.png",
        "pose.png",
        "rotation.png",
        "durations.png",
        "examples.png",
    ):
        assert (reports / "figures" / png).stat().st_size > 1000 and f'src="figures/{png}"' in page
    assert index["data_version"] in page


def test_filter_threshold_from_params(made_data):
    p = paths(made_data)
    (made_data / "params.yaml").write_text("filter: {max_rotation_deg: 30.0}\n")
    run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
        "--params", p["params"])  # fmt: skip
    keep = pd.read_parquet(p["keep"]).set_index("clip_id")
    assert keep.loc["ravdess-d", "reason"] == "rotation"  # 35° passes 45, not 30
    assert keep["keep"].sum() == 4


def test_missing_inputs_name_the_stage(tmp_path):
    (tmp_path / "p.yaml").write_text("filter: {}\n")
    result = CliRunner().invoke(filter_cmd.cli, ["--manifest", str(tmp_path / "m.parquet"),
                                                 "--params", str(tmp_path / "p.yaml")])  # fmt: skip
    assert result.exit_code == 1 and "run `space index` first" in result.output
