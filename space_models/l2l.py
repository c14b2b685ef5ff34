"""Landmarks2Latents (SPACE §3.3, appendix): posed landmarks + speech → face-vid2vid keypoints.

Inputs per window: posed landmarks (T, 68, 3) = R(pose_t) · lm_norm_t + translation (see
`posed_landmarks`), MFCC (T, 40), the source keypoints `kp_source` (K, 3) and the emotion
vector; output: the driving keypoints `kp` (T, K, 3) that the face-vid2vid generator renders.

Encoders: audio (as S2L), landmarks (8-layer MLP), source keypoints (4-layer MLP), previous
keypoints ("latent" encoder, 8-layer MLP); FiLM on audio, landmarks and the initial (source)
keypoints; autoregressive 2-layer LSTM as in S2L. Loss: L1 on keypoints. Trains only on shards
that carry keypoints (`kp*.npy`, present when extraction had the face-vid2vid checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from space_data.clip import EMOTIONS
from space_data.config import require_at_least_one
from space_data.landmarks import N_LM
from space_data.pose import euler_to_matrix
from space_models.layers import (
    MLP,
    AudioEncoder,
    AudioEncoderConfig,
    AutoregressiveLSTM,
    FiLM,
    masked_l1,
)
from space_models.spec import Errors, ModelSpec


@dataclass
class L2LConfig:
    """Landmarks2Latents sizes (paper values by default)."""

    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    """MFCC encoder (as in S2L)."""
    n_keypoints: int = 15
    """K, keypoints of the face-vid2vid checkpoint (15 for the public Vox-256 model)."""
    landmark_width: int = 1024
    """Width of the posed-landmark encoder MLP."""
    landmark_layers: int = 8
    """Layers of the posed-landmark encoder MLP."""
    source_width: int = 1024
    """Width of the source-keypoint encoder MLP."""
    source_layers: int = 4
    """Layers of the source-keypoint encoder MLP."""
    latent_width: int = 1024
    """Width of the previous-keypoint (latent) encoder MLP."""
    latent_layers: int = 8
    """Layers of the previous-keypoint (latent) encoder MLP."""
    hidden: int = 1024
    """LSTM hidden size."""
    lstm_layers: int = 2
    """Stacked LSTM layers."""
    init_layers: int = 4
    """Layers of the MLP that makes the LSTM's initial state."""
    teacher_forcing: float = 0.5
    """Probability, per frame and sample, of feeding back the target keypoints in training."""

    def __post_init__(self) -> None:
        require_at_least_one(
            self,
            (
                "n_keypoints",
                "landmark_width",
                "landmark_layers",
                "source_width",
                "source_layers",
                "latent_width",
                "latent_layers",
                "hidden",
                "lstm_layers",
                "init_layers",
            ),
            "l2l.",
        )
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError("l2l.teacher_forcing must lie in [0, 1]")

    @classmethod
    def tiny(cls) -> L2LConfig:
        """Same structure, narrow layers: tests and the CPU demo."""
        return cls(
            audio=AudioEncoderConfig(channels=32),
            landmark_width=64,
            source_width=32,
            latent_width=64,
            hidden=64,
            landmark_layers=2,
            source_layers=1,
            latent_layers=2,
            init_layers=1,
        )


