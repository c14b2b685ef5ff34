"""`space index`: corpus options, params fallback, summary, manifest, clean errors."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.index import cli
from pipelines.units import plan_units
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


def test_missing_params_root_and_bad_keys_exit_cleanly(tmp_path, monkeypatch):
    out = str(tmp_path / "m.parquet")
    missing = _params(tmp_path, corpora={"mead": str(tmp_path / "gone")})
    result = CliRunner().invoke(cli, ["--out", out, "--params", missing])
    assert result.exit_code == 2 and "corpora.mead" in result.output
    bad = _params(tmp_path, index={"trian": 0.8})
    result = CliRunner().invoke(cli, ["--out", out, "--params", bad])
    assert result.exit_code == 2 and "trian" in result.output
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no params.yaml here
    result = CliRunner().invoke(cli, ["--out", out])
    assert result.exit_code == 2 and "no --corpus given" in result.output


@pytest.mark.parametrize("command", [main, cli])
def test_a_params_file_given_that_does_not_exist_is_an_error(tmp_path, corpora, command):
    args = ["index"] if command is main else []
    missing = str(tmp_path / "missing.yaml")
    result = CliRunner().invoke(
        command, [*args, "--corpus", f"hdtf={corpora['hdtf']}", "--params", missing]
    )
    assert result.exit_code == 2
    assert result.output == f"Error: params file {missing} not found (--params)\n"
    assert not (tmp_path / "data").exists()


def test_a_typo_in_any_section_stops_index_before_any_work(tmp_path, corpora):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"filter": {"max_rotaton_deg": 30}}))
    out = tmp_path / "m.parquet"
    args = ["index", "--corpus", f"hdtf={corpora['hdtf']}", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--params", str(params)])
    assert result.exit_code == 2 and not out.exists()
    assert result.output.startswith("Error: filter.max_rotaton_deg: unknown key; did you mean")


@pytest.mark.parametrize(
    ("tree", "found"),
    [(None, "found no file at all"), ("ravdess", "found 5 files (5 .mp4; e.g. Actor_01/")],
)
def test_a_root_without_its_layout_is_one_line_exit_2(tmp_path, corpora, tree, found):
    root = corpora[tree] if tree else tmp_path / "empty"
    root.mkdir(exist_ok=True)
    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(main, ["index", "--corpus", f"mead={root}", "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: corpus mead: no media file of its layout below '{root}'")
    assert "expected <speaker>/video/<view>/<emotion>/level_<1-3>/NNN.mp4" in line
    assert found in line


def _index(tmp_path, roots, *extra, index=None):
    out = tmp_path / "m.parquet"
    params = _params(tmp_path, corpora=roots, index={"probe": False, **(index or {})})
    result = CliRunner().invoke(cli, ["--out", str(out), "--params", params, *extra])
    assert result.exit_code == 0, result.output
    return {c.clip_id: c for c in read_manifest(str(out))}, result


def test_growing_a_corpus_changes_no_existing_row_so_extraction_redoes_nothing(tmp_path, corpora):
    """The issue's case: one HDTF speaker added. Every earlier manifest row is unchanged (the
    split included), so every earlier extraction unit keeps its members and its commit."""
    hdtf = tmp_path / "hdtf"
    hdtf.mkdir()
    for name in ("WDA_KatieHill_000.mp4", "WRA_MarcoRubio_000.mp4", "RD_Radio11_000.mp4"):
        (hdtf / name).write_bytes((corpora["hdtf"] / name).read_bytes())
    mead = str(corpora["mead"])
    before, _ = _index(tmp_path, {"hdtf": str(hdtf), "mead": mead})
    for n in range(8):  # grow speaker by speaker
        (hdtf / f"WDA_NewSpeaker{n}_000.mp4").write_bytes(b"")
        after, _ = _index(tmp_path, {"hdtf": str(hdtf), "mead": mead})
        assert {k: after[k] for k in before} == before
        units_before = {u.unit_id: u.members_hash for u in plan_units(before.values(), 16)}
        units_after = {u.unit_id: u.members_hash for u in plan_units(after.values(), 16)}
        assert {k: units_after[k] for k in units_before} == units_before
        assert len(units_after) == len(units_before) + n + 1
    for n in range(8):  # and shrink back
        (hdtf / f"WDA_NewSpeaker{n}_000.mp4").unlink()
        shrunk, _ = _index(tmp_path, {"hdtf": str(hdtf), "mead": mead})
        assert {k: after[k] for k in shrunk} == shrunk


def test_write_splits_pins_exact_fractions_that_a_later_index_honours(tmp_path, corpora):
    roots = {"ravdess": str(corpora["ravdess"]), "hdtf": str(corpora["hdtf"])}
    table = tmp_path / "splits.csv"
    pinned, result = _index(tmp_path, roots, "--write-splits", str(table))
    assert f"pinned splits: 6 speakers from {table} (6 rows)" in result.output
    assert "warning" not in result.output  # 3 speakers each: one per split
    for dataset in ("ravdess", "hdtf"):
        speakers = {
            (c.speaker, c.split) for c in pinned.values() if c.dataset == dataset and c.usable
        }
        assert sorted(split for _, split in speakers) == ["test", "train", "val"]
    rows = table.read_text().splitlines()
    assert rows[0] == "dataset,speaker,split" and len(rows) == 7
    # the table wins over the hash: swap two pinned speakers' splits and index again
    first, second = rows[1].split(","), rows[2].split(",")
    rows[1], rows[2] = ",".join([*first[:2], second[2]]), ",".join([*second[:2], first[2]])
    table.write_text("\n".join(rows) + "\n")
    again, _ = _index(tmp_path, roots, index={"splits_file": str(table)})
    split_of = {(c.dataset, c.speaker): c.split for c in again.values() if c.usable}
    assert split_of[tuple(first[:2])] == second[2] and split_of[tuple(second[:2])] == first[2]
    hashed, result = _index(tmp_path, roots)
    assert any(c.split != again[k].split for k, c in hashed.items())  # the pin mattered


def test_a_split_left_empty_is_a_one_line_warning(tmp_path, corpora):
    roots = {"hdtf": str(corpora["hdtf"])}
    clips, result = _index(tmp_path, roots, index={"train": 0.98, "val": 0.01, "test": 0.01})
    assert {c.split for c in clips.values()} == {"train"}
    assert result.stderr.splitlines() == [
        "warning: hdtf: no speaker in val or test: a speaker's split is a hash, so fractions "
        "hold in expectation only; exact ones: --write-splits CSV"
    ]


def test_a_bad_splits_file_is_a_params_error(tmp_path, corpora):
    roots = {"hdtf": str(corpora["hdtf"])}
    bad = tmp_path / "splits.csv"
    bad.write_text("dataset,speaker,split\nhdtf,RD_Radio11,holdout\n")
    for path, message in (
        (bad, "line 2: expected dataset,speaker,split"),
        (tmp_path / "none.csv", "none.csv not found"),
    ):
        params = _params(tmp_path, corpora=roots, index={"splits_file": str(path)})
        result = CliRunner().invoke(cli, ["--out", str(tmp_path / "m.parquet"), "--params", params])
        assert result.exit_code == 2 and len(result.output.splitlines()) == 1
        assert result.output.startswith("Error: index.splits_file: ") and message in result.output


def test_help_through_the_space_command():
    result = CliRunner().invoke(main, ["index", "--help"])
    assert result.exit_code == 0
    assert "--corpus NAME=ROOT" in result.output
