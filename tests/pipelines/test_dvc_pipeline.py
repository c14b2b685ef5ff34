"""dvc.yaml stays consistent with the code: every command and option exists, every params key
exists, every data dependency is an earlier stage's output, and a filter threshold reaches
only filter, pack and report. (`dvc repro` itself is run by `make demo`.)"""

from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.cli import COMMANDS
from space_data.params import SECTIONS, read_params
from space_models.models import MODELS

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
DATA_STAGES = ("synth", "index", "extract", "filter", "pack", "report")


def _paths(entries: list) -> list[str]:
    """Paths of a deps/outs/metrics list (entries are strings or {path: options})."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def _outs(stage: dict) -> list[str]:
    return _paths(stage.get("outs", [])) + _paths(stage.get("metrics", []))


def test_the_data_stages_come_first_in_order():
    assert list(STAGES)[: len(DATA_STAGES)] == list(DATA_STAGES)


@pytest.mark.parametrize("name", DATA_STAGES)
def test_command_and_options_exist(name):
    argv = shlex.split(STAGES[name]["cmd"])
    assert argv[0] == "space" and argv[1] in COMMANDS
    command = importlib.import_module(COMMANDS[argv[1]]).cli
    known = {opt for p in command.params for opt in p.opts}
    assert {a for a in argv[2:] if a.startswith("--")} <= known


@pytest.mark.parametrize("name", DATA_STAGES)
def test_params_keys_exist(name):
    params = read_params(ROOT / "params.yaml")
    for key in STAGES[name].get("params", []):
        section, *rest = key.split(".")
        assert section in SECTIONS and section in params
        if rest:
            assert rest[0] in params[section]


def test_data_dependencies_are_earlier_outputs():
    produced: set[str] = set()
    for name in DATA_STAGES:
        stage = STAGES[name]
        for dep in _paths(stage.get("deps", [])):
            if not (ROOT / dep).exists() or dep.startswith(("data/", "sample")):
                assert dep in produced, f"{name} depends on {dep}, which no earlier stage makes"
        produced.update(_outs(stage))


def test_extract_units_persist_and_a_filter_threshold_reruns_only_later_stages():
    persisted = {
        k: v for o in STAGES["extract"]["outs"] if isinstance(o, dict) for k, v in o.items()
    }
    kept = {"persist": True, "cache": False}  # records and their commit markers
    assert persisted == {"data/features/units": kept, "data/features/commits": kept}
    # stages reached from a change of `filter`: its own stage plus everything downstream
    reached = {"filter"}
    for name in DATA_STAGES:
        deps = set(_paths(STAGES[name].get("deps", [])))
        if any(deps & set(_outs(STAGES[r])) for r in reached):
            reached.add(name)
    assert reached == {"filter", "pack", "report"}
    readers = {n for n in DATA_STAGES if "filter" in STAGES[n].get("params", [])}
    assert "filter" in readers and readers <= reached  # report draws the thresholds


def test_one_train_stage_per_registered_model():
    """dvc.yaml's `train` stage is a `foreach` over the model registry; evaluate reads each."""
    train = STAGES["train"]
    assert train["foreach"] == list(MODELS)
    evaluate_deps = set(_paths(STAGES["evaluate"]["deps"]))
    for name in MODELS:
        stage = yaml.safe_load(yaml.safe_dump(train["do"]).replace("${item}", name))
        argv = shlex.split(stage["cmd"])
        assert argv[:4] == ["space", "train", "--model", name]
        assert (
            f"space_models/{name}.py" in stage["deps"]
            and (ROOT / f"space_models/{name}.py").is_file()
        )
        assert (
            f"checkpoints/{name}.pt" in _outs(stage) and f"checkpoints/{name}.pt" in evaluate_deps
        )


def test_the_pipeline_runs_without_the_synth_stage(tmp_path):
    """docs/corpora.md: without the sample corpus, delete the `synth` stage, index's `sample`
    dep and the sample's split table; real DVC then plans `index` (a dry run checks that every
    dependency exists)."""
    sample = {"sample", "splits/sample.csv"}
    stages = {name: dict(stage) for name, stage in STAGES.items() if name != "synth"}
    stages["index"]["deps"] = [d for d in stages["index"]["deps"] if d not in sample]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["index"]["splits_file"] = None
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for folder in ("pipelines", "space_data", "space_models"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    run = subprocess.run(
        [*dvc, "repro", "--dry", "index"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Running stage 'index'" in run.stdout and "synth" not in run.stdout
