"""face-vid2vid keypoints: the public Vox-256 keypoint detector and head-pose/expression estimator.

The modules reproduce the public face-vid2vid reimplementation (zhanglonghao1992/One-Shot_Free-
View_Neural_Talking_Head_Synthesis, "New" Vox-256 config; SadTalker reuses them) name for name,
so its checkpoint's `kp_detector` and `he_estimator` state dicts load with `strict=True`. The
layout, shapes and pose math are documented in KEYPOINTS.md; the traps kept for parity:
nearest upsampling in the 3D decoder, the `down.weight` Gaussian buffer, the estimator's
`fc_roll` layer producing *yaw* and `fc_yaw` producing *roll*, 66 bins of 3° from −99°,
radians = deg / 180 · 3.14 (not π), R = pitch(x) · yaw(y) · roll(z).

Per clip (`KeypointExtractor`): canonical keypoints come from the first frame only (the source
image face-vid2vid animates); every frame's driving keypoints are
kp = R(frame) · kp_source + t(frame) + exp(frame), as in the reference `demo.py`.
Angles in `kp_pose` follow the estimator's own (Hopenet / 300W-LP) convention; their signs have
not been checked against `space_data.pose` (that needs the real checkpoint).
No checkpoint ships with the project: without one the keypoint members are absent.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import skimage.transform
import torch
import torch.nn.functional as F
from torch import nn

from space_data import storage
from space_data.errors import SetupError
from space_data.frames import check_frames

NUM_KP = 15
"""Keypoints of the public checkpoint (the generator is built for exactly 15)."""
IMAGE_SIZE = 256
"""Square input side of both networks, pixels."""
NUM_BINS = 66
"""Head-pose classification bins of 3°, centred at −99°, −96°, …, 96°."""


# ---------------------------------------------------------------------------------------------
# Building blocks (modules/util.py of the reference). BatchNorm: the reference trains with
# SynchronizedBatchNorm, which has the same parameters and buffers as nn.BatchNorm*d.


class DownBlock2d(nn.Module):
    """conv 3×3 → BN → ReLU → 2×2 average pool: (N, C_in, H, W) → (N, C_out, H/2, W/2)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock3d(nn.Module):
    """Nearest ×2 upsampling of H, W → conv 3³, BN, ReLU: (N, C, D, H, W) → (N, C', D, 2H, 2W)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the "New" checkpoint was trained with the default (nearest); "Beta" used trilinear
        x = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(x)))


class KPHourglass(nn.Module):
    """2D encoder → 1×1 conv reshaped to 3D → 3D decoder: (N, 3, 64, 64) → (N, 32, 16, 64, 64)."""

    def __init__(
        self,
        block_expansion: int = 32,
        in_features: int = 3,
        reshape_features: int = 16384,
        reshape_depth: int = 16,
        num_blocks: int = 5,
        max_features: int = 1024,
    ) -> None:
        super().__init__()
        width = [min(max_features, block_expansion * 2**i) for i in range(num_blocks + 1)]
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.down_blocks.add_module(
                f"down{i}", DownBlock2d(in_features if i == 0 else width[i], width[i + 1])
            )
        self.conv = nn.Conv2d(width[num_blocks], reshape_features, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.up_blocks.add_module(
                f"up{i}", UpBlock3d(width[num_blocks - i], width[num_blocks - i - 1])
            )
        self.reshape_depth = reshape_depth
        self.out_filters = width[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))  # (N, 16384, 2, 2)
        n, c, h, w = out.shape
        out = out.view(n, c // self.reshape_depth, self.reshape_depth, h, w)  # (N, 1024, 16, 2, 2)
        return self.up_blocks(out)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (σ = (1/scale − 1)/2) then keep every (1/scale)-th pixel: 256² → 64²."""

    weight: torch.Tensor

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        grid = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-((grid - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        # persistent buffer: the public checkpoint stores it as `down.weight`
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).contiguous())
        self.groups = channels
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        x = F.conv2d(x, weight=self.weight, groups=self.groups)
        return x[:, :, :: self.step, :: self.step]


def make_coordinate_grid(depth: int, height: int, width: int) -> torch.Tensor:
    """(D, H, W, 3) float32 grid of (x along W, y along H, z along D), each spanning [−1, 1]."""
    # 2 · (i / (n − 1)) − 1 in this order, as the reference (bit-identical grid)
    z, y, x = (
        2 * (torch.arange(n, dtype=torch.float32) / (n - 1)) - 1 for n in (depth, height, width)
    )
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


