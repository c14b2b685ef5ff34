"""`space filter` → `space pack` → `space report` through their click commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipelines import filter as filter_cmd
from pipelines import pack as pack_cmd
from pipelines import report as report_cmd
from pipelines.report import collect_tables, compute_metrics
from pipelines.report_data import binned, corpora_in, rotation_shares
from pipelines.units import SUMMARY, clips_schema
from space_data.clip import Clip
from space_data.datasets import (
    DATASETS,
    CorporaConfig,
    IndexConfig,
    assign_splits,
    probe_clips,
    scan_corpora,
    write_manifest,
)
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.record import ClipFeatures, ClipMeta
from space_data.shards import open_shards, shard_urls
from space_data.synth.outcomes import outcome_mismatches
from space_data.synth.plan import DESIGNS
from space_data.testing.corpora import write_tiny_video
from space_data.testing.records import clip_of, make_record, write_tables

ROOT = Path(__file__).resolve().parents[2]

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
        ClipFeatures.failed(ClipMeta.of(Clip("mead-g", "mead", "S02", "/corpus/mead-g.mp4",
                                             emotion="angry", intensity=1.0, split="val"), "test"),
                            "no_frames: nothing decoded"),
    ]  # fmt: skip
    # the 60° clip also zooms and loses its face: it fails three rules, rotation first
    turned = records[5].stats
    turned.scale_max, turned.frames_no_face = 2.0, 10
    # a kept clip with two frames without a face (no pose): the pose histograms' n/a bin
    records[0].arrays["pose"][[3, 4]] = np.nan
    records[0].arrays["face"][[3, 4]] = 0
    records[0].stats.frames_no_face = 2
    rejected = [Clip("ravdess-h", "ravdess", "Actor_01", "/corpus/h.mp4", reason="song")]
    write_tables([clip_of(r) for r in records] + rejected, records, tmp_path)
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
    assert metrics["dropped_no_speech"] == 0 and metrics["dropped_av_offset"] == 0
    assert metrics["dropped_zoom"] == 0 and metrics["dropped_no_face"] == 0  # first reason only
    # every rule's hits: the turned clip counts under each rule it fails
    assert (metrics["fails_rotation"], metrics["fails_zoom"], metrics["fails_no_face"]) == (1, 1, 1)
    assert metrics["fails_cut"] == 0
    assert metrics["kept_test"] == 2 and metrics["shards"] == 3
    # per corpus, every registered one (0 without rows); kept + first reasons = total
    corpus = metrics["corpus"]
    assert set(corpus) == set(DATASETS)
    assert (corpus["mead"]["clips_total"], corpus["mead"]["clips_kept"]) == (4, 3)
    assert (corpus["ravdess"]["clips_total"], corpus["ravdess"]["clips_kept"]) == (2, 1)
    assert corpus["voxceleb2"]["fails_zoom"] == 1 and corpus["mead"]["fails_zoom"] == 0
    assert corpus["hdtf"]["clips_total"] == 0 and corpus["cremad"]["clips_kept"] == 0
    for counts in (metrics, *corpus.values()):
        dropped = sum(v for k, v in counts.items() if k.startswith("dropped_"))
        assert counts["clips_kept"] + dropped == counts["clips_total"]
    for key in metrics:  # the totals are the sums of the corpora
        if key.startswith(("clips_", "dropped_", "fails_", "kept_")) and key != "kept_fraction":
            assert metrics[key] == pytest.approx(sum(c.get(key, 0) for c in corpus.values()))
    # test clips: max rotation 10° and 35° → one in <15°, one in 30–45°
    assert metrics["test_rotation_0_15_pct"] == 50.0 and metrics["test_rotation_30_45_pct"] == 50.0
    assert metrics["test_rotation_unmeasured_pct"] == 0.0
    page = (reports / "report.html").read_text()
    assert "Clips failing each filter rule" in page and "No clip" not in page
    # the pose caption counts every frame of the kept clips, the 2 without a pose in n/a
    assert "of all 225 frames (30 fps timeline) of the 5 kept clips" in page
    assert "the 2 frames without a pose" in page
    for png in (
        "counts.png",
        "reasons.png",
        "pose.png",
        "rotation.png",
        "durations.png",
        "examples.png",
        "emotion_predicted.png",
        "emotion_confusion.png",
        "speech_offset.png",
        "sync_curves.png",
    ):
        assert (reports / "figures" / png).stat().st_size > 1000 and f'src="figures/{png}"' in page
    assert index["data_version"] in page


def test_metrics_count_the_extract_runs_faults(tmp_path):
    """metrics.json's `extract` block: worker deaths in total and by cause, unit retries,
    `worker_died` clips and storage retries of the last extract run (its extract_summary.json)."""
    from pipelines.extract import MEMORY_MONITOR, NODE_LOST, JobSummary

    record = make_record("mead-a")
    write_tables([clip_of(record)], [record], tmp_path)
    p = paths(tmp_path)
    deaths = {"t1": MEMORY_MONITOR, "t2": MEMORY_MONITOR, "t3": NODE_LOST}
    summary = JobSummary(deaths=deaths, retries=3, worker_died_clips=["x"], storage_retries=7)
    (Path(p["features"]) / SUMMARY).write_text(summary.to_json())
    run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"])
    run(report_cmd, "--manifest", p["manifest"], "--keep", p["keep"], "--features", p["features"],
        "--shards", p["shards"], "--out", p["reports"])  # fmt: skip
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["extract"] == {
        "worker_deaths": 3,
        "worker_deaths_killed_by_the_memory_monitor": 2,
        "worker_deaths_node_lost": 1,
        "unit_retries": 3,
        "worker_died_clips": 1,
        "storage_retries": 7,
    }


def test_truncated_file_is_dropped_and_counted(tmp_path):
    """`filter.drop_truncated` (default true): a file that stopped decoding is dropped as
    `truncated` and the report counts it; switched off, the same clip is kept."""
    whole, damaged = make_record("mead-whole"), make_record("mead-damaged")
    damaged.stats.truncated = True
    write_tables([clip_of(r) for r in (whole, damaged)], [whole, damaged], tmp_path)
    p = paths(tmp_path)
    (tmp_path / "params.yaml").write_text("filter: {}\n")  # the defaults
    out = run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
              "--params", p["params"])  # fmt: skip
    assert "1 of 2 clips kept" in out and "truncated" in out
    keep = pd.read_parquet(p["keep"])
    table = collect_tables(pd.read_parquet(p["manifest"]), keep, pd.read_parquet(p["clips"]))
    assert compute_metrics(table, None)["dropped_truncated"] == 1
    (tmp_path / "params.yaml").write_text("filter: {drop_truncated: false}\n")
    out = run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
              "--params", p["params"])  # fmt: skip
    assert "2 of 2 clips kept" in out


def _empty_run(root: Path, manifest: list[Clip], records: list[ClipFeatures]) -> str:
    """filter then report on tables with no kept clip; the report's output."""
    if records:
        write_tables(manifest, records, root)
    else:  # what extract writes with nothing to extract: the clips schema, no row
        (root / "features").mkdir(parents=True)
        write_manifest(manifest, str(root / "manifest.parquet"))
        pq.write_table(clips_schema().empty_table(), root / "features" / "clips.parquet")
    (root / "params.yaml").write_text(PARAMS)
    p = paths(root)
    run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
        "--params", p["params"])  # fmt: skip
    return run(report_cmd, "--manifest", p["manifest"], "--keep", p["keep"],
               "--features", p["features"], "--shards", p["shards"], "--out", p["reports"],
               "--params", p["params"])  # fmt: skip


