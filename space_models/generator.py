"""The face-vid2vid generator (public Vox-256 model): a source image + keypoints → a frame.

SPACE's last stage (paper Sec. 3.6) hands the per-frame keypoints that L2L predicts to a
pretrained face-vid2vid generator. The only public weights are the Vox-256 reimplementation's
(zhanglonghao1992/One-Shot_Free-View_Neural_Talking_Head_Synthesis, "New" config, SPADE
decoder), 256×256 pixels; the paper's 512×512 generator is NVIDIA's and was never released.
These modules follow that reimplementation name for name, so the `generator` entry of its
checkpoint (`00000189-checkpoint.pth.tar`, the file whose `kp_detector` / `he_estimator`
entries space_data.keypoints loads) fits with `strict=True`: 386 state-dict entries,
100,988,176 parameters.

Data flow, shapes for one 256² image (N frames per batch):
  source (N, 3, 256, 256) in [0, 1] → appearance encoder → feature volume (N, 32, 16, 64, 64)
  keypoints (N, 15, 3) source / driving → DenseMotionNetwork → a backward warp of the volume
  (N, 16, 64, 64, 3), a 17-way mask (background + 15 keypoints) and an occlusion map
  warped volume → 2D (N, 512, 64, 64) → SPADE decoder → frame (N, 3, 256, 256) in [0, 1].

Numerics kept for parity: `grid_sample` with its default bilinear / zeros / align_corners=False,
trilinear resizing of the warp when its size differs from the volume's, nearest upsampling in
the 3D hourglass and the SPADE decoder, LeakyReLU 0.01 after `third` and 0.2 in the decoder,
Gaussian keypoint heatmaps of variance 0.01, spectral-normalised SPADE convolutions (their
stored `weight_u` / `weight_v` are used as they are in eval mode).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm
from tqdm import tqdm

from space_data.keypoints import (
    IMAGE_SIZE,
    NUM_KP,
    DownBlock2d,
    UpBlock3d,
    load_entry,
    make_coordinate_grid,
    prepare_images,
    read_vid2vid_checkpoint,
)

KP_VARIANCE = 0.01
"""Variance of the Gaussian drawn around each keypoint in the [−1, 1]³ volume."""


# ---------------------------------------------------------------------------------------------
# Building blocks (modules/util.py of the reference) not already in space_data.keypoints.


class SameBlock2d(nn.Module):
    """conv → BN → ReLU (or LeakyReLU 0.01), same resolution."""

    def __init__(self, cin: int, cout: int, kernel: int, lrelu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel, padding=kernel // 2)
        self.norm = nn.BatchNorm2d(cout, affine=True)
        self.ac = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ac(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv(ReLU(BN(conv(ReLU(BN(x)))))), 3³ kernels."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(features, affine=True)
        self.norm2 = nn.BatchNorm3d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(out)))


class DownBlock3d(nn.Module):
    """conv 3³ → BN → ReLU → average pool over H, W: (N, C, D, H, W) → (N, C', D, H/2, W/2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(cout, affine=True)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class Hourglass3d(nn.Module):
    """3D U-Net: `num_blocks` down blocks, as many up blocks with skip concatenation, then a
    3³ conv + BN + ReLU; (N, C_in, D, H, W) → (N, block_expansion + C_in, D, H, W)."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        width = [min(max_features, block_expansion * 2**i) for i in range(num_blocks + 1)]
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList(
            DownBlock3d(in_features if i == 0 else width[i], width[i + 1])
            for i in range(num_blocks)
        )
        self.decoder = nn.Module()
        self.decoder.up_blocks = nn.ModuleList(
            UpBlock3d((1 if i == num_blocks - 1 else 2) * width[i + 1], width[i])
            for i in reversed(range(num_blocks))
        )
        self.out_filters = block_expansion + in_features
        self.decoder.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.encoder.down_blocks:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.decoder.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))


def keypoint_heatmaps(kp: torch.Tensor, depth: int, height: int, width: int) -> torch.Tensor:
    """(N, K, 3) keypoints in [−1, 1] → (N, K, D, H, W) Gaussians exp(−|g − kp|² / (2·0.01))."""
    grid = make_coordinate_grid(depth, height, width).to(kp)  # (D, H, W, 3)
    diff = grid[None, None] - kp[:, :, None, None, None, :]  # (N, K, D, H, W, 3)
    return torch.exp(-0.5 * (diff**2).sum(-1) / KP_VARIANCE)


class DenseMotionNetwork(nn.Module):
    """Keypoints → a backward warp of the source feature volume, plus an occlusion map.

    Each keypoint k proposes the motion g ↦ g − kp_driving[k] + kp_source[k] (the background
    proposes identity); an hourglass over the volume warped by every proposal, with the
    driving-minus-source heatmaps, predicts a per-voxel softmax mask that blends them.
    """

    def __init__(
        self,
        num_kp: int = NUM_KP,
        feature_channel: int = 32,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        reshape_depth: int = 16,
        compress: int = 4,
    ) -> None:
        super().__init__()
        self.hourglass = Hourglass3d(
            block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features
        )
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion = nn.Conv2d(
            self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3
        )
        self.num_kp = num_kp

    def forward(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """feature (N, 32, D, H, W), keypoints (N, K, 3) → deformation (N, D, H, W, 3) as
        `grid_sample` coordinates, occlusion map (N, 1, H, W) in [0, 1]."""
        feature = F.relu(self.norm(self.compress(feature)))  # (N, 4, D, H, W)
        n, c, d, h, w = feature.shape
        k1 = self.num_kp + 1
        identity = make_coordinate_grid(d, h, w).to(feature)[None, None]  # (1, 1, D, H, W, 3)
        # (g − kp_driving) + kp_source, in the reference's order of operations (same bits)
        to_source = (identity - kp_driving[:, :, None, None, None, :]) + kp_source[
            :, :, None, None, None, :
        ]  # (N, K, D, H, W, 3)
        motions = torch.cat([identity.expand(n, 1, d, h, w, 3), to_source], dim=1)

        # the volume warped by each of the K + 1 motions: (N, K+1, C, D, H, W)
        repeated = feature[:, None].expand(n, k1, c, d, h, w).reshape(n * k1, c, d, h, w)
        warped = F.grid_sample(repeated, motions.reshape(n * k1, d, h, w, 3), align_corners=False)
        warped = warped.view(n, k1, c, d, h, w)

        heat = keypoint_heatmaps(kp_driving, d, h, w) - keypoint_heatmaps(kp_source, d, h, w)
        heat = torch.cat([heat.new_zeros(n, 1, d, h, w), heat], dim=1)[:, :, None]
        prediction = self.hourglass(torch.cat([heat, warped], dim=2).view(n, -1, d, h, w))

        mask = F.softmax(self.mask(prediction), dim=1)[:, :, None]  # (N, K+1, 1, D, H, W)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask).sum(dim=1)  # (N, 3, D, H, W)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(n, -1, h, w)))
        return deformation.permute(0, 2, 3, 4, 1), occlusion


class SPADE(nn.Module):
    """Instance norm (no affine) modulated by γ, β predicted from a segmentation-like map."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """SPADE → LeakyReLU 0.2 → spectral-norm conv, twice, plus a (learned when the width
    changes) shortcut."""

    def __init__(self, fin: int, fout: int, label_nc: int) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        middle = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, middle, kernel_size=3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(middle, fout, kernel_size=3, padding=1))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, kernel_size=1, bias=False))
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(middle, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """(N, 256, 64, 64) features → (N, 3, 256, 256) image in [0, 1]; the features are also the
    SPADE modulation input of every block."""

    def __init__(self, features: int = 256, out_features: int = 64) -> None:
        super().__init__()
        wide = 2 * features
        self.fc = nn.Conv2d(features, wide, kernel_size=3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(wide, wide, features))
        self.up_0 = SPADEResnetBlock(wide, features, features)
        self.up_1 = SPADEResnetBlock(features, out_features, features)
        self.conv_img = nn.Conv2d(out_features, 3, kernel_size=3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, feature)
        x = self.up_1(self.up(self.up_0(self.up(x), feature)), feature)  # (N, 64, 256, 256)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class OcclusionAwareSPADEGenerator(nn.Module):
    """The Vox-256 generator: `encode` the source once, then `render` any number of frames.

    `forward(source, kp_source, kp_driving)` = `render(encode(source), kp_source, kp_driving)`;
    images (N, 3, 256, 256) RGB in [0, 1], keypoints (N, 15, 3) in the networks' [−1, 1] space.
    The defaults are config/vox-256.yaml's `generator_params` (`dense_motion`: extra
    DenseMotionNetwork arguments, for smaller test instances); `feature_channel` must equal
    `reshape_channel` and `max_features` = `reshape_channel · reshape_depth`.
    """

    def __init__(
        self,
        num_kp: int = NUM_KP,
        feature_channel: int = 32,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
        dense_motion: dict | None = None,
    ) -> None:
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp,
            feature_channel=feature_channel,
            reshape_depth=reshape_depth,
            **(dense_motion or {}),
        )
        self.first = SameBlock2d(3, block_expansion, kernel=3)
        width = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(width[i], width[i + 1]) for i in range(num_down_blocks)
        )
        self.second = nn.Conv2d(width[-1], max_features, kernel_size=1)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))
        decoded = block_expansion * 2**num_down_blocks
        self.third = SameBlock2d(max_features, decoded, kernel=3, lrelu=True)
        self.fourth = nn.Conv2d(decoded, decoded, kernel_size=1)
        self.decoder = SPADEDecoder(features=decoded)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """(N, 3, 256, 256) → appearance feature volume (N, 32, 16, 64, 64)."""
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)  # (N, 512, 64, 64)
        n, _, h, w = out.shape
        return self.resblocks_3d(out.view(n, self.reshape_channel, self.reshape_depth, h, w))

    def render(
        self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        """Feature volume (N or 1, 32, D, H, W) and keypoints (N, K, 3) → (N, 3, 256, 256)."""
        feature = feature.expand(kp_driving.shape[0], -1, -1, -1, -1)
        deformation, occlusion = self.dense_motion_network(feature, kp_source, kp_driving)
        n, _, d, h, w = feature.shape
        if deformation.shape[1:4] != (d, h, w):
            deformation = F.interpolate(
                deformation.permute(0, 4, 1, 2, 3), size=(d, h, w), mode="trilinear"
            ).permute(0, 2, 3, 4, 1)
        out = F.grid_sample(feature, deformation, align_corners=False)  # (N, 32, D, H, W)
        out = self.fourth(self.third(out.reshape(n, -1, h, w)))  # (N, 256, H, W)
        if occlusion.shape[2:] != out.shape[2:]:
            occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
        return self.decoder(out * occlusion)

    def forward(
        self, source: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> torch.Tensor:
        return self.render(self.encode(source), kp_source, kp_driving)


def load_generator(path: str, ckpt: dict | None = None) -> OcclusionAwareSPADEGenerator:
    """The generator in eval mode from the `generator` entry of a face-vid2vid checkpoint
    (local path or URL; `ckpt`: its dict when already read), loaded with `weights_only=True`
    and `strict=True`; a missing, extra or mis-shaped key raises
    space_data.keypoints.Vid2VidCheckpointError naming it."""
    if ckpt is None:
        ckpt = read_vid2vid_checkpoint(path, ("generator",))
    with torch.device("meta"):  # no random init of 101 M weights that are overwritten anyway
        generator = OcclusionAwareSPADEGenerator()
    load_entry(generator, ckpt, "generator", path)
    return generator.eval()


def relative_keypoints(
    kp_driving: torch.Tensor,
    kp_initial: torch.Tensor,
    kp_source: torch.Tensor,
    adapt_scale: bool = False,
) -> torch.Tensor:
    """The reference demo's relative mode: kp_source + (kp_driving − kp_initial) · s, with
    s = sqrt(hull volume of kp_source / hull volume of kp_initial) when `adapt_scale`, else 1.
    kp_driving (N, K, 3); kp_initial, kp_source (1, K, 3)."""
    scale = 1.0
    if adapt_scale:
        from scipy.spatial import ConvexHull

        volumes = [ConvexHull(k[0].double().cpu().numpy()).volume for k in (kp_source, kp_initial)]
        scale = float(np.sqrt(volumes[0]) / np.sqrt(volumes[1]))
    return kp_source + (kp_driving - kp_initial) * scale


def render_frames(
    generator: OcclusionAwareSPADEGenerator,
    source: np.ndarray,
    kp_source: np.ndarray,
    kp_driving: np.ndarray,
    batch_size: int = 4,
    relative: bool = False,
    adapt_scale: bool = False,
    progress: bool = True,
    size: int = IMAGE_SIZE,
) -> Iterator[np.ndarray]:
    """Frames (size, size, 3) uint8 RGB, one per driving row, rendered in batches on the
    generator's device (size: the generator's input side, 256 for the public model).

    source: (H, W, 3) uint8 RGB image (resized as the keypoint networks' input); kp_source
    (K, 3): the source image's own driving keypoints (R·kp_canonical + t + exp); kp_driving
    (T, K, 3) (L2L's). `relative` moves the source keypoints by each frame's change from the
    first driving frame (the reference demo's --relative), `adapt_scale` scales that change.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    device = next(generator.parameters()).device
    src = torch.from_numpy(np.asarray(kp_source, np.float32))[None].to(device)  # (1, K, 3)
    driving = torch.from_numpy(np.asarray(kp_driving, np.float32)).to(device)  # (T, K, 3)
    if relative:
        driving = relative_keypoints(driving, driving[:1], src, adapt_scale)
    starts = range(0, len(driving), batch_size)
    with torch.no_grad():
        feature = generator.encode(prepare_images(source[None], size).to(device))
        for start in tqdm(starts, desc="render", unit="batch", disable=not progress):
            kp = driving[start : start + batch_size]
            frames = generator.render(feature, src.expand(len(kp), -1, -1), kp)
            pixels = (frames.permute(0, 2, 3, 1).cpu().numpy() * 255).round()
            yield from pixels.astype(np.uint8)
