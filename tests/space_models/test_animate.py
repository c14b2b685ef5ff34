from __future__ import annotations

import cv2
import numpy as np
import pytest
import soundfile
import torch
import yaml
from click.testing import CliRunner

from space_data import storage
from space_data.clip import EMOTIONS
from space_data.media import probe
from space_models.animate import (
    AnimateError,
    blink_curve,
    cli,
    draw,
    insert_blinks,
    parse_emotion,
)
from space_models.testing import EYES, FACE
from space_models.train import train
from tests.test_docs import ANIMATION_MEMBERS, documented_in_paragraph


def _params(path, checkpoints) -> str:
    path.write_text(yaml.safe_dump({"train": {"checkpoints": str(checkpoints)}}))
    return str(path)


def test_without_a_checkpoint_animate_refuses(tmp_path):
    image, audio = tmp_path / "face.jpg", tmp_path / "speech.wav"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    soundfile.write(audio, np.zeros(16000, np.float32), 16000)
    params = _params(tmp_path / "params.yaml", tmp_path / "none")
    args = ["--image", str(image), "--audio", str(audio), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--params", params])
    assert result.exit_code == 1
    assert (
        "no trained s2l checkpoint" in result.output and "space train --model s2l" in result.output
    )
    assert not (tmp_path / "out").exists()


def test_parse_emotion():
    vec = parse_emotion("sad:0.5")
    assert vec[EMOTIONS.index("sad")] == 0.5 and vec.sum() == 0.5
    assert parse_emotion("angry")[EMOTIONS.index("angry")] == 1.0
    assert not parse_emotion(None).any()
    for bad in ("joyful", "happy:2", "happy:x"):
        with pytest.raises(AnimateError):
            parse_emotion(bad)


def test_draw_leaves_the_source_image_alone():
    rgb = np.zeros((31, 40, 3), np.uint8)
    frame = draw(rgb, np.array([[10.0, 10.0], [np.nan, 3.0]]))
    assert frame.shape == (30, 40, 3) and frame[10, 10, 1] == 255
    assert not rgb.any()


def test_blinks_close_the_eyelids():
    closure = blink_curve(300, seed=1)
    assert closure.max() == pytest.approx(1.0, abs=0.05) and (closure == 0).mean() > 0.8
    lm = np.repeat(FACE[None], 300, 0)
    eyes = np.repeat(EYES[None], 300, 0)
    insert_blinks(lm, eyes, closure)
    shut, still = int(closure.argmax()), int(np.flatnonzero(closure == 0)[0])
    lids = slice(0, 16)
    assert np.ptp(eyes[shut, lids, 1]) < 0.1 * np.ptp(EYES[lids, 1])
    np.testing.assert_array_equal(eyes[still], EYES)
    assert np.ptp(lm[shut, 36:42, 1]) < 0.1 * np.ptp(FACE[36:42, 1])


@pytest.mark.slow
@pytest.mark.realdata
def test_animate_a_real_portrait(realdata, two_step_config, tmp_path):
    for name in ("s2l", "posegen"):
        train(name, two_step_config, device="cpu")
    params = _params(tmp_path / "params.yaml", tmp_path / "ckpt")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "--image",
            str(realdata / "images" / "portrait_frontal_woman.jpg"),
            "--audio",
            str(realdata / "audio" / "address_16k_stereo.wav"),
            "--emotion",
            "happy:0.7",
            "--pose",
            "generate",
            "--blink",
            "--out",
            str(out),
            "--params",
            params,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no keypoints" in result.output  # no L2L checkpoint in this run
    with np.load(out / "animation.npz") as z:
        assert set(z.files) <= documented_in_paragraph(*ANIMATION_MEMBERS)
        t = z["lm_norm"].shape[0]
        assert t == 150  # 5 s of speech at 30 fps
        assert z["eyes_norm"].shape == (t, 52, 3) and z["posed"].shape == (t, 68, 3)
        assert z["pose"].shape == (t, 6) and z["image_points"].shape == (t, 68, 2)
        points = z["image_points"]
        assert np.isfinite(points).all() and (points > 0).all() and (points < 624).all()
    info = probe(str(out / "animation.mp4"))
    assert info.has_audio and abs(info.n_frames - t) <= 1 and info.fps == pytest.approx(30)


@pytest.mark.slow
@pytest.mark.realdata
def test_animate_renders_frames_with_a_random_weight_checkpoint(
    realdata, two_step_config, tmp_path, monkeypatch
):
    """The whole chain image + speech → S2L → L2L → generator → mp4 on a face-vid2vid
    checkpoint saved from our own randomly initialised modules: shapes and plumbing only, the
    pixels mean nothing (the public weights are not on these machines). The checkpoint file
    (about 700 MB for the public one, maybe in object storage) is opened once."""
    from space_data.keypoints import HEEstimator, KPDetector
    from space_models.generator import OcclusionAwareSPADEGenerator

    for name in ("s2l", "l2l"):
        train(name, two_step_config, device="cpu")
    torch.manual_seed(0)
    ckpt = tmp_path / "random-weights-00000189-checkpoint.pth.tar"
    torch.save(
        {
            "kp_detector": KPDetector().state_dict(),
            "he_estimator": HEEstimator().state_dict(),
            "generator": OcclusionAwareSPADEGenerator().state_dict(),
            "epoch": 0,
        },
        ckpt,
    )
    audio = tmp_path / "speech.wav"
    speech, rate = soundfile.read(realdata / "audio" / "librispeech_read_16k.wav")
    soundfile.write(audio, speech[:1100], rate)  # 2 frames at 30 fps
    out = tmp_path / "out"
    args = ["--image", str(realdata / "images" / "portrait_frontal_woman.jpg")]
    args += ["--audio", str(audio), "--out", str(out), "--checkpoint", str(ckpt)]
    params = _params(tmp_path / "params.yaml", tmp_path / "ckpt")
    opened, open_file = [], storage.open_file

    def counting_open(path, mode="rb"):
        opened.append(path)
        return open_file(path, mode)

    monkeypatch.setattr(storage, "open_file", counting_open)
    result = CliRunner().invoke(cli, [*args, "--relative", "--batch-size", "2", "--params", params])
    assert result.exit_code == 0, result.output
    assert "(rendered)" in result.output
    assert opened.count(str(ckpt)) == 1
    with np.load(out / "animation.npz") as z:
        assert set(z.files) <= documented_in_paragraph(*ANIMATION_MEMBERS)
        assert z["kp"].shape == (2, 15, 3) and z["kp_source_driving"].shape == (15, 3)
    info = probe(str(out / "animation.mp4"))
    assert (info.width, info.height) == (256, 256) and info.n_frames == 2 and info.has_audio

    missing = CliRunner().invoke(
        cli, [*args[:-1], str(tmp_path / "absent.pth.tar"), "--params", params]
    )
    assert missing.exit_code == 1 and "absent.pth.tar not found" in missing.output
