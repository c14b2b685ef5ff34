"""The face-vid2vid generator against the public checkpoint's layout, and its numerics.

The public checkpoint is not on these machines: loading is checked with our own randomly
initialised modules saved in its layout, and forward passes run on small random-weight
instances of the same classes (shapes, ranges, determinism, batching: no image quality claim).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from space_data.keypoints import Vid2VidCheckpointError, load_entry, make_coordinate_grid
from space_models.generator import (
    DenseMotionNetwork,
    OcclusionAwareSPADEGenerator,
    keypoint_heatmaps,
    load_generator,
    relative_keypoints,
    render_frames,
)


def small_generator(seed: int = 0) -> OcclusionAwareSPADEGenerator:
    """A random-weight generator of the same classes at a size a CPU test can run (64² images,
    4×8×16×16 feature volume, 2-level motion hourglass)."""
    torch.manual_seed(seed)
    generator = OcclusionAwareSPADEGenerator(
        feature_channel=4,
        block_expansion=8,
        max_features=32,
        reshape_channel=4,
        reshape_depth=8,
        num_resblocks=1,
        dense_motion={"block_expansion": 8, "num_blocks": 2, "max_features": 32},
    )
    with torch.no_grad():  # random BN statistics, so the layers are not all near identity
        for module in generator.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return generator.eval()


def test_public_layout_counts():
    generator = OcclusionAwareSPADEGenerator()
    state = generator.state_dict()
    assert len(state) == 386
    assert sum(p.numel() for p in generator.parameters()) == 100_988_176
    # names the reference's modules give (spot checks across every part)
    for key in (
        "dense_motion_network.hourglass.encoder.down_blocks.4.conv.weight",
        "dense_motion_network.hourglass.decoder.up_blocks.0.norm.num_batches_tracked",
        "dense_motion_network.occlusion.weight",
        "resblocks_3d.3dr5.conv2.weight",
        "decoder.G_middle_5.conv_1.weight_orig",
        "decoder.up_1.conv_s.weight_u",
        "decoder.up_1.norm_s.mlp_shared.0.weight",
        "fourth.bias",
    ):
        assert key in state, key
    assert tuple(state["dense_motion_network.mask.weight"].shape) == (16, 112, 7, 7, 7)
    assert tuple(state["dense_motion_network.occlusion.weight"].shape) == (1, 1792, 7, 7)
    assert tuple(state["decoder.fc.weight"].shape) == (512, 256, 3, 3)


def test_strict_load_of_the_public_layout(tmp_path):
    torch.manual_seed(1)
    saved = OcclusionAwareSPADEGenerator().state_dict()
    path = tmp_path / "00000189-checkpoint.pth.tar"
    torch.save({"generator": saved, "kp_detector": {}, "epoch": 0}, path)
    loaded = load_generator(str(path)).state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_a_bad_generator_entry_names_the_key():
    with torch.device("meta"):
        generator = OcclusionAwareSPADEGenerator()
    good = generator.state_dict()
    missing = {k: v for k, v in good.items() if k != "fourth.bias"}
    extra = {**good, "module.extra": torch.zeros(1)}
    wrong = {**good, "decoder.fc.weight": torch.zeros(512, 256, 1, 1)}
    for state, needle in ((missing, "fourth.bias"), (extra, "module.extra"), (wrong, "fc.weight")):
        with pytest.raises(Vid2VidCheckpointError, match=needle):
            load_entry(generator, {"generator": state}, "generator", "ckpt.pth.tar")


def test_load_generator_without_the_entry(tmp_path):
    path = tmp_path / "kp_only.pth.tar"
    torch.save({"kp_detector": {}, "he_estimator": {}}, path)
    with pytest.raises(Vid2VidCheckpointError, match=r"missing \['generator'\]"):
        load_generator(str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_generator(str(tmp_path / "absent.pth.tar"))


def test_heatmaps_are_gaussians_at_the_keypoints():
    kp = torch.tensor([[[0.0, 0.0, 0.0], [0.5, -0.5, 1.0]]])
    heat = keypoint_heatmaps(kp, 5, 5, 5)  # grid −1, −0.5, 0, 0.5, 1 on each axis
    assert heat.shape == (1, 2, 5, 5, 5)
    assert heat[0, 0, 2, 2, 2] == 1.0 and heat[0, 1, 4, 1, 3] == 1.0  # (z, y, x) indices
    assert heat[0, 0, 2, 2, 3] == pytest.approx(np.exp(-0.5 * 0.25 / 0.01))


def test_no_keypoint_motion_gives_the_identity_warp():
    torch.manual_seed(2)
    network = DenseMotionNetwork(
        feature_channel=4, block_expansion=8, num_blocks=2, max_features=32, reshape_depth=8
    ).eval()
    feature = torch.randn(2, 4, 8, 16, 16)
    kp = torch.rand(2, 15, 3) * 2 - 1
    with torch.no_grad():
        deformation, occlusion = network(feature, kp, kp)
        moved, _ = network(feature, kp, kp + 0.3)
    identity = make_coordinate_grid(8, 16, 16).expand(2, -1, -1, -1, -1)
    torch.testing.assert_close(deformation, identity)  # every proposal is the identity
    assert occlusion.shape == (2, 1, 16, 16) and 0 <= occlusion.min() <= occlusion.max() <= 1
    # a keypoint moved by +0.3 pulls its neighbourhood from 0.3 back in the source
    assert (moved - identity).min() < -0.05 and (moved - identity).max() <= 1e-6


def test_frames_shapes_range_determinism_and_batching():
    generator = small_generator()
    source = torch.rand(1, 3, 64, 64)
    kp_source = torch.rand(1, 15, 3) * 1.6 - 0.8
    kp_driving = kp_source + 0.05 * torch.randn(3, 15, 3)
    with torch.no_grad():
        batch = generator(source.expand(3, -1, -1, -1), kp_source.expand(3, -1, -1), kp_driving)
        again = generator.render(generator.encode(source), kp_source.expand(3, -1, -1), kp_driving)
        single = torch.cat([generator(source, kp_source, kp_driving[i : i + 1]) for i in range(3)])
    assert batch.shape == (3, 3, 64, 64)
    assert batch.min() >= 0 and batch.max() <= 1 and batch.std() > 0
    torch.testing.assert_close(again, batch, rtol=0, atol=1e-4)  # source encoded once
    torch.testing.assert_close(single, batch, rtol=0, atol=1e-4)  # batch = frame by frame
    assert not torch.allclose(batch[0], batch[1])  # different keypoints, different frames


def test_render_frames_yields_uint8_frames_in_order():
    generator = small_generator()
    rgb = (np.random.default_rng(0).random((80, 70, 3)) * 255).astype(np.uint8)
    kp_source = np.random.default_rng(1).uniform(-0.8, 0.8, (15, 3)).astype(np.float32)
    driving = kp_source + 0.05 * np.random.default_rng(2).standard_normal((5, 15, 3))
    run = dict(progress=False, size=64)
    frames = list(render_frames(generator, rgb, kp_source, driving, batch_size=2, **run))
    one = list(render_frames(generator, rgb, kp_source, driving, batch_size=5, **run))
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    assert max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, one)) <= 1


def test_relative_keypoints():
    source = torch.rand(1, 15, 3)
    driving = torch.cat([source, torch.rand(3, 15, 3)])  # the first frame is the source
    moved = relative_keypoints(driving, driving[:1], source)
    torch.testing.assert_close(moved[0], source[0])
    torch.testing.assert_close(moved - source, driving - driving[:1])
    doubled = relative_keypoints(driving, driving[:1], 2 * source, adapt_scale=True)
    # the source's hull is 8 times the first frame's, so the motion scales by sqrt(8)
    torch.testing.assert_close(doubled - 2 * source, (driving - driving[:1]) * 8**0.5)