class KPDetector(nn.Module):
    """Canonical 3D keypoints: (N, 3, 256, 256) RGB in [0, 1] → {"value": (N, 15, 3)} in [−1, 1].

    A softmax (temperature 0.1) over each keypoint's 16×64×64 heatmap, then the expected grid
    position. Submodule order (predictor, kp, down) follows the reference.
    """

    def __init__(
        self, num_kp: int = NUM_KP, temperature: float = 0.1, scale_factor: float = 0.25
    ) -> None:
        super().__init__()
        self.predictor = KPHourglass()
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        self.temperature = temperature
        self.down = AntiAliasInterpolation2d(3, scale_factor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.kp(self.predictor(self.down(x)))  # (N, K, 16, 64, 64)
        n, k, d, h, w = logits.shape
        heat = F.softmax(logits.view(n, k, -1) / self.temperature, dim=2)  # (N, K, D·H·W)
        grid = make_coordinate_grid(d, h, w).to(heat).view(-1, 3)  # (D·H·W, 3)
        return {"value": heat @ grid}


class ResBottleneck(nn.Module):
    """1×1 → 3×3 (stride s) → 1×1 bottleneck with BN, residual (1×1 conv + BN skip when s ≠ 1)."""

    def __init__(self, in_features: int, stride: int) -> None:
        super().__init__()
        mid = in_features // 4
        self.conv1 = nn.Conv2d(in_features, mid, kernel_size=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, in_features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(mid, affine=True)
        self.norm2 = nn.BatchNorm2d(mid, affine=True)
        self.norm3 = nn.BatchNorm2d(in_features, affine=True)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


def _stage(prefix: str, features: int, count: int) -> nn.Sequential:
    stage = nn.Sequential()
    for i in range(count):
        stage.add_module(f"{prefix}_{i}", ResBottleneck(features, stride=1))
    return stage


class HEEstimator(nn.Module):
    """Head pose, translation, expression: (N, 3, 256, 256) RGB in [0, 1] →
    {"yaw", "pitch", "roll": (N, 66) bin logits, "t": (N, 3), "exp": (N, 3·K)}.

    Registration order and names follow the reference (they are the checkpoint's keys).
    """

    def __init__(
        self, block_expansion: int = 64, num_kp: int = NUM_KP, num_bins: int = NUM_BINS
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, block_expansion, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(block_expansion, affine=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(block_expansion, 256, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(256, affine=True)
        self.block1 = _stage("b1", 256, 3)
        self.conv3 = nn.Conv2d(256, 512, kernel_size=1)
        self.norm3 = nn.BatchNorm2d(512, affine=True)
        self.block2 = ResBottleneck(512, stride=2)
        self.block3 = _stage("b3", 512, 3)
        self.conv4 = nn.Conv2d(512, 1024, kernel_size=1)
        self.norm4 = nn.BatchNorm2d(1024, affine=True)
        self.block4 = ResBottleneck(1024, stride=2)
        self.block5 = _stage("b5", 1024, 5)
        self.conv5 = nn.Conv2d(1024, 2048, kernel_size=1)
        self.norm5 = nn.BatchNorm2d(2048, affine=True)
        self.block6 = ResBottleneck(2048, stride=2)
        self.block7 = _stage("b7", 2048, 2)
        self.fc_roll = nn.Linear(2048, num_bins)
        self.fc_pitch = nn.Linear(2048, num_bins)
        self.fc_yaw = nn.Linear(2048, num_bins)
        self.fc_t = nn.Linear(2048, 3)
        self.fc_exp = nn.Linear(2048, 3 * num_kp)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.maxpool(F.relu(self.norm1(self.conv1(x))))  # (N, 64, 64, 64)
        out = self.block1(F.relu(self.norm2(self.conv2(out))))  # (N, 256, 64, 64)
        out = self.block2(F.relu(self.norm3(self.conv3(out))))  # (N, 512, 32, 32)
        out = self.block3(out)
        out = self.block4(F.relu(self.norm4(self.conv4(out))))  # (N, 1024, 16, 16)
        out = self.block5(out)
        out = self.block6(F.relu(self.norm5(self.conv5(out))))  # (N, 2048, 8, 8)
        out = self.block7(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # (N, 2048)
        # the swap is the reference's: the layer named fc_roll was trained on yaw labels
        return {
            "yaw": self.fc_roll(out),
            "pitch": self.fc_pitch(out),
            "roll": self.fc_yaw(out),
            "t": self.fc_t(out),
            "exp": self.fc_exp(out),
        }


# ---------------------------------------------------------------------------------------------
# Pose math of the reference demo.py / modules/model.py (New version).


def headpose_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(N, 66) bin logits → (N,) degrees: softmax expectation of the bin angles i · 3 − 99."""
    bins = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (F.softmax(logits, dim=1) * bins).sum(dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) R = Rx(pitch) · Ry(yaw) · Rz(roll) from (N,) degrees.

    Radians are deg / 180 · 3.14, the reference's literal (π would move the keypoints the
    generator was trained on).
    """
    y, p, r = (a / 180 * 3.14 for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    rows = {
        "pitch": (one, zero, zero, zero, p.cos(), -p.sin(), zero, p.sin(), p.cos()),
        "yaw": (y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()),
        "roll": (r.cos(), -r.sin(), zero, r.sin(), r.cos(), zero, zero, zero, one),
    }
    mats = {name: torch.stack(v, dim=1).view(-1, 3, 3) for name, v in rows.items()}
    return mats["pitch"] @ mats["yaw"] @ mats["roll"]


def driving_keypoints(
    kp_canonical: torch.Tensor, rot: torch.Tensor, t: torch.Tensor, exp: torch.Tensor
) -> torch.Tensor:
    """(N, K, 3) kp = R · kp_canonical + t + exp from kp_canonical (N or 1, K, 3), R (N, 3, 3),
    t (N, 3) and exp (N, 3K)."""
    kp_canonical = kp_canonical.expand(rot.shape[0], -1, -1)
    rotated = torch.einsum("bmp,bkp->bkm", rot, kp_canonical)
    return rotated + t[:, None, :] + exp.view(exp.shape[0], -1, 3)


# ---------------------------------------------------------------------------------------------
# Checkpoint loading and the per-clip extractor.


class Vid2VidCheckpointError(SetupError, ValueError):
    """The configured face-vid2vid checkpoint cannot be used (stops the run, names the file)."""


CHECKPOINT_ENTRIES = ("kp_detector", "he_estimator")
"""Entries of the public checkpoint dict that hold our modules' state dicts."""


def read_torch_checkpoint(path: str, what: str, fix: str, error: type[Exception]) -> Any:
    """The object a torch checkpoint holds (local path or URL, `weights_only=True`, on CPU).
    FileNotFoundError "<what> <path> not found: <fix>", or `error` with the loader's first line
    when the file is not a readable checkpoint."""
    if not storage.exists(path):
        raise FileNotFoundError(f"{what} {path} not found: {fix}")
    try:
        with storage.open_file(path) as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"{path} is not a readable torch checkpoint: {first}") from e


def read_vid2vid_checkpoint(path: str, entries: tuple[str, ...]) -> dict:
    """The state-dict `entries` of a face-vid2vid checkpoint (local path or URL,
    `weights_only=True`), by name (other entries, e.g. optimizer states, are dropped);
    FileNotFoundError / Vid2VidCheckpointError naming the file otherwise."""
    ckpt = read_torch_checkpoint(
        path,
        "face-vid2vid checkpoint",
        "set extract.keypoints.checkpoint in params.yaml to the public Vox-256 file "
        "(00000189-checkpoint.pth.tar) or null",
        Vid2VidCheckpointError,
    )
    found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
    missing = [k for k in entries if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise Vid2VidCheckpointError(
            f"{path} is not a face-vid2vid checkpoint: expected entries {list(entries)} "
            f"(state dicts), missing {missing}; found {found}"
        )
    return {k: ckpt[k] for k in entries}


def load_entry(module: nn.Module, ckpt: dict, name: str, path: str) -> None:
    """Load `ckpt[name]` into `module` strictly (assigning tensors, so a module built on the
    meta device gets real ones); Vid2VidCheckpointError naming the missing, extra or
    mis-shaped keys."""
    try:
        module.load_state_dict(ckpt[name], strict=True, assign=True)
    except RuntimeError as e:
        raise Vid2VidCheckpointError(
            f"{path}: entry {name!r} does not fit {type(module).__name__}: {e}"
        ) from e


def load_keypoint_models(path: str, ckpt: dict | None = None) -> tuple[KPDetector, HEEstimator]:
    """KPDetector and HEEstimator in eval mode from a face-vid2vid checkpoint (local path or URL).

    The file is a `torch.save` dict whose `kp_detector` and `he_estimator` entries are state
    dicts (e.g. the public Vox-256 `00000189-checkpoint.pth.tar`); other entries (generator,
    optimizers, epoch) are ignored. Loaded with `weights_only=True` and `strict=True`. `ckpt`:
    that dict when the caller has already read it (`space animate` reads the file once for the
    keypoint nets and the generator).
    """
    if ckpt is None:
        ckpt = read_vid2vid_checkpoint(path, CHECKPOINT_ENTRIES)
    with torch.device("meta"):  # no random init of 72 M weights that are overwritten anyway
        detector, estimator = KPDetector(), HEEstimator()
    for name, module in zip(CHECKPOINT_ENTRIES, (detector, estimator)):
        load_entry(module, ckpt, name, path)
    return detector.eval(), estimator.eval()


@dataclass
class KeypointsConfig:
    """face-vid2vid keypoint extraction (`extract.keypoints` in params.yaml)."""

    checkpoint: str | None = None
    """face-vid2vid checkpoint (Vox-256 `00000189-checkpoint.pth.tar`); None = no keypoints."""
    device: str = "auto"
    """torch device: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N"."""

    def __post_init__(self) -> None:
        if self.checkpoint is not None and not str(self.checkpoint).strip():
            raise ValueError("checkpoint must be a path or null, not an empty string")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(
                f'device must be "auto", "cpu", "cuda" or "cuda:N", not {self.device!r}'
            )


def torch_device(name: str) -> torch.device:
    """ "auto" → cuda when available, else cpu; any other name as torch spells it."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def keypoint_input(crop: np.ndarray) -> np.ndarray:
    """The 256² uint8 image the keypoint networks see, from an (H, W, 3) uint8 crop; made per
    frame so a clip's crops stay small (skimage, as the reference demo, so `prepare_images`
    then has nothing left to resample)."""
    small = skimage.transform.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), anti_aliasing=True)
    return np.round(small * 255.0).astype(np.uint8)


def prepare_images(crops: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB crops → (N, 3, size, size) float32 in [0, 1].

    skimage.transform.resize as the reference demo.py (bilinear with Gaussian anti-aliasing
    when shrinking), so inputs match what the networks were run on.
    """
    if crops.shape[1:3] == (size, size):  # already the input size: no resampling
        images = crops.astype(np.float32) / 255.0
    else:
        resized = [skimage.transform.resize(c, (size, size)) for c in crops]
        images = np.stack(resized).astype(np.float32)
    return torch.from_numpy(images).permute(0, 3, 1, 2)


class KeypointExtractor:
    """Per-clip face-vid2vid keypoints, a frame model (`space_data.frames`): the canonical
    keypoints come from the first frame after `reset()`; each `batch` is one forward pass of
    the estimator. The models load at first use (picklable until then), from `ckpt` when the
    caller has already read the checkpoint dict (see `load_keypoint_models`)."""

    def __init__(self, config: KeypointsConfig, ckpt: dict | None = None) -> None:
        self.config = config
        self._ckpt = ckpt
        self._models: tuple[KPDetector, HEEstimator, torch.device] | None = None
        self._source: torch.Tensor | None = None  # (1, K, 3) canonical keypoints of the clip

    @property
    def missing_reason(self) -> str | None:
        """Why this extractor gives no keypoints (None when a checkpoint is configured)."""
        if self.config.checkpoint is None:
            return "no checkpoint configured (extract.keypoints.checkpoint)"
        return None

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """A whole clip in one batch: `batch(crops)` plus kp_source (15, 3), the canonical
        keypoints of its first frame."""
        self.reset()
        out = self.batch(crops)
        out["kp_source"] = self.source
        return out

    def batch(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 RGB face crops → float32 arrays named as the record members:
        kp (N, 15, 3), kp_pose (N, 3) yaw/pitch/roll degrees, kp_t (N, 3), kp_exp (N, 15, 3).
        Raises FileNotFoundError / ValueError for a bad checkpoint."""
        frames = check_frames(frames)
        detector, estimator, device = self._load()
        with torch.no_grad():
            images = prepare_images(frames).to(device)
            if self._source is None:
                self._source = detector(images[:1])["value"]  # (1, K, 3)
            he = estimator(images)
            angles = [headpose_to_degrees(he[name]) for name in ("yaw", "pitch", "roll")]
            out = {
                "kp": driving_keypoints(self._source, rotation_matrix(*angles), he["t"], he["exp"]),
                "kp_pose": torch.stack(angles, dim=1),
                "kp_t": he["t"],
                "kp_exp": he["exp"].view(len(frames), -1, 3),
            }
        return {name: v.cpu().numpy().astype(np.float32) for name, v in out.items()}

    @property
    def source(self) -> np.ndarray:
        """(15, 3) float32 canonical keypoints of the clip's first frame (after one `batch`)."""
        if self._source is None:
            raise RuntimeError("no frame of this clip went through the keypoint nets yet")
        return self._source[0].cpu().numpy().astype(np.float32)

    def reset(self) -> None:
        """Forget the clip's canonical keypoints (the next frame is the next clip's source)."""
        self._source = None

    def close(self) -> None:
        """Release the models (a later call loads them again)."""
        self._models = None
        self._source = None

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        KeypointExtractor.__init__(self, state["config"])

    def _load(self) -> tuple[KPDetector, HEEstimator, torch.device]:
        if self._models is None:
            if self.config.checkpoint is None:
                raise RuntimeError(self.missing_reason)
            device = torch_device(self.config.device)
            detector, estimator = load_keypoint_models(self.config.checkpoint, self._ckpt)
            self._ckpt = None
            self._models = (detector.to(device), estimator.to(device), device)
        return self._models