@pytest.mark.parametrize(
    ("case", "note"),
    [
        ("no file", "No clips: the manifest holds no file"),
        ("none usable", "No usable clip: the indexer rejected all 2 files"),
        ("none kept", "No clip kept: all 2 clips were dropped"),
    ],
)
def test_an_empty_dataset_gives_a_report_that_says_so(tmp_path, case, note):
    song = Clip("ravdess-h", "ravdess", "Actor_01", "/corpus/h.mp4", reason="song")
    view = Clip("mead-v", "mead", "M003", "/corpus/v.mp4", reason="excluded_view")
    turned = make_record("mead-t", max_yaw=70.0)
    failed = ClipFeatures.failed(ClipMeta.of(Clip("mead-g", "mead", "S02", "/c/g.mp4"), "t"),
                                 "no_frames: nothing decoded")  # fmt: skip
    manifest, records = {
        "no file": ([], []),
        "none usable": ([song, view], []),
        "none kept": ([clip_of(turned), clip_of(failed)], [turned, failed]),
    }[case]
    out = _empty_run(tmp_path, manifest, records)
    assert note in out
    assert pd.read_parquet(tmp_path / "keep.parquet")["keep"].dtype == bool  # not float64
    page = (tmp_path / "reports" / "report.html").read_text()
    assert note in page
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["clips_kept"] == 0 and metrics["clips_total"] == len(manifest)
    assert metrics["kept_fraction"] == 0.0
    figures = sorted(f.name for f in (tmp_path / "reports" / "figures").iterdir())
    assert {"counts.png", "reasons.png", "pose.png", "durations.png"} <= set(figures)


