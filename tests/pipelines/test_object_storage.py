"""The whole chain on object storage: a real S3-compatible server (moto, its own process on
127.0.0.1) holds the corpus (clips cut from the sample corpus) and every output. index →
extract (SIGKILLed after a commit, then resumed) → filter → pack → report → the training
loader, all with `s3://` paths; corpus GETs counted per clip from the server's request log;
shards byte-identical to local ones."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from pipelines import extract as extract_cmd
from pipelines import filter as filter_cmd
from pipelines import index as index_cmd
from pipelines import pack as pack_cmd
from pipelines import report as report_cmd
from pipelines.units import COMMITS, committed_markers, plan_units
from space_data import storage
from space_data.datasets import read_manifest
from space_data.shards import data_version
from space_models.data import eval_clips, missing_members
from tests.pipelines.clips import cut_clips, source_videos
from tests.pipelines.driver import kill_after_first_commit

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SPACE = Path(sys.executable).with_name("space")
# (speaker, partition, source video: a `source_videos` index, clip numbers): 4 clips of 1 s
# (clip n from second n - 1), 3 speakers
CORPUS = (
    ("id00001", "dev", 0, (1, 2)),
    ("id00002", "dev", 1, (1,)),
    ("id00003", "test", 0, (3,)),
)


@pytest.fixture(scope="module")
def s3_env(s3_server):
    """The AWS_* variables in this process before Ray starts, so Ray's workers inherit them."""
    saved = {k: os.environ.get(k) for k in s3_server.env}
    os.environ.update(s3_server.env)
    yield s3_server.env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def ray_address(s3_env):
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_corpus(sample_corpus, tmp_path_factory) -> Path:
    """The VoxCeleb2-layout corpus on local disk (to upload, and to pack locally)."""
    root = tmp_path_factory.mktemp("corpus") / "voxceleb2"
    sources = source_videos(sample_corpus)
    for speaker, partition, source, numbers in CORPUS:
        folder = root / partition / "mp4" / speaker / "vid"
        cut_clips(sources[source], {folder / f"{n:05d}.mp4": n - 1.0 for n in numbers}, 224)
    return root


def _params(tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["extract"]["audio"]["augmentations"] = 0
    params["index"]["splits_file"] = None  # the sample corpus's table: not this corpus
    params["ray"].update(clips_per_unit=1, num_workers=1)
    params["filter"]["min_duration"] = 0.5
    params["pack"]["max_shard_samples"] = 1
    params["report"] = {"max_pose_clips": 4, "n_examples": 2}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run(command, *args: str) -> str:
    result = CliRunner().invoke(command.cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_chain_on_object_storage(s3_server, s3_bucket, ray_address, local_corpus, tmp_path):
    os.chdir(tmp_path)  # nothing may land in a local folder named "s3:"
    bucket = s3_bucket
    corpus, data = f"{bucket}/corpus/voxceleb2", f"{bucket}/data"
    for path in storage.walk(str(local_corpus)):
        storage.write_bytes(storage.join(corpus, storage.relpath(path, str(local_corpus))),
                            Path(path).read_bytes())  # fmt: skip
    params = _params(tmp_path)
    manifest, features = f"{data}/manifest.parquet", f"{data}/features"

    run(index_cmd, "--corpus", f"voxceleb2={corpus}", "--out", manifest, "--params", params)
    clips = read_manifest(manifest)
    assert len(clips) == 4 and all(c.usable and c.path.startswith(corpus) for c in clips)
    units = plan_units(clips, 1)
    n_units = len(units)

    # extract as its own process, SIGKILLed once a unit has committed on object storage
    mark = len(s3_server.lines())
    command = [SPACE, "extract", "--manifest", manifest, "--out", features, "--params", params]
    env = dict(os.environ, RAY_ADDRESS=ray_address, PYTHONPATH=str(ROOT))
    log = tmp_path / "driver.log"
    kill_after_first_commit(command, features, env, tmp_path, log, timeout=180, poll=0.2)
    first = committed_markers(features)
    assert 1 <= len(first) < n_units, "the kill must land mid-run"
    assert not storage.exists(f"{features}/clips.parquet")

    resumed = len(s3_server.lines())
    out = run(extract_cmd, "--manifest", manifest, "--out", features, "--params", params)
    assert f"skipped {len(first)}" in out
    assert len(committed_markers(features)) == n_units
    # each corpus file downloaded at most once per clip extraction: once in total for clips
    # the resumed run extracted, and never again for those committed before the kill
    prefix = "/" + corpus.removeprefix("s3://")
    gets = Counter(s3_server.requests("GET", prefix, since=resumed))
    done_first = {c.path for u in units if u.unit_id in first for c in u.clips}
    for clip in clips:
        key = "/" + clip.path.removeprefix("s3://")
        assert gets[key] == (0 if clip.path in done_first else 1), (clip.path, gets)
    assert sum(Counter(s3_server.requests("GET", prefix, since=mark)).values()) <= len(clips) + 1
    table = storage.read_parquet(f"{features}/clips.parquet")
    assert (table["status"] == "ok").all(), table[["clip_id", "reason"]]
    assert len(storage.listdir(f"{features}/{COMMITS}")) == n_units

    keep, shards = f"{data}/keep.parquet", f"{data}/shards"
    run(filter_cmd, "--manifest", manifest, "--clips", f"{features}/clips.parquet",
        "--out", keep, "--params", params)  # fmt: skip
    kept = storage.read_parquet(keep)
    assert kept["keep"].sum() >= 2, kept[["clip_id", "reason"]]
    run(pack_cmd, "--keep", keep, "--features", features, "--out", shards, "--params", params)
    local = tmp_path / "local-shards"
    run(pack_cmd, "--keep", keep, "--features", features, "--out", local, "--params", params)
    names = sorted(p.name for p in local.iterdir())
    assert storage.listdir(shards) == names and {"index.json", "README.md"} <= set(names)
    for name in names:  # byte-identical to shards packed locally from the same inputs
        assert storage.read_bytes(f"{shards}/{name}") == (local / name).read_bytes(), name

    reports = f"{data}/reports"
    run(report_cmd, "--manifest", manifest, "--keep", keep, "--features", features,
        "--shards", shards, "--out", reports, "--params", params)  # fmt: skip
    metrics = json.loads(storage.read_bytes(f"{reports}/metrics.json"))
    assert metrics["clips_kept"] == kept["keep"].sum() and metrics["shards"] == len(names) - 2
    assert "counts.png" in storage.listdir(f"{reports}/figures")
    assert data_version(shards) in storage.read_text(f"{reports}/report.html")

    # the training loader reads the shards from object storage
    assert data_version(shards) == data_version(local)
    index = json.loads(storage.read_bytes(f"{shards}/index.json"))
    split = next(s["split"] for s in index["shards"])
    keys = [sample["key"] for sample in eval_clips(shards, split)]
    assert keys == [sample["key"] for sample in eval_clips(local, split)] and keys
    assert missing_members(shards, ("mfcc", "kp"), split) == ["kp"]
    assert not (tmp_path / "s3:").exists()
    assert set(pd.unique(kept["split"])) >= {split}
