"""`space extract-clip`: one video → one npz; unusable input → exit 1 and one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipelines.extract_clip import cli
from space_data.record import ClipFeatures


@pytest.mark.slow
@pytest.mark.realdata
def test_extract_clip_writes_the_record(realdata, tmp_path):
    out = tmp_path / "out" / "clip.npz"
    video = realdata / "video" / "voxceleb2_style_224_frontal.mp4"
    result = CliRunner().invoke(cli, [str(video), "--dataset", "voxceleb2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    with np.load(out, allow_pickle=False) as z:
        assert {"lm3d", "pose", "lm_norm", "eyes", "hands", "mfcc", "meta", "frame0"} <= set(
            z.files
        )
        meta = json.loads(z["meta"].tobytes())
        n = z["pose"].shape[0]
        assert z["lm3d"].shape == (n, 68, 3) and z["mfcc"].shape == (3, n, 40)
        assert z["emotion_pred"].shape == (n, 9) and z["speech"].shape == (n,)
    assert meta["dataset"] == "voxceleb2" and meta["crop_size"] is None
    record = ClipFeatures.load_npz(out)
    assert record.ok and record.stats.n_frames == n
    assert record.stats.speech_fraction > 0.5  # a talking clip


def test_unusable_inputs_exit_with_one_line(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    runner = CliRunner()
    for path, reason in ((empty, "empty_file"), (text, "unreadable")):
        result = runner.invoke(cli, [str(path), "--out", str(tmp_path / "x.npz")])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0] and "Traceback" not in result.output
        assert not (tmp_path / "x.npz").exists()


def test_bad_params_are_named(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("extract:\n  crop_sise: 512\n")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    result = CliRunner().invoke(cli, [str(video), "--params", str(params), "--out", "o.npz"])
    assert result.exit_code == 2
    assert "crop_sise" in result.output and "Traceback" not in result.output


def test_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "--dataset" in result.output