def test_binned_counts_every_value_once():
    values = np.array([-120.0, -90.0, -45.0, 0.0, 89.0, 90.0, 91.0, np.nan, np.nan])
    counts = binned(values, -90.0, 90.0, 4)
    assert counts.tolist() == [1, 1, 1, 1, 2, 1, 2]  # below, 4 bins (90 in the last), above, n/a
    assert counts.sum() == len(values)


def test_rotation_shares_give_unmeasured_clips_their_own_bucket():
    clips = pd.DataFrame(
        {
            "max_abs_yaw": [10.0, 20.0, np.nan, 50.0],
            "max_abs_pitch": [1.0, np.nan, np.nan, 0.0],
            "max_abs_roll": [1.0, 1.0, np.nan, 0.0],
        }
    )
    assert rotation_shares(clips) == [25.0, 25.0, 0.0, 25.0, 25.0]


def test_report_refuses_rows_of_an_unregistered_corpus():
    table = pd.DataFrame({"dataset": ["mead", "youtube"], "reason": ["kept", "kept"]})
    with pytest.raises(ValueError, match=r"unregistered corpora \['youtube'\]"):
        corpora_in(table)


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


# --- the sample corpus, really extracted --------------------------------------------------------


def index_and_extract(corpora: CorporaConfig, root: Path, only: set[str] | None = None) -> None:
    """The index stage's calls, then the usable clips (those in `only`, when given) through one
    `ClipExtractor`; tables in `root` (manifest.parquet, features/) as the stages leave them."""
    clips = assign_splits(list(probe_clips(scan_corpora(corpora))), IndexConfig())
    extractor = ClipExtractor(ExtractConfig())
    try:
        records = [extractor(c) for c in clips if c.usable and (only is None or c.clip_id in only)]
    finally:
        extractor.close()
    write_tables(clips, records, root)
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())


def chosen_clips(truth: dict) -> set[str]:
    """Every clip of a special design, plus one plain clip of each corpus that has no special
    clip designed to be kept (RAVDESS, HDTF, CREMA-D): extraction is the slow part, more plain
    clips add nothing."""
    kept_special = {
        d["dataset"] for d in truth.values() if d["design"] != "keep" and d["outcome"] == "keep"
    }
    plain: dict[str, str] = {}
    for c, d in sorted(truth.items()):
        if d["design"] == "keep" and d["dataset"] not in kept_special:
            plain.setdefault(d["dataset"], c)
    return {c for c, d in truth.items() if d["design"] != "keep"} | set(plain.values())


@pytest.fixture(scope="session")
def sample_tables(sample_corpus, tmp_path_factory):
    """The sample corpus indexed, its `chosen_clips` extracted, and `space filter` run."""
    root = tmp_path_factory.mktemp("sample_tables")
    truth = json.loads((sample_corpus / "truth.json").read_text())
    corpora = CorporaConfig(**{d: str(sample_corpus / d) for d in DATASETS})
    index_and_extract(corpora, root, chosen_clips(truth))
    p = paths(root)
    run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
        "--params", p["params"])  # fmt: skip
    return root


