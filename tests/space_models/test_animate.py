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
from space_data.extract import ExtractConfig
from space_data.media import probe
from space_models.animate import (
    IMAGE_FORMATS,
    AnimateError,
    blink_curve,
    cli,
    draw,
    image_faces,
    insert_blinks,
    parse_emotion,
    read_image,
    source_face,
    speech_warning,
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


# --- input checks: unreadable images, no speech, several faces ------------------------------

FORMAT_SUFFIXES = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "BMP": ".bmp",
    "TIFF": ".tiff",
    "WebP": ".webp",
    "PPM": ".ppm",
    "PFM": ".pfm",
    "Sun raster": ".sr",
    "Radiance HDR": ".hdr",
}


def test_the_listed_image_formats_are_read(tmp_path):
    assert IMAGE_FORMATS.split(", ") == list(FORMAT_SUFFIXES)
    image = np.full((16, 16, 3), 100, np.uint8)
    for name, suffix in FORMAT_SUFFIXES.items():
        path = tmp_path / f"face{suffix}"
        data = image.astype(np.float32) / 255 if suffix in (".pfm", ".hdr") else image
        assert cv2.imwrite(str(path), data), name
        assert read_image(str(path)).shape == (16, 16, 3), name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GIF89a" + bytes(40), "unsupported format (GIF); supported: JPEG, PNG, BMP"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(20), "unsupported format (HEIC/AVIF"),
        (b"hello, not an image", "unsupported format (a .jpg file); supported: JPEG"),
        (b"", "the file is empty"),
        (None, "the file is corrupt (its format is one OpenCV reads, but it does not decode)"),
    ],
)
def test_an_unreadable_image_says_corrupt_or_unsupported(tmp_path, content, message):
    path = tmp_path / "face.jpg"
    if content is None:  # the first 200 bytes of a real JPEG
        ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3)))
        content = jpeg.tobytes()[:200]
    path.write_bytes(content)
    with pytest.raises(AnimateError) as error:
        read_image(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.realdata
def test_speech_check_warns_on_silence_tone_and_noise(realdata):
    speech, rate = soundfile.read(realdata / "audio" / "librispeech_read_16k.wav", dtype="float32")
    assert rate == 16000
    n = 5 * 30
    t = np.arange(5 * rate) / rate
    assert speech_warning(speech[: 5 * rate], n, 0.2) is None
    for audio in (
        np.zeros(5 * rate, np.float32),
        (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        np.random.default_rng(0).normal(0, 0.1, 5 * rate).astype(np.float32),
    ):
        message = speech_warning(audio, n, 0.2)
        assert message is not None and "no_speech filter" in message and "\n" not in message


def _group_photo(realdata) -> np.ndarray:
    """Four real portraits side by side, the third (the woman) the largest."""
    names = ("portrait_frontal_man_suit.png", "portrait_frontal_man_headset.png",
             "portrait_frontal_woman.jpg", "portrait_bw_2048.jpg")  # fmt: skip
    sizes = (200, 220, 320, 240)
    tiles = []
    for name, size in zip(names, sizes, strict=True):
        rgb = read_image(str(realdata / "images" / name))
        tile = np.full((320, size, 3), 255, np.uint8)
        tile[:size] = cv2.resize(rgb, (size, size))
        tiles.append(tile)
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))


@pytest.mark.realdata
def test_faces_are_counted_and_the_largest_used(realdata):
    group = _group_photo(realdata)
    faces = image_faces(group)
    assert len(faces) == 4
    largest = faces[0]
    assert 420 < (largest.x0 + largest.x1) / 2 < 740  # the third tile
    src = source_face(group, ExtractConfig(), largest)
    x = src["lm68"][:, 0]
    assert largest.x0 - 20 < x.min() and x.max() < largest.x1 + 20  # image pixels, that face
    single = read_image(str(realdata / "images" / "portrait_frontal_woman.jpg"))
    assert len(image_faces(single)) == 1


@pytest.mark.realdata
def test_animate_warns_in_one_line_each_before_loading_models(realdata, tmp_path):
    image, audio = tmp_path / "group.png", tmp_path / "tone.wav"
    cv2.imwrite(str(image), cv2.cvtColor(_group_photo(realdata), cv2.COLOR_RGB2BGR))
    t = np.arange(16000 * 2) / 16000
    soundfile.write(audio, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    params = _params(tmp_path / "params.yaml", tmp_path / "none")
    args = ["--image", str(image), "--audio", str(audio), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--params", params])
    assert result.exit_code == 1  # no checkpoint: the warnings came first
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert warnings[0].startswith("animate: warning: the audio has speech in 0% of its frames")
    assert warnings[1] == "animate: warning: 4 faces in the image; the largest is animated"
