"""`python -m pipelines.check_sample`: the filter's decisions against the sample corpus's
designed outcomes."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from pipelines.check_sample import cli

TRUTH = {
    "a": {"outcome": "keep", "stage": "filter"},
    "b": {"outcome": "rotation", "stage": "filter"},
    "c": {"outcome": "song", "stage": "index"},
}


def _check(tmp_path, decisions: dict[str, str | None]):
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "truth.json").write_text(json.dumps(TRUTH))
    keep = pd.DataFrame(
        {
            "clip_id": list(decisions),
            "keep": [r is None for r in decisions.values()],
            "reason": list(decisions.values()),
        }
    )
    keep.to_parquet(tmp_path / "keep.parquet")
    args = ["--sample", str(tmp_path / "sample"), "--keep", str(tmp_path / "keep.parquet")]
    return CliRunner().invoke(cli, args)


def test_every_clip_as_designed(tmp_path):
    result = _check(tmp_path, {"a": None, "b": "rotation", "c": "index:song", "real": "zoom"})
    assert result.exit_code == 0, result.output
    assert result.output == (
        "sample corpus: 3 clips, 1 kept; every clip has its designed outcome\n"
    )


def test_a_clip_off_its_design_is_listed_and_fails(tmp_path):
    result = _check(tmp_path, {"a": "rotation", "b": None})
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "sample corpus: 3 of 3 clips miss their designed outcome:",
        "  a: designed keep, got rotation",
        "  b: designed rotation, got keep",
        "  c: designed index:song, got absent",
    ]


def test_missing_inputs_say_what_to_run(tmp_path):
    result = CliRunner().invoke(cli, ["--sample", str(tmp_path / "none")])
    assert result.exit_code == 1 and "run `space synth --out" in result.output
