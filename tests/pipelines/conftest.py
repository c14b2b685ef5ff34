"""Fixtures of the pipeline tests: short clips cut from the project's own sample corpus (extract
jobs: the Ray job, node loss, Ctrl-C and object-storage tests run on a fresh clone, no
realdata), and sample shards made by filter, pack and report from made records (loaders, data
card)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines import filter as filter_cmd
from pipelines import pack as pack_cmd
from pipelines import report as report_cmd
from space_data.clip import Clip, make_clip_id
from space_data.record import ClipFeatures, ClipMeta
from space_data.testing.records import clip_of, make_record, write_tables
from tests.conftest import built_once
from tests.pipelines.clips import cut_clips, source_videos


@pytest.fixture(scope="session")
def short_clips(sample_corpus, tmp_path_factory) -> list[Clip]:
    """Two one-second clips (25 fps, 256 px, with audio) from each of three sample videos; each
    video is one speaker, its clips in order (clip 2k, 2k+1 come from video k). Cut once per run
    (`built_once`)."""
    sources = source_videos(sample_corpus)
    names = [f"{s.parts[len(sample_corpus.parts)]}_{s.stem}" for s in sources]

    def cut(root: Path) -> None:
        for source, name in zip(sources, names):
            cut_clips(source, {root / name / "00.mp4": 0.0, root / name / "01.mp4": 1.0}, 256)

    root = built_once(tmp_path_factory, "corpus", cut)
    out = []
    for name in names:
        for path in (root / name / f"{k:02d}.mp4" for k in range(2)):
            rel = path.relative_to(root).as_posix()
            out.append(
                Clip(
                    make_clip_id("mead", rel),
                    "mead",
                    name,
                    str(path),
                    split="train",
                    fps=25.0,
                    duration=1.0,
                )
            )
    return out


@pytest.fixture(scope="session")
def packed_sample(tmp_path_factory) -> dict[str, Path]:
    """`space filter` → `space pack` → `space report` run on made records of four corpora,
    laid out as in tests/pipelines/test_filter_pack_report.py; paths by name (manifest, keep,
    features, shards, reports, params). The train split starts with five unlabelled HDTF clips
    (emotion, intensity and view null) before labelled MEAD ones with a view (where inferring a
    schema from the first samples breaks); clips differ in length; one test clip has no audio
    (no speech.npy, no audio.flac); one clip turns 60° (dropped), one failed extraction, one was
    rejected by the indexer. Shards hold two samples each. Made once per run (`built_once`)."""
    return _packed_paths(built_once(tmp_path_factory, "packed_sample", _pack_sample))


def _packed_paths(root: Path) -> dict[str, Path]:
    p = {name: root / name for name in ("features", "shards", "reports")}
    p.update(manifest=root / "manifest.parquet", keep=root / "keep.parquet",
             params=root / "params.yaml")  # fmt: skip
    return p


def _pack_sample(root: Path) -> None:
    records = [
        *(make_record(f"hdtf-WDA_S{i}_000", dataset="hdtf", emotion=None, n_frames=40 + 3 * i)
          for i in range(5)),
        make_record("mead-a", split="train", max_yaw=10.0, n_frames=50),
        make_record("mead-b", split="train", max_yaw=20.0, emotion="sad"),
        make_record("mead-c", split="test", max_yaw=10.0),
        make_record("ravdess-d", dataset="ravdess", split="test", max_yaw=35.0, emotion="calm"),
        make_record("ravdess-n", dataset="ravdess", split="test", emotion="angry",
                    with_audio=False),
        make_record("voxceleb2-e", dataset="voxceleb2", split="val", emotion=None),
        make_record("voxceleb2-f", dataset="voxceleb2", split="train", emotion=None, max_yaw=60.0),
        ClipFeatures.failed(ClipMeta.of(Clip("mead-g", "mead", "S02", "/corpus/mead-g.mp4",
                                             emotion="angry", intensity=1.0, split="val"), "test"),
                            "no_frames: nothing decoded"),
    ]  # fmt: skip
    for i, record in enumerate(records[:5]):
        record.meta.speaker = f"WDA_S{i % 3}"
    for record in records:
        if record.meta.dataset == "mead":
            record.meta.view = "front"
    rejected = [Clip("ravdess-h", "ravdess", "Actor_01", "/corpus/h.mp4", reason="song")]
    write_tables([clip_of(r) for r in records] + rejected, records, root)
    (root / "params.yaml").write_text(
        "filter: {max_rotation_deg: 45.0}\npack: {max_shard_samples: 2}\n"
        "report: {max_pose_clips: 10, n_examples: 3}\n"
    )
    p = _packed_paths(root)
    for command, args in (
        (filter_cmd, ["--manifest", p["manifest"], "--clips", p["features"] / "clips.parquet",
                      "--out", p["keep"]]),
        (pack_cmd, ["--keep", p["keep"], "--features", p["features"], "--out", p["shards"]]),
        (report_cmd, ["--manifest", p["manifest"], "--keep", p["keep"], "--features",
                      p["features"], "--shards", p["shards"], "--out", p["reports"]]),
    ):  # fmt: skip
        args = [str(a) for a in args] + ["--params", str(p["params"])]
        result = CliRunner().invoke(command.cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
