"""Building blocks shared by S2L, PoseGen and L2L (SPACE appendix).

- `AudioEncoder`: 12 Conv1d layers over MFCC frames; the first 4 symmetric (kernel 3), the last
  8 causal (kernel 5), so the output at frame t sees at most `lookahead` = 4 future frames.
- `MLP`: Linear → BatchNorm → leaky ReLU per layer, on (B, D) or (B, T, D) inputs.
- `FiLM`: feature-wise modulation by an emotion vector, identity for a zero vector.
- `AutoregressiveLSTM`: the decoder loop S2L and L2L share (previous output fed back).

Batch norm normalizes over batch and time in training; causality and the FiLM identity hold in
eval mode, where batch norm is a fixed per-channel affine map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from space_data.config import require_at_least_one

LEAK = 0.2
"""Negative slope of every leaky ReLU."""


@dataclass
class AudioEncoderConfig:
    """Sizes of the MFCC encoder."""

    n_mfcc: int = 40
    """MFCC coefficients per frame (input channels)."""
    channels: int = 1024
    """Filters of every Conv1d layer."""
    symmetric_layers: int = 4
    """Leading layers with a centred kernel of 3 (one frame of look-ahead each)."""
    causal_layers: int = 8
    """Trailing layers with a causal kernel of 5 (no look-ahead)."""

    def __post_init__(self) -> None:
        require_at_least_one(self, ("n_mfcc", "channels", "causal_layers"), "audio.")
        if self.symmetric_layers < 0:
            raise ValueError("audio.symmetric_layers must be >= 0")


class AudioEncoder(nn.Module):
    """(B, T, n_mfcc) MFCC → (B, T, channels) features, frame-aligned (no striding)."""

    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        # (left, right) zero padding per layer: centred k=3 → (1, 1), causal k=5 → (4, 0)
        self.pads: list[tuple[int, int]] = []
        c_in = config.n_mfcc
        for i in range(config.symmetric_layers + config.causal_layers):
            k = 3 if i < config.symmetric_layers else 5
            self.convs.append(nn.Conv1d(c_in, config.channels, k))
            self.norms.append(nn.BatchNorm1d(config.channels))
            self.pads.append((1, 1) if k == 3 else (4, 0))
            c_in = config.channels

    @property
    def lookahead(self) -> int:
        """Future frames the output at t depends on: one per symmetric layer."""
        return sum(right for _, right in self.pads)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        x = mfcc.transpose(1, 2)  # (B, C, T)
        for conv, norm, pad in zip(self.convs, self.norms, self.pads):
            x = F.leaky_relu(norm(conv(F.pad(x, pad))), LEAK)
        return x.transpose(1, 2)  # (B, T, channels)


class MLP(nn.Module):
    """`layers` × (Linear → BatchNorm → leaky ReLU), input (..., d_in) → (..., width)."""

    def __init__(self, d_in: int, width: int, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("an MLP needs at least one layer")
        self.linears = nn.ModuleList(
            nn.Linear(d_in if i == 0 else width, width) for i in range(layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # batch norm over every leading position
        for linear, norm in zip(self.linears, self.norms):
            x = F.leaky_relu(norm(linear(x)), LEAK)
        return x.reshape(*lead, -1)


class FiLM(nn.Module):
    """y = (1 + γ(e)) · x + β(e) with γ, β linear maps *without bias*.

    `e` is the emotion vector (one-hot over EMOTIONS scaled by intensity, or a per-frame
    distribution). Without bias a zero vector gives γ = β = 0, so neutral clips and frames
    without a face pass through unchanged, and the same weights serve labels and predictions.
    """

    def __init__(self, n_emotions: int, features: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(n_emotions, features, bias=False)
        self.beta = nn.Linear(n_emotions, features, bias=False)

    def forward(self, x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """x (B, F) or (B, T, F); emotion (B, E) or, with x (B, T, F), (B, T, E)."""
        if x.dim() == 3 and emotion.dim() == 2:
            emotion = emotion[:, None, :]
        return (1 + self.gamma(emotion)) * x + self.beta(emotion)


class AutoregressiveLSTM(nn.Module):
    """The decoder shared by S2L and L2L.

    At frame t the LSTM reads [frames_t, context, encode(previous output)] and predicts the
    output as an offset from `first` (the known first frame), so an untrained decoder starts
    near a still face. The previous output is the prediction (detached, so gradients do not
    run through the whole chain) or, with probability `teacher_forcing`, the target. The
    initial hidden and cell states come from an MLP over the first time step's inputs.
    """

    def __init__(
        self,
        frame_dim: int,
        context_dim: int,
        encoder: nn.Module,
        encoded_dim: int,
        out_dim: int,
        hidden: int,
        layers: int,
        init_layers: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder  # (B, out_dim) → (B, encoded_dim)
        step_dim = frame_dim + context_dim + encoded_dim
        self.hidden, self.layers = hidden, layers
        self.init = MLP(step_dim, hidden, init_layers)
        self.init_out = nn.Linear(hidden, 2 * layers * hidden)
        self.lstm = nn.LSTM(step_dim, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, out_dim)

    def forward(
        self,
        frames: torch.Tensor,
        context: torch.Tensor,
        first: torch.Tensor,
        target: torch.Tensor | None = None,
        teacher_forcing: float = 0.0,
    ) -> torch.Tensor:
        """frames (B, T, frame_dim), context (B, context_dim), first (B, out_dim),
        target (B, T, out_dim) or None → predictions (B, T, out_dim)."""
        b, t_len = frames.shape[:2]
        step0 = torch.cat([frames[:, 0], context, self.encoder(first)], -1)
        hc = self.init_out(self.init(step0)).view(b, 2, self.layers, self.hidden)
        state = (hc[:, 0].transpose(0, 1).contiguous(), hc[:, 1].transpose(0, 1).contiguous())
        prev, outputs = first, []
        for t in range(t_len):
            step = torch.cat([frames[:, t], context, self.encoder(prev)], -1)
            h, state = self.lstm(step[:, None], state)
            y = first + self.head(h[:, 0])  # (B, out_dim)
            outputs.append(y)
            prev = y.detach()
            if target is not None and teacher_forcing > 0:
                use_target = torch.rand(b, 1, device=y.device) < teacher_forcing
                prev = torch.where(use_target, target[:, t], prev)
        return torch.stack(outputs, 1)


def parameter_count(module: nn.Module) -> int:
    """Learnable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def masked_l1(
    pred: torch.Tensor, target: torch.Tensor, ok: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean |pred − target| over elements where `ok` (broadcast to pred's shape) is true.

    `weight` (broadcast over the last axis, e.g. (3,) per coordinate) scales each element; the
    mean divides by the summed weights of valid elements, so all-valid unit weights give a plain
    mean. Missing landmarks (no face, NaN points) are masked out by the loader.
    """
    ok = ok.expand_as(pred).to(pred.dtype)
    w = ok if weight is None else ok * weight
    return (w * (pred - target).abs()).sum() / w.sum().clamp_min(1.0)


def velocity_l1(
    pred: torch.Tensor, target: torch.Tensor, ok: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """`masked_l1` of first differences along time (axis 1), valid where both frames are."""
    ok = ok.expand_as(pred)
    return masked_l1(
        pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1], ok[:, 1:] & ok[:, :-1], weight
    )
