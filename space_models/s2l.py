"""Speech2Landmarks (SPACE §3.1, appendix): speech + a still face → normalized landmark motion.

Inputs per window of T frames (30 fps): MFCC (T, 40), the first frame's normalized landmarks
(68, 3) and eye landmarks (52, 3) (`lm_norm` / `eyes_norm`: frontalized, ear-to-ear distance 2),
and the emotion per frame (one-hot over EMOTIONS × intensity, or the classifier's distribution
for unlabelled clips, see data.window_emotion). Output: the
landmarks and eye landmarks of every frame in the same normalization.

Audio features and the encoded initial landmarks are modulated by FiLM on the emotion; an
autoregressive 2-layer LSTM (previous prediction fed back, teacher forcing in training) reads
[audio_t, initial landmarks, previous landmarks] and its initial state comes from an MLP over the
first step. Loss: L1 on positions with a larger weight on y (mouth opening is vertical), plus
L1 on first differences (velocity) so the motion is not over-smoothed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from space_data.clip import EMOTIONS
from space_data.config import require_at_least_one
from space_data.landmarks import N_EYES, N_LM
from space_models.layers import (
    MLP,
    AudioEncoder,
    AudioEncoderConfig,
    AutoregressiveLSTM,
    FiLM,
    masked_l1,
    velocity_l1,
)
from space_models.spec import Errors, ModelSpec

OUT_DIM = 3 * (N_LM + N_EYES)


@dataclass
class S2LConfig:
    """Speech2Landmarks sizes (paper values by default) and loss weights."""

    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    """MFCC encoder (12 Conv1d layers, 1024 filters in the paper)."""
    landmark_width: int = 1024
    """Width of the landmark encoder MLP."""
    landmark_layers: int = 8
    """Layers of the landmark encoder MLP (68 × 3 → width)."""
    eye_width: int = 1024
    """Width of the eye-landmark encoder MLP."""
    eye_layers: int = 4
    """Layers of the eye-landmark encoder MLP (52 × 3 → width)."""
    hidden: int = 1024
    """LSTM hidden size."""
    lstm_layers: int = 2
    """Stacked LSTM layers."""
    init_layers: int = 4
    """Layers of the MLP that makes the LSTM's initial state from the first step's inputs."""
    teacher_forcing: float = 0.5
    """Probability, per frame and sample, of feeding back the target instead of the prediction."""
    y_weight: float = 2.0
    """Weight of the y coordinate in the position and velocity losses (x and z weigh 1)."""
    velocity_weight: float = 1.0
    """Weight of the velocity (first difference) L1 term."""

    def __post_init__(self) -> None:
        require_at_least_one(
            self,
            (
                "landmark_width",
                "landmark_layers",
                "eye_width",
                "eye_layers",
                "hidden",
                "lstm_layers",
                "init_layers",
            ),
            "s2l.",
        )
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError("s2l.teacher_forcing must lie in [0, 1]")
        if self.y_weight <= 0 or self.velocity_weight < 0:
            raise ValueError("s2l.y_weight must be > 0 and s2l.velocity_weight >= 0")

    @classmethod
    def tiny(cls) -> S2LConfig:
        """Same structure, narrow layers: tests and the CPU demo."""
        return cls(
            audio=AudioEncoderConfig(channels=32),
            landmark_width=64,
            eye_width=32,
            hidden=64,
            landmark_layers=2,
            eye_layers=1,
            init_layers=1,
        )


class LandmarkEyeEncoder(nn.Module):
    """(B, 360) flattened [landmarks (68·3), eyes (52·3)] → (B, landmark_width + eye_width)."""

    def __init__(self, config: S2LConfig) -> None:
        super().__init__()
        self.landmarks = MLP(3 * N_LM, config.landmark_width, config.landmark_layers)
        self.eyes = MLP(3 * N_EYES, config.eye_width, config.eye_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.landmarks(x[..., : 3 * N_LM]), self.eyes(x[..., 3 * N_LM :])], -1)


class Speech2Landmarks(nn.Module):
    def __init__(self, config: S2LConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        n_emo = len(EMOTIONS)
        encoded = c.landmark_width + c.eye_width
        self.audio = AudioEncoder(c.audio)
        self.film_audio = FiLM(n_emo, c.audio.channels)
        self.film_initial = FiLM(n_emo, encoded)
        self.decoder = AutoregressiveLSTM(
            frame_dim=c.audio.channels,
            context_dim=encoded,
            encoder=LandmarkEyeEncoder(c),
            encoded_dim=encoded,
            out_dim=OUT_DIM,
            hidden=c.hidden,
            layers=c.lstm_layers,
            init_layers=c.init_layers,
        )
        self.register_buffer("coord_weight", torch.tensor([1.0, c.y_weight, 1.0]))

    def _run(self, mfcc, first, emotion, target=None, teacher_forcing=0.0) -> torch.Tensor:
        audio = self.film_audio(self.audio(mfcc), emotion)  # (B, T, C)
        clip_emotion = emotion.mean(1) if emotion.dim() == 3 else emotion  # (B, E)
        context = self.film_initial(self.decoder.encoder(first), clip_emotion)
        return self.decoder(audio, context, first, target, teacher_forcing)  # (B, T, 360)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a loader batch: (loss, {"position": ..., "velocity": ...})."""
        lm, eyes = batch["lm"], batch["eyes"]  # (B, T, 68, 3), (B, T, 52, 3)
        b, t = lm.shape[:2]
        target = torch.cat([lm.reshape(b, t, -1), eyes.reshape(b, t, -1)], -1)  # (B, T, 360)
        tf = self.config.teacher_forcing if self.training else 0.0
        pred = self._run(batch["mfcc"], target[:, 0], batch["emotion"], target, tf)
        pred = pred.view(b, t, N_LM + N_EYES, 3)
        ok = torch.cat([batch["lm_ok"], batch["eyes_ok"]], -1)[..., None]  # (B, T, 120, 1)
        target = target.view_as(pred)
        position = masked_l1(pred, target, ok, self.coord_weight)
        velocity = velocity_l1(pred, target, ok, self.coord_weight)
        loss = position + self.config.velocity_weight * velocity
        return loss, {"position": position.item(), "velocity": velocity.item()}

    @torch.no_grad()
    def predict(
        self, mfcc: torch.Tensor, lm0: torch.Tensor, eyes0: torch.Tensor, emotion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mfcc (B, T, 40), lm0 (B, 68, 3), eyes0 (B, 52, 3), emotion (B, E) or (B, T, E) →
        landmarks (B, T, 68, 3), eyes (B, T, 52, 3); no teacher forcing."""
        b, t = mfcc.shape[:2]
        first = torch.cat([lm0.reshape(b, -1), eyes0.reshape(b, -1)], -1)
        pred = self._run(mfcc, first, emotion).view(b, t, N_LM + N_EYES, 3)
        return pred[:, :, :N_LM], pred[:, :, N_LM:]


# ---------------------------------------------------------------- evaluation (SPACE's metrics)

MOUTH = slice(48, 68)
CORNERS = (0, 6)  # 48 and 54 within the mouth slice


def normalize_mouth(lm: np.ndarray) -> np.ndarray:
    """(..., 68, ≥2) landmarks → (..., 20, 2) mouth points with the corners at (∓1, 0)."""
    mouth = lm[..., MOUTH, :2].astype(np.float64)
    left, right = mouth[..., CORNERS[0], :], mouth[..., CORNERS[1], :]
    centre, d = (left + right) / 2, right - left  # (..., 2)
    length = np.linalg.norm(d, axis=-1)[..., None]
    c, s = d[..., :1] / length, d[..., 1:] / length  # rotation that takes d to +x
    x, y = mouth[..., 0] - centre[..., :1], mouth[..., 1] - centre[..., 1:]
    return np.stack([c * x + s * y, -s * x + c * y], -1) / length[..., None] * 2


def landmark_errors(pred: np.ndarray, true: np.ndarray, ok: np.ndarray) -> Errors:
    """pred, true (T, 68, 3), ok (T,) → {metric: (sum of errors, count)} for M-P/M-V/F-P/F-V."""
    out = {}
    for name, p, t in (("M", normalize_mouth(pred), normalize_mouth(true)), ("F", pred, true)):
        err = np.abs(p - t).mean((1, 2))  # (T,)
        vel = np.abs(np.diff(p, axis=0) - np.diff(t, axis=0)).mean((1, 2))  # (T-1,)
        both = ok[1:] & ok[:-1]
        out[f"{name}-P"] = (float(err[ok].sum()), int(ok.sum()))
        out[f"{name}-V"] = (float(vel[both].sum()), int(both.sum()))
    return out


def evaluate(model: Speech2Landmarks, b: dict[str, torch.Tensor], _: torch.Generator) -> Errors:
    """M-P, M-V, F-P, F-V of one clip run from its first frame without teacher forcing."""
    lm, _ = model.predict(b["mfcc"], b["lm"][:, 0], b["eyes"][:, 0], b["emotion"])
    return landmark_errors(lm[0].numpy(), b["lm"][0].numpy(), b["mask"][0].numpy())


SPEC = ModelSpec(
    name="s2l",
    model=Speech2Landmarks,
    config=S2LConfig,
    members=("mfcc", "lm_norm", "eyes_norm", "face"),
    evaluate=evaluate,
)
