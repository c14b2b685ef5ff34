"""PoseGen (SPACE §3.2, appendix): a conditional VAE for head motion from speech.

Pose is `pose` from the shards: yaw, pitch, roll (degrees), tx, ty, tz (crop pixels). The model
works on motion relative to the window's first frame, in face units (translation divided by
the first frame's `scale`, crop pixels per half ear-to-ear distance, so the crop resolution does
not matter), divided by `pose_scale` so all six channels are O(1):
p_t = [(angles_t − angles_0), (t_t − t_0) / s_0] / pose_scale (frame 0 is 0 by construction).

Encoder: 2-layer bidirectional LSTM over [audio features, p] → mean over frames → μ, log σ² of
z (64). Decoder: 2-layer LSTM, autoregressive over [audio_t, z, p_{t−1}] → p_t. At inference
z ~ N(0, 1), so one utterance gives many plausible head motions. Loss: L1 reconstruction +
`kl_weight` · KL(q(z | audio, pose) ‖ N(0, 1)). Audio features are FiLM-modulated by emotion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from space_data.clip import EMOTIONS
from space_data.config import require_at_least_one
from space_models.layers import (
    AudioEncoder,
    AudioEncoderConfig,
    AutoregressiveLSTM,
    FiLM,
    masked_l1,
)
from space_models.spec import Errors, ModelSpec

POSE_DIM = 6


@dataclass
class PoseGenConfig:
    """PoseGen sizes (paper values by default), pose normalization and loss weights."""

    audio: AudioEncoderConfig = field(default_factory=lambda: AudioEncoderConfig(channels=256))
    """MFCC encoder (the S2L structure; 256 filters so the pose path stays light)."""
    hidden: int = 256
    """Hidden size of the encoder (per direction) and decoder LSTMs."""
    lstm_layers: int = 2
    """Stacked layers of both LSTMs."""
    latent: int = 64
    """Dimension of z."""
    init_layers: int = 1
    """Layers of the MLP that makes the decoder's initial state."""
    teacher_forcing: float = 0.5
    """Probability, per frame and sample, of feeding back the target pose in training."""
    kl_weight: float = 1e-3
    """Weight of the KL term against the L1 reconstruction."""
    pose_scale: tuple[float, ...] = (10.0, 10.0, 10.0, 0.2, 0.2, 0.2)
    """Divisors of the motion (yaw°, pitch°, roll°, then tx, ty, tz in face units): O(1) inputs."""

    def __post_init__(self) -> None:
        self.pose_scale = tuple(float(s) for s in self.pose_scale)
        require_at_least_one(self, ("hidden", "lstm_layers", "latent", "init_layers"), "posegen.")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError("posegen.teacher_forcing must lie in [0, 1]")
        if self.kl_weight < 0:
            raise ValueError("posegen.kl_weight must be >= 0")
        if len(self.pose_scale) != POSE_DIM or min(self.pose_scale) <= 0:
            raise ValueError("posegen.pose_scale needs 6 positive numbers")

    @classmethod
    def tiny(cls) -> PoseGenConfig:
        """Same structure, narrow layers: tests and the CPU demo."""
        return cls(audio=AudioEncoderConfig(channels=32), hidden=32, latent=8)


class PoseGen(nn.Module):
    def __init__(self, config: PoseGenConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.audio = AudioEncoder(c.audio)
        self.film_audio = FiLM(len(EMOTIONS), c.audio.channels)
        self.encoder = nn.LSTM(
            c.audio.channels + POSE_DIM,
            c.hidden,
            c.lstm_layers,
            batch_first=True,
            bidirectional=True,
        )
        self.to_latent = nn.Linear(2 * c.hidden, 2 * c.latent)  # → μ, log σ²
        self.decoder = AutoregressiveLSTM(
            frame_dim=c.audio.channels,
            context_dim=c.latent,
            encoder=nn.Identity(),
            encoded_dim=POSE_DIM,
            out_dim=POSE_DIM,
            hidden=c.hidden,
            layers=c.lstm_layers,
            init_layers=c.init_layers,
        )
        self.register_buffer("pose_scale", torch.tensor(c.pose_scale))

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a loader batch: (loss, {"reconstruction": ..., "kl": ...})."""
        ok = batch["mask"][..., None]  # (B, T, 1)
        motion = self.to_motion(batch["pose"], batch["scale"][:, 0])  # (B, T, 6)
        audio = self.film_audio(self.audio(batch["mfcc"]), batch["emotion"])  # (B, T, C)
        h, _ = self.encoder(torch.cat([audio, motion], -1))  # (B, T, 2H)
        okf = ok.to(h.dtype)
        pooled = (h * okf).sum(1) / okf.sum(1).clamp_min(1.0)  # mean over valid frames
        mu, logvar = self.to_latent(pooled).chunk(2, -1)  # (B, Z) each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        tf = self.config.teacher_forcing if self.training else 0.0
        pred = self.decoder(audio, z, torch.zeros_like(motion[:, 0]), motion, tf)
        reconstruction = masked_l1(pred, motion, ok)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1).mean()
        loss = reconstruction + self.config.kl_weight * kl
        return loss, {"reconstruction": reconstruction.item(), "kl": kl.item()}

    def to_motion(self, pose: torch.Tensor, scale0: torch.Tensor) -> torch.Tensor:
        """pose (B, T, 6), first-frame scale (B,) → normalized motion (B, T, 6)."""
        unit = torch.ones_like(pose[:, 0])  # (B, 6): degrees stay, translations / s_0
        unit[:, 3:] = scale0[:, None]
        return (pose - pose[:, :1]) / (unit[:, None] * self.pose_scale)

    @torch.no_grad()
    def predict(
        self,
        mfcc: torch.Tensor,
        pose0: torch.Tensor,
        scale0: torch.Tensor,
        emotion: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """mfcc (B, T, 40), source pose0 (B, 6) and scale0 (B,), emotion (B, E) or (B, T, E)
        → pose (B, T, 6) in the shards' units, with z drawn from N(0, 1)."""
        audio = self.film_audio(self.audio(mfcc), emotion)
        z = torch.randn(mfcc.shape[0], self.config.latent, generator=generator)
        motion = self.decoder(audio, z.to(audio.device), torch.zeros_like(pose0))
        unit = torch.ones_like(pose0)
        unit[:, 3:] = scale0[:, None]
        return pose0[:, None] + motion * (unit[:, None] * self.pose_scale)


def evaluate(model: PoseGen, b: dict[str, torch.Tensor], generator: torch.Generator) -> Errors:
    """Mean |yaw, pitch, roll| error (degrees) of one sampled motion (z from `generator`)."""
    pose = model.predict(b["mfcc"], b["pose"][:, 0], b["scale"][:, 0], b["emotion"], generator)
    err = (pose[0, :, :3] - b["pose"][0, :, :3]).abs().mean(-1).numpy()  # (T,)
    ok = b["mask"][0].numpy()
    return {"angle_mae_deg": (float(err[ok].sum()), int(ok.sum()))}


SPEC = ModelSpec(
    name="posegen",
    model=PoseGen,
    config=PoseGenConfig,
    members=("mfcc", "pose", "scale", "face"),
    evaluate=evaluate,
)