@pytest.mark.slow
@pytest.mark.parametrize("design", list(DESIGNS))
def test_sample_corpus_designed_outcomes(sample_tables, sample_corpus, design):
    """Each designed clip is dropped for its designed reason (first reason), the others kept."""
    keep = pd.read_parquet(sample_tables / "keep.parquet")
    truth = json.loads((sample_corpus / "truth.json").read_text())
    assert len(keep) == len(truth)
    # the indexer derives each file's id as truth.json does (`<dataset>/<path in the corpus>`)
    for clip_id, path in zip(keep["clip_id"], keep["path"], strict=True):
        assert truth[clip_id]["path"] == str(Path(path).relative_to(sample_corpus))
    ids = {c for c in chosen_clips(truth) if truth[c]["design"] == design}
    if not ids:
        pytest.skip(f"the sample corpus has no {design} clip (hand photo absent?)")
    assert outcome_mismatches(truth, keep, only=ids) == {}


@pytest.mark.slow
def test_sample_corpus_report_covers_every_corpus(sample_tables):
    """Each registered corpus has kept sample clips: counted in metrics.json, drawn in the pose
    histograms (one outline per corpus)."""
    p = paths(sample_tables)
    run(report_cmd, "--manifest", p["manifest"], "--keep", p["keep"], "--features", p["features"],
        "--shards", p["shards"], "--out", p["reports"], "--params", p["params"])  # fmt: skip
    metrics = json.loads((sample_tables / "reports" / "metrics.json").read_text())
    for dataset in DATASETS:
        assert metrics["corpus"][dataset]["clips_kept"] >= 1, dataset
    page = (sample_tables / "reports" / "report.html").read_text()
    assert all(page.count(f"<th>{d}</th>") == 2 for d in DATASETS)  # both count tables


@pytest.mark.slow
def test_sample_corpus_packs_byte_identically(sample_tables):
    p = paths(sample_tables)
    tars = []
    for name in ("shards_a", "shards_b"):
        run(pack_cmd, "--keep", p["keep"], "--features", p["features"],
            "--out", str(sample_tables / name), "--params", p["params"])  # fmt: skip
        tars.append({f.name: f.read_bytes() for f in (sample_tables / name).iterdir()})
    assert tars[0] == tars[1]
    kept = pd.read_parquet(p["keep"]).query("keep")
    assert len(kept) >= 3
    index = json.loads(tars[0]["index.json"])
    assert index["totals"]["all"]["samples"] == len(kept)
    sample = next(iter(open_shards(shard_urls(sample_tables / "shards_a", "train"))))
    record = ClipFeatures.load_npz(
        sample_tables / "features" / "units" / "u0" / f"{sample['__key__']}.npz"
    )
    np.testing.assert_array_equal(sample["lm3d.npy"], record.arrays["lm3d"])
    assert sample["meta.json"]["clip_id"] == record.clip_id


def test_broken_files_end_with_reasons(tmp_path):
    """Empty and garbage files are rejected by the indexer's probe; a video without a face
    fails extraction; each keeps its reason through `space filter`."""
    speaker = tmp_path / "vox" / "dev" / "mp4" / "id00001"
    for name in ("aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"):
        (speaker / name).mkdir(parents=True)
    (speaker / "aaaaaaaaaaa" / "00001.mp4").write_bytes(b"")
    (speaker / "bbbbbbbbbbb" / "00001.mp4").write_bytes(b"not a video at all" * 100)
    write_tiny_video(speaker / "ccccccccccc" / "00001.mp4", n_frames=8, size=64)
    index_and_extract(
        CorporaConfig(voxceleb2=str(tmp_path / "vox"), mead=None, ravdess=None), tmp_path
    )
    p = paths(tmp_path)
    out = run(filter_cmd, "--manifest", p["manifest"], "--clips", p["clips"], "--out", p["keep"],
              "--params", p["params"])  # fmt: skip
    assert "0 of 3 clips kept" in out
    keep = pd.read_parquet(p["keep"])
    reasons = {
        Path(path).parent.name: reason
        for path, reason in zip(keep["path"], keep["reason"], strict=True)
    }
    assert reasons == {
        "aaaaaaaaaaa": "index:empty_file",
        "bbbbbbbbbbb": "index:unreadable",
        "ccccccccccc": "error:no_face",
    }
    # every rejected row says what exactly is wrong, for people
    details = dict(zip(keep["reason"], keep["detail"], strict=True))
    assert "is empty (0 bytes)" in details["index:empty_file"]
    assert "aaaaaaaaaaa/00001.mp4" in details["index:empty_file"]
    assert all(details.values())
