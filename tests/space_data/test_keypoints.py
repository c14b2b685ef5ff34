"""face-vid2vid modules against the public checkpoint layout (KEYPOINTS.md), pose math, extractor.

The public checkpoint is not on these machines: layouts are checked key for key against the
table in KEYPOINTS.md, and the extractor runs on a checkpoint saved from our own randomly
initialised modules (shapes and plumbing only: random weights say nothing about accuracy).
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import skimage.transform
import torch

from space_data.config import ConfigError, from_mapping
from space_data.keypoints import (
    AntiAliasInterpolation2d,
    HEEstimator,
    KeypointExtractor,
    KeypointsConfig,
    KPDetector,
    driving_keypoints,
    headpose_to_degrees,
    load_keypoint_models,
    make_coordinate_grid,
    prepare_images,
    rotation_matrix,
)


def _conv(prefix: str, cout: int, cin: int, *kernel: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin, *kernel), f"{prefix}.bias": (cout,)}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    names = ("weight", "bias", "running_mean", "running_var")
    return {**{f"{prefix}.{n}": (c,) for n in names}, f"{prefix}.num_batches_tracked": ()}


def _bottleneck(prefix: str, c: int, stride: int) -> dict[str, tuple[int, ...]]:
    keys = {
        **_conv(f"{prefix}.conv1", c // 4, c, 1, 1),
        **_conv(f"{prefix}.conv2", c // 4, c // 4, 3, 3),
        **_conv(f"{prefix}.conv3", c, c // 4, 1, 1),
        **_bn(f"{prefix}.norm1", c // 4),
        **_bn(f"{prefix}.norm2", c // 4),
        **_bn(f"{prefix}.norm3", c),
    }
    if stride != 1:
        keys |= {**_conv(f"{prefix}.skip", c, c, 1, 1), **_bn(f"{prefix}.norm4", c)}
    return keys


def expected_detector_layout() -> dict[str, tuple[int, ...]]:
    """KEYPOINTS.md, KPDetector table."""
    keys: dict[str, tuple[int, ...]] = {}
    for i, (cin, cout) in enumerate([(3, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]):
        keys |= _conv(f"predictor.down_blocks.down{i}.conv", cout, cin, 3, 3)
        keys |= _bn(f"predictor.down_blocks.down{i}.norm", cout)
    keys |= _conv("predictor.conv", 16384, 1024, 1, 1)
    for i, (cin, cout) in enumerate([(1024, 512), (512, 256), (256, 128), (128, 64), (64, 32)]):
        keys |= _conv(f"predictor.up_blocks.up{i}.conv", cout, cin, 3, 3, 3)
        keys |= _bn(f"predictor.up_blocks.up{i}.norm", cout)
    keys |= _conv("kp", 15, 32, 3, 3, 3)
    keys["down.weight"] = (3, 1, 13, 13)
    return keys


def expected_estimator_layout() -> dict[str, tuple[int, ...]]:
    """KEYPOINTS.md, HEEstimator table."""
    keys = {**_conv("conv1", 64, 3, 7, 7), **_bn("norm1", 64)}
    keys |= {**_conv("conv2", 256, 64, 1, 1), **_bn("norm2", 256)}
    for i in range(3):
        keys |= _bottleneck(f"block1.b1_{i}", 256, 1)
    keys |= {**_conv("conv3", 512, 256, 1, 1), **_bn("norm3", 512)}
    keys |= _bottleneck("block2", 512, 2)
    for i in range(3):
        keys |= _bottleneck(f"block3.b3_{i}", 512, 1)
    keys |= {**_conv("conv4", 1024, 512, 1, 1), **_bn("norm4", 1024)}
    keys |= _bottleneck("block4", 1024, 2)
    for i in range(5):
        keys |= _bottleneck(f"block5.b5_{i}", 1024, 1)
    keys |= {**_conv("conv5", 2048, 1024, 1, 1), **_bn("norm5", 2048)}
    keys |= _bottleneck("block6", 2048, 2)
    for i in range(2):
        keys |= _bottleneck(f"block7.b7_{i}", 2048, 1)
    for name in ("fc_roll", "fc_pitch", "fc_yaw"):
        keys |= {f"{name}.weight": (66, 2048), f"{name}.bias": (66,)}
    keys |= {"fc_t.weight": (3, 2048), "fc_t.bias": (3,)}
    keys |= {"fc_exp.weight": (45, 2048), "fc_exp.bias": (45,)}
    return keys


@pytest.fixture(scope="session")
def modules() -> tuple[KPDetector, HEEstimator]:
    torch.manual_seed(0)
    return KPDetector().eval(), HEEstimator().eval()


@pytest.fixture(scope="session")
def checkpoint(modules, tmp_path_factory) -> str:
    """Our random-weight modules saved in the public checkpoint's layout (Logger.save_cpk)."""
    detector, estimator = modules
    path = tmp_path_factory.mktemp("kp") / "00000189-checkpoint.pth.tar"
    optimizer = {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0]}]}
    torch.save(
        {
            "kp_detector": detector.state_dict(),
            "he_estimator": estimator.state_dict(),
            "generator": {"first.conv.weight": torch.zeros(1)},
            "optimizer_kp_detector": optimizer,
            "epoch": 0,
        },
        path,
    )
    return str(path)


