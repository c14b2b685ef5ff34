"""The docs: they build without a warning or a broken link, and they name every record member,
shard member and `animation.npz` member that the code writes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from space_data.record import ARRAY_MEMBERS, ClipMeta, ClipStats

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# members of a record that are not arrays (docs/record.md's table names them too)
NON_ARRAY_MEMBERS = {"frame0", "audio", "meta", "stats", "header"}


def build_docs(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
    )


def documented_members(page: str, heading: str) -> set[str]:
    """Backticked names in the first column of the first table after `heading` in a docs page."""
    text = (DOCS / page).read_text()
    start = text.index(heading)
    names: set[str] = set()
    in_table = False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            names.update(re.findall(r"`([A-Za-z0-9_]+)`", line.split("|")[1]))
        elif in_table:
            break
    return names


def documented_in_paragraph(page: str, opening: str) -> set[str]:
    """Backticked names in the paragraph of a docs page that starts with `opening`."""
    text = (DOCS / page).read_text()
    paragraph = text[text.index(opening) :].split("\n\n")[0]
    return set(re.findall(r"`([A-Za-z0-9_]+)`", paragraph))


ANIMATION_MEMBERS = ("training.md", "`DIR/animation.npz` holds")
"""Where the docs list the members of `space animate`'s animation.npz."""


def test_docs_build_with_no_warning_and_no_broken_link(tmp_path):
    result = build_docs(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr


def test_a_broken_link_fails_the_docs_build(tmp_path):
    """The check above can fail: the same build on a copy with one dead anchor does."""
    copy = tmp_path / "project"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    page = copy / "docs" / "index.md"
    page.write_text(page.read_text() + "\nSee [nowhere](record.md#no-such-section).\n")
    result = build_docs(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-section" in result.stderr


def test_the_record_table_names_every_member_and_nothing_else():
    assert documented_members("record.md", "| member |") == set(ARRAY_MEMBERS) | NON_ARRAY_MEMBERS


def test_every_meta_and_stats_field_is_documented():
    text = (DOCS / "record.md").read_text()
    missing = [
        f.name for cls in (ClipMeta, ClipStats) for f in fields(cls) if f"`{f.name}`" not in text
    ]
    assert not missing, f"docs/record.md does not name {missing}"


@pytest.mark.slow
def test_extraction_writes_the_documented_members(sample_corpus, tmp_path):
    """A real extraction (one sample clip with audio, FLAC stored) writes every documented member
    but the keypoint ones (no checkpoint here), and nothing undocumented."""
    from space_data.audio import AudioConfig
    from space_data.datasets import CORPORA
    from space_data.extract import ExtractConfig, extract_clip

    clip = next(
        c for c in CORPORA["voxceleb2"].scan(str(sample_corpus / "voxceleb2")) if c.reason is None
    )
    record = extract_clip(clip, ExtractConfig(audio=AudioConfig(store_flac=True)))
    assert record.ok, record.reason
    record.save_npz(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as z:
        written = set(z.files)
    keypoints = {name for name in ARRAY_MEMBERS if name.startswith("kp")}
    assert written == (set(ARRAY_MEMBERS) | NON_ARRAY_MEMBERS) - keypoints
    shard = {name.split(".")[0] for name in record.shard_members()}
    assert shard == written - {"stats", "header"}  # stats travel inside meta.json


def test_extract_clip_help_names_every_array_member():
    from pipelines.extract_clip import cli

    text = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    missing = [name for name in ARRAY_MEMBERS if name not in text]
    assert not missing, f"space extract-clip --help does not name {missing}"
