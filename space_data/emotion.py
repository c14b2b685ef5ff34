"""Emotion labels for a clip's meta: the corpus label where there is one, never a guess.

MEAD and RAVDESS carry an emotion and an intensity in their file names; the indexer maps them
into `Clip.emotion` / `Clip.intensity` (vocabulary and scale in `space_data.clip`), and they are
copied into meta here. VoxCeleb2 has no labels: its clips are recorded as "unlabelled".

SPACE labels unlabelled footage with a pretrained per-frame emotion classifier. Its weights are
not public, so `EmotionConfig.classifier_checkpoint` is a hook that fails loudly until a loader
for a concrete classifier is written (see `emotion_meta`).
"""

from __future__ import annotations

from dataclasses import dataclass

from space_data.clip import Clip


@dataclass
class EmotionConfig:
    """Where emotion labels come from (`extract.emotion` in params.yaml)."""

    classifier_checkpoint: str | None = None
    """Per-frame emotion classifier weights for unlabelled clips; None = manifest labels only."""

    def __post_init__(self) -> None:
        if self.classifier_checkpoint is not None and not str(self.classifier_checkpoint).strip():
            raise ValueError("classifier_checkpoint must be a path or null, not an empty string")


def emotion_meta(clip: Clip, config: EmotionConfig) -> dict:
    """{"emotion", "intensity", "emotion_source"} for a clip's meta.

    "manifest": the corpus label (MEAD, RAVDESS); "unlabelled": no label (VoxCeleb2), emotion
    and intensity None. A configured classifier checkpoint raises NotImplementedError.
    """
    if config.classifier_checkpoint is not None:
        raise NotImplementedError(
            f"extract.emotion.classifier_checkpoint is set ({config.classifier_checkpoint}), "
            "but no per-frame emotion classifier loader is provided yet. SPACE labels unlabelled "
            "clips with a pretrained per-frame emotion classifier whose weights are not public. "
            "Supporting one needs: its architecture and checkpoint layout, its input (face "
            "crops: size, alignment, normalization), its label set mapped onto "
            "space_data.clip.EMOTIONS, and a rule from per-frame scores to one clip label and "
            "an intensity in [0, 1]. Set classifier_checkpoint to null to keep manifest labels."
        )
    if clip.emotion is None:
        return {"emotion": None, "intensity": None, "emotion_source": "unlabelled"}
    return {"emotion": clip.emotion, "intensity": clip.intensity, "emotion_source": "manifest"}
