"""Emotion labels into meta: manifest labels or "unlabelled", never a guess (space_data.emotion)."""

from __future__ import annotations

import pytest

from space_data.clip import Clip
from space_data.config import ConfigError, from_mapping
from space_data.emotion import EmotionConfig, emotion_meta


def clip(dataset: str, emotion: str | None, intensity: float | None) -> Clip:
    return Clip(f"{dataset}-x", dataset, "spk", "x.mp4", emotion=emotion, intensity=intensity)


@pytest.mark.parametrize(
    ("dataset", "emotion", "intensity"),
    [("mead", "angry", 2 / 3), ("ravdess", "calm", 0.5), ("mead", "neutral", 0.0)],
)
def test_labelled_corpora_use_the_manifest(dataset, emotion, intensity) -> None:
    meta = emotion_meta(clip(dataset, emotion, intensity), EmotionConfig())
    assert meta == {"emotion": emotion, "intensity": intensity, "emotion_source": "manifest"}


def test_voxceleb2_is_unlabelled() -> None:
    meta = emotion_meta(clip("voxceleb2", None, None), EmotionConfig())
    assert meta == {"emotion": None, "intensity": None, "emotion_source": "unlabelled"}


def test_classifier_checkpoint_is_a_hook_that_fails_loudly() -> None:
    config = from_mapping(EmotionConfig, {"classifier_checkpoint": "/models/emotion.pt"})
    for c in (clip("voxceleb2", None, None), clip("mead", "sad", 1.0)):
        with pytest.raises(NotImplementedError, match=r"/models/emotion\.pt.*not public"):
            emotion_meta(c, config)


def test_config_rejects_empty_checkpoint() -> None:
    with pytest.raises(ConfigError, match="classifier_checkpoint"):
        from_mapping(EmotionConfig, {"classifier_checkpoint": " "})