@pytest.mark.parametrize(
    ("index", "expected", "n_entries", "n_learnable"),
    [
        (0, expected_detector_layout, 75, 41_940_047),
        (1, expected_estimator_layout, 402, 30_254_838),
    ],
)
def test_state_dict_matches_public_layout(modules, index, expected, n_entries, n_learnable):
    state = modules[index].state_dict()
    layout = {k: tuple(v.shape) for k, v in state.items()}
    assert layout == expected()
    assert len(state) == n_entries
    assert sum(p.numel() for p in modules[index].parameters()) == n_learnable


def test_registration_order_follows_reference(modules) -> None:
    detector, estimator = modules
    assert [n for n, _ in detector.named_children()] == ["predictor", "kp", "down"]
    assert [n for n, _ in estimator.named_children()][-5:] == [
        "fc_roll", "fc_pitch", "fc_yaw", "fc_t", "fc_exp"
    ]  # fmt: skip


def test_strict_load_of_public_layout(modules, checkpoint) -> None:
    detector, estimator = load_keypoint_models(checkpoint)
    assert not detector.training and not estimator.training
    for ours, loaded in zip(modules, (detector, estimator)):
        saved, got = ours.state_dict(), loaded.state_dict()
        assert all(torch.equal(saved[k], got[k]) for k in saved)