def posed_landmarks(lm_norm: np.ndarray, pose: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(T, 68, 3) lm_norm, (T, 6) pose, (T,) scale → (T, 68, 3) float32 posed landmarks.

    posed_t = (s_t / s_0) · R_t · lm_norm_t + (t_t − t_0) / s_0: the face with its head pose
    (space_data.pose convention) in units of the first frame's face size (`scale` is crop
    pixels per half ear-to-ear distance), relative to the first frame's position, so the
    values do not depend on the crop resolution.
    """
    rot = euler_to_matrix(pose[:, 0], pose[:, 1], pose[:, 2])  # (T, 3, 3)
    zoom = scale / scale[0]  # (T,)
    shift = (pose[:, 3:6] - pose[0, 3:6]) / scale[0]  # (T, 3)
    posed = zoom[:, None, None] * np.einsum("tij,tnj->tni", rot, lm_norm) + shift[:, None]
    return posed.astype(np.float32)


class Landmarks2Latents(nn.Module):
    def __init__(self, config: L2LConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        n_emo, kp_dim = len(EMOTIONS), 3 * c.n_keypoints
        self.audio = AudioEncoder(c.audio)
        self.landmarks = MLP(3 * N_LM, c.landmark_width, c.landmark_layers)
        self.source = MLP(kp_dim, c.source_width, c.source_layers)
        self.film_audio = FiLM(n_emo, c.audio.channels)
        self.film_landmarks = FiLM(n_emo, c.landmark_width)
        self.film_source = FiLM(n_emo, c.source_width)
        self.decoder = AutoregressiveLSTM(
            frame_dim=c.audio.channels + c.landmark_width,
            context_dim=c.source_width,
            encoder=MLP(kp_dim, c.latent_width, c.latent_layers),
            encoded_dim=c.latent_width,
            out_dim=kp_dim,
            hidden=c.hidden,
            layers=c.lstm_layers,
            init_layers=c.init_layers,
        )

    def _run(self, mfcc, posed, kp_source, kp0, emotion, target=None, tf=0.0) -> torch.Tensor:
        b, t = posed.shape[:2]
        clip_emotion = emotion.mean(1) if emotion.dim() == 3 else emotion  # (B, E)
        frames = torch.cat(
            [
                self.film_audio(self.audio(mfcc), emotion),  # (B, T, Ca)
                self.film_landmarks(self.landmarks(posed.reshape(b, t, -1)), emotion),  # (B, T, Cl)
            ],
            -1,
        )
        context = self.film_source(self.source(kp_source.reshape(b, -1)), clip_emotion)
        return self.decoder(frames, context, kp0.reshape(b, -1), target, tf)  # (B, T, 3K)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a loader batch (needs `kp`, `kp_source`, `posed`)."""
        kp = batch["kp"]  # (B, T, K, 3)
        b, t = kp.shape[:2]
        target = kp.reshape(b, t, -1)
        tf = self.config.teacher_forcing if self.training else 0.0
        pred = self._run(
            batch["mfcc"],
            batch["posed"],
            batch["kp_source"],
            target[:, 0],
            batch["emotion"],
            target,
            tf,
        )
        loss = masked_l1(pred, target, batch["mask"][..., None])
        return loss, {"keypoints": loss.item()}

    @torch.no_grad()
    def predict(self, mfcc, posed, kp_source, kp0, emotion) -> torch.Tensor:
        """mfcc (B, T, 40), posed (B, T, 68, 3), kp_source (B, K, 3), kp0 (B, K, 3) driving
        keypoints of the source frame, emotion (B, E) or (B, T, E) → kp (B, T, K, 3)."""
        b, t = posed.shape[:2]
        return self._run(mfcc, posed, kp_source, kp0, emotion).view(b, t, -1, 3)


def evaluate(model: Landmarks2Latents, b: dict[str, torch.Tensor], _: torch.Generator) -> Errors:
    """Mean |keypoint| error of one clip run from its first frame without teacher forcing."""
    kp = model.predict(b["mfcc"], b["posed"], b["kp_source"], b["kp"][:, 0], b["emotion"])
    err = (kp[0] - b["kp"][0]).abs().mean((1, 2)).numpy()  # (T,)
    ok = b["mask"][0].numpy()
    return {"keypoint_mae": (float(err[ok].sum()), int(ok.sum()))}


SPEC = ModelSpec(
    name="l2l",
    model=Landmarks2Latents,
    config=L2LConfig,
    members=("mfcc", "lm_norm", "pose", "scale", "face", "kp", "kp_source"),
    evaluate=evaluate,
    missing_hint=": extraction ran without extract.keypoints.checkpoint",
)
