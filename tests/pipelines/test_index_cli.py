"""`space index`: corpus options, params fallback, summary, manifest, clean errors."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.index import cli
from space_data.datasets import DATASETS, read_manifest
from space_data.testing.corpora import place, tiny_m4a, write_tiny_video


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """A few real tiny videos in every registered corpus's layout, plus files that must be
    rejected."""
    root = tmp_path_factory.mktemp("corpora")
    av = write_tiny_video(root / "av.mp4")
    silent = write_tiny_video(root / "silent.mp4", audio=False)
    m4a = tiny_m4a(root / "a.m4a")
    vox = {f"dev/mp4/id0000{s}/abcdefghijk/00001.mp4": av for s in range(1, 5)}
    vox["test/mp4/id00009/abcdefghijk/00001.mp4"] = av
    mead = {
        "M003/video/front/happy/level_2/001.mp4": silent,
        "M003/audio/happy/level_2/001.m4a": m4a,
        "M003/video/left_60/happy/level_2/001.mp4": silent,
        "W009/video/front/sad/level_1/001.mp4": silent,  # no .m4a
    }
    ravdess = {f"Actor_0{a}/01-01-03-01-01-01-0{a}.mp4": av for a in range(1, 4)}
    ravdess["Actor_01/01-02-03-01-01-01-01.mp4"] = av  # song
    ravdess["Actor_02/01-01-03-01-01-02-02.mp4"] = None  # empty file
    hdtf = {f"{s}_000.mp4": av for s in ("WDA_KatieHill", "WRA_MarcoRubio", "RD_Radio11")}
    hdtf["WDA_video_url.txt"] = None  # HDTF metadata: no row
    flv = write_tiny_video(root / "av.flv", size=64)
    cremad = {f"VideoFlash/{a}_IEO_HAP_HI.flv": flv for a in (1001, 1002, 1003)}
    cremad["VideoFlash/1001_IEO_HAP_QQ.flv"] = flv  # unknown level
    return {
        "voxceleb2": place(vox, root / "vox"),
        "mead": place(mead, root / "mead"),
        "ravdess": place(ravdess, root / "ravdess"),
        "hdtf": place(hdtf, root / "hdtf"),
        "cremad": place(cremad, root / "CREMA-D"),
    }


def _params(tmp_path, corpora=None, index=None):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"corpora": corpora or {}, "index": index or {}}))
    return str(path)


def test_index_from_corpus_options(tmp_path, corpora):
    out = tmp_path / "manifest.parquet"
    args = [f"--corpus={name}={root}" for name, root in corpora.items()]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--params", _params(tmp_path)])
    assert result.exit_code == 0, result.output
    clips = read_manifest(str(out))
    assert len(clips) == 5 + 3 + 5 + 3 + 4  # one row per video file
    usable = [c for c in clips if c.usable]
    assert {c.dataset for c in usable} == set(DATASETS)
    # an FLV's header duration includes its MP3 padding
    assert all(c.split and c.fps == 25.0 for c in usable)
    assert all(
        c.duration == pytest.approx(0.4, abs=0.1 if c.dataset == "cremad" else 1e-6) for c in usable
    )
    assert "voxceleb2: 5 usable of 5 files, 5 speakers" in result.output
    assert "mead: 1 usable of 3 files" in result.output
    assert "rejected excluded_view: 1" in result.output
    assert "rejected missing_audio: 1" in result.output
    assert "rejected song: 1" in result.output
    assert "rejected empty_file: 1" in result.output
    assert "hdtf: 3 usable of 3 files, 3 speakers" in result.output
    assert "cremad: 3 usable of 4 files, 3 speakers" in result.output
    assert "rejected unknown_level: 1" in result.output


def test_index_reads_corpora_from_params(tmp_path, corpora):
    params = _params(
        tmp_path,
        corpora={"ravdess": str(corpora["ravdess"])},
        index={"probe": False, "seed": 3},
    )
    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(cli, ["--out", str(out), "--params", params])
    assert result.exit_code == 0, result.output
    clips = read_manifest(str(out))
    assert {c.dataset for c in clips} == {"ravdess"}
    assert all(c.fps is None for c in clips)  # probe: false
    # not probed, so the empty file is only caught later, by extract
    assert "ravdess: 4 usable of 5 files" in result.output


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ravdess", "is not NAME=ROOT"),
        ("timit=/data", "unknown corpus 'timit'"),
        ("mead=/no/such/folder", "is not a folder"),
        ("mead=nosuch://bucket/mead", "Protocol not known"),
    ],
)
def test_bad_corpus_option_is_a_usage_error(tmp_path, value, message):
    result = CliRunner().invoke(cli, ["--corpus", value, "--out", str(tmp_path / "m.parquet")])
    assert result.exit_code == 2
    assert message in result.output and "--corpus" in result.output
    assert "Traceback" not in result.output


def test_missing_params_root_and_bad_keys_exit_cleanly(tmp_path):
    out = str(tmp_path / "m.parquet")
    missing = _params(tmp_path, corpora={"mead": str(tmp_path / "gone")})
    result = CliRunner().invoke(cli, ["--out", out, "--params", missing])
    assert result.exit_code == 2 and "corpora.mead" in result.output
    bad = _params(tmp_path, index={"trian": 0.8})
    result = CliRunner().invoke(cli, ["--out", out, "--params", bad])
    assert result.exit_code == 2 and "trian" in result.output
    result = CliRunner().invoke(cli, ["--out", out, "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "no --corpus given" in result.output


def test_help_through_the_space_command():
    result = CliRunner().invoke(main, ["index", "--help"])
    assert result.exit_code == 0
    assert "--corpus NAME=ROOT" in result.output