def test_load_errors_name_the_file_and_the_keys(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pth.tar"):
        load_keypoint_models(str(tmp_path / "absent.pth.tar"))
    generator_only = tmp_path / "generator_only.pth.tar"
    torch.save({"generator": {}, "epoch": 3}, generator_only)
    with pytest.raises(ValueError, match=r"generator_only.*kp_detector.*he_estimator"):
        load_keypoint_models(str(generator_only))
    # the Beta layout (scale_factor 1) has no down.weight: strict loading must refuse it
    beta = tmp_path / "beta.pth.tar"
    torch.save({"kp_detector": {"kp.bias": torch.zeros(15)}, "he_estimator": {}}, beta)
    with pytest.raises(ValueError, match=r"(?s)beta.*kp_detector.*down\.weight"):
        load_keypoint_models(str(beta))
    not_torch = tmp_path / "notes.txt"
    not_torch.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.txt"):
        load_keypoint_models(str(not_torch))


def test_headpose_bins_to_degrees() -> None:
    logits = torch.full((3, 66), -1e4)
    logits[0, 43] = 0  # bin 43 = 43 · 3 − 99 = +30°
    logits[1, 0] = 0  # first bin = −99°
    logits[2] = 0  # uniform: the mean bin angle, 32.5 · 3 − 99
    assert headpose_to_degrees(logits).tolist() == pytest.approx([30.0, -99.0, -1.5])


def test_rotation_of_a_pure_yaw_uses_314() -> None:
    rot = rotation_matrix(torch.tensor([30.0]), torch.zeros(1), torch.zeros(1))[0].double()
    a = 30 / 180 * 3.14
    hand = torch.tensor(
        [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(rot, hand, atol=1e-6, rtol=0)
    with_pi = 30 / 180 * math.pi  # the reference's 3.14 moves sin by ~2.4e-4 at 30°
    assert abs(rot[0, 2].item() - math.sin(with_pi)) > 1e-4


def test_rotation_order_is_pitch_yaw_roll() -> None:
    yaw, pitch, roll = 20.0, -10.0, 5.0
    y, p, r = (v / 180 * 3.14 for v in (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    rot = rotation_matrix(*(torch.tensor([v]) for v in (yaw, pitch, roll)))[0].numpy()
    np.testing.assert_allclose(rot, rx @ ry @ rz, atol=1e-6)
    assert not np.allclose(rot, rz @ ry @ rx, atol=1e-3)  # the Beta / space_data.pose order


def test_driving_keypoints_rotate_translate_and_add_expression() -> None:
    kp_c = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # (1, 2, 3)
    rot = rotation_matrix(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([90.0]))
    t = torch.tensor([[0.1, 0.2, 0.3]])
    exp = torch.tensor([[0.0, 0.0, 0.5, 0.0, 0.0, -0.5]])
    c, s = math.cos(3.14 / 2), math.sin(3.14 / 2)  # roll 90° (of 3.14) about z: x → y
    expected = torch.tensor([[[c + 0.1, s + 0.2, 0.8], [-s + 0.1, c + 0.2, -0.2]]])
    torch.testing.assert_close(driving_keypoints(kp_c, rot, t, exp), expected)


def test_estimator_outputs_keep_the_layer_name_swap(modules) -> None:
    """fc_roll produces "yaw" and fc_yaw produces "roll" (the checkpoint was trained so)."""
    estimator = copy.deepcopy(modules[1])
    peaks = {"fc_roll": 43, "fc_pitch": 30, "fc_yaw": 36}  # +30°, −9°, +9°
    with torch.no_grad():
        for name, peak in peaks.items():
            layer = getattr(estimator, name)
            layer.weight.zero_()
            layer.bias.fill_(-1e4)
            layer.bias[peak] = 0
        out = estimator(torch.rand(1, 3, 64, 64))  # any size works (global pool); small is cheap
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "yaw": (1, 66), "pitch": (1, 66), "roll": (1, 66), "t": (1, 3), "exp": (1, 45)
    }  # fmt: skip
    degrees = [headpose_to_degrees(out[k]).item() for k in ("yaw", "pitch", "roll")]
    assert degrees == pytest.approx([30.0, -9.0, 9.0])


def test_coordinate_grid_axes() -> None:
    grid = make_coordinate_grid(16, 64, 64)
    assert grid.shape == (16, 64, 64, 3)
    assert grid[0, 0, 0].tolist() == [-1.0, -1.0, -1.0] and grid[-1, -1, -1].tolist() == [1, 1, 1]
    assert grid[0, 0, 63, 0] == 1 and grid[0, 63, 0, 1] == 1 and grid[15, 0, 0, 2] == 1


def test_antialias_downsampling() -> None:
    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    torch.testing.assert_close(down.weight.sum(dim=(1, 2, 3)), torch.ones(3))
    out = down(torch.full((1, 3, 256, 256), 0.5))
    assert out.shape == (1, 3, 64, 64)
    torch.testing.assert_close(out[..., 2:-2, 2:-2], torch.full((1, 3, 60, 60), 0.5))


def test_prepare_images_as_the_reference_demo() -> None:
    """skimage.transform.resize to 256², RGB in [0, 1]; 256² crops pass through unchanged."""
    rng = np.random.default_rng(1)
    for shape in [(2, 256, 256, 3), (2, 300, 200, 3)]:
        crops = rng.integers(0, 256, shape, dtype=np.uint8)
        reference = np.stack([skimage.transform.resize(c, (256, 256)) for c in crops])
        images = prepare_images(crops)
        assert images.shape == (2, 3, 256, 256) and images.dtype == torch.float32
        np.testing.assert_allclose(images.permute(0, 2, 3, 1).numpy(), reference, atol=1e-6)


@pytest.mark.slow
def test_extractor_with_random_weight_checkpoint(checkpoint) -> None:
    """Shapes and the reference's kp assembly; one forward pass over N frames = N passes over
    one frame each (eval mode: no op mixes the frames of a batch); the source keypoints are
    the first frame's after each reset."""
    extractor = KeypointExtractor(KeypointsConfig(checkpoint=checkpoint, device="cpu"))
    assert extractor.missing_reason is None
    assert len(pickle.dumps(extractor)) < 10_000  # ships to a Ray actor before the models load
    crops = np.random.default_rng(0).integers(0, 256, (3, 96, 80, 3), dtype=np.uint8)
    out = extractor(crops)
    shapes = {k: v.shape for k, v in out.items()}
    assert shapes == {
        "kp": (3, 15, 3), "kp_source": (15, 3), "kp_pose": (3, 3), "kp_t": (3, 3),
        "kp_exp": (3, 15, 3),
    }  # fmt: skip
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())
    # kp is assembled from the other members exactly as the reference does
    rot = rotation_matrix(*torch.from_numpy(out["kp_pose"]).T)
    kp = driving_keypoints(
        torch.from_numpy(out["kp_source"])[None], rot, torch.from_numpy(out["kp_t"]),
        torch.from_numpy(out["kp_exp"]).reshape(3, 45),
    )  # fmt: skip
    np.testing.assert_allclose(out["kp"], kp.numpy(), atol=1e-5)
    assert np.abs(out["kp_source"]).max() <= 1  # expected positions on the [−1, 1] grid
    # frame by frame, after a reset: the same numbers
    extractor.reset()
    parts = [extractor.batch(crops[k : k + 1]) for k in range(len(crops))]
    for name in ("kp", "kp_pose", "kp_t", "kp_exp"):
        single = np.concatenate([p[name] for p in parts])
        np.testing.assert_allclose(out[name], single, rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(extractor.source, out["kp_source"])
    extractor.reset()  # a new clip: its source is its own first frame
    extractor.batch(crops[2:])
    assert not np.array_equal(extractor.source, out["kp_source"])


def test_extractor_without_checkpoint_says_why() -> None:
    extractor = KeypointExtractor(KeypointsConfig())
    assert extractor.missing_reason == "no checkpoint configured (extract.keypoints.checkpoint)"
    with pytest.raises(RuntimeError, match="no checkpoint configured"):
        extractor(np.zeros((1, 8, 8, 3), np.uint8))


def test_extractor_with_absent_checkpoint_fails_loudly(tmp_path) -> None:
    extractor = KeypointExtractor(KeypointsConfig(checkpoint=str(tmp_path / "nope.pth.tar")))
    with pytest.raises(FileNotFoundError, match="nope.pth.tar"):
        extractor(np.zeros((1, 8, 8, 3), np.uint8))


def test_config_from_params() -> None:
    config = from_mapping(KeypointsConfig, {"checkpoint": "/ckpt/vox.pth.tar"})
    assert (config.checkpoint, config.device) == ("/ckpt/vox.pth.tar", "auto")
    with pytest.raises(ConfigError, match="device"):
        from_mapping(KeypointsConfig, {"device": "tpu"})
