"""Every `space` command reports a bad params file the same way: one line on stderr naming the
dotted key and what was expected, exit status 2, before any work or input check; the whole
file is checked, also the sections the command does not read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import COMMANDS, PARAMS_CLASSES, main, params_class
from space_data.params import SECTIONS

# the smallest command line of each command (inputs need not be valid: params are read first;
# animate's --image and --audio must exist for click, so _run makes them empty)
ARGS = {
    "synth": ["--out", "out"],
    "index": [],
    "extract-clip": ["clip.mp4", "--out", "clip.npz"],
    "extract": [],
    "filter": [],
    "pack": [],
    "report": [],
    "train": ["--model", "s2l"],
    "evaluate": [],
    "animate": ["--image", "face.png", "--audio", "speech.wav", "--out", "out"],
}
# a bad value in a section the command reads → the message it must give
BAD = {
    "synth": ("synth:\n  seed: x\n", "synth.seed: expected an integer, got 'x'"),
    "index": ("index:\n  probe: maybe\n", "index.probe: expected true or false, got 'maybe'"),
    "extract-clip": ("extract:\n  crop_size: big\n", "extract.crop_size: expected an integer"),
    "extract": ("extract:\n  crop_size: big\n", "extract.crop_size: expected an integer"),
    "filter": (
        "filter:\n  max_rotation_deg: forty\n",
        "filter.max_rotation_deg: expected a number, got 'forty'",
    ),
    "pack": ("pack:\n  max_shard_samples: 2.5\n", "pack.max_shard_samples: expected an integer"),
    "report": ("report:\n  n_exampels: 3\n", "report.n_exampels: unknown key; did you mean"),
    "train": ("train:\n  batch_size: 2.5\n", "train.batch_size: expected an integer, got 2.5"),
    "evaluate": ("evaluate:\n  max_frames: all\n", "evaluate.max_frames: expected an integer"),
    "animate": ("train:\n  s2l:\n    hiden: 3\n", "train.s2l.hiden: unknown key"),
}


def test_every_command_is_covered() -> None:
    assert set(ARGS) == set(BAD) == set(COMMANDS)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, text: str):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(text)
    Path("face.png").touch()
    Path("speech.wav").touch()
    return CliRunner().invoke(main, [command, *ARGS[command], "--params", "params.yaml"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_misspelled_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    result = _run(tmp_path, monkeypatch, command, "filterr:\n  max_jump: 0.3\n")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: filterr: unknown section in params.yaml; did you mean 'filter'?"
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    text, message = BAD[command]
    result = _run(tmp_path, monkeypatch, command, text)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {message}"), line


# a mistake in a section no command but one reads: every command reports it, before any work
OTHERS = {
    "filter.max_rotaton_deg": "filter:\n  max_rotaton_deg: 30\n",
    "ray.cpus_per_actor": "ray:\n  cpus_per_actor: 0\n",
    "train.s2l.hiden": "train:\n  s2l:\n    hiden: 3\n",
    "index.train": "index:\n  train: 0.5\n",  # fractions that do not sum to 1
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("key", sorted(OTHERS))
def test_every_command_checks_every_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, key: str
) -> None:
    result = _run(tmp_path, monkeypatch, command, OTHERS[key])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    section = key.split(".")[0]
    assert line.startswith(f"Error: {section}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "params.yaml", "speech.wav"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_params_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("face.png").touch()
    Path("speech.wav").touch()
    args = [command, *ARGS[command], "--params", "missing.yaml"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["Error: params file missing.yaml not found (--params)"]


@pytest.mark.parametrize("command", ["pack", "extract", "synth"])
def test_packed_audio_needs_stored_audio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    text = "extract:\n  audio:\n    store_flac: false\n"
    result = _run(tmp_path, monkeypatch, command, text)  # pack.include_audio: true by default
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: pack.include_audio: true needs extract.audio.store_flac: true (records without "
        "audio give shards without audio): in params.yaml set extract.audio.store_flac: true, "
        "or pack.include_audio: false"
    ]
    result = _run(tmp_path, monkeypatch, command, text + "pack:\n  include_audio: false\nx: 1\n")
    assert result.stderr.startswith("Error: x: unknown section")  # that pair passes


def test_params_classes_name_every_section() -> None:
    assert set(PARAMS_CLASSES) == set(SECTIONS)
    assert {name: params_class(name).__name__ for name in PARAMS_CLASSES} == {
        name: target.rpartition(":")[2] for name, target in PARAMS_CLASSES.items()
    }
