"""Speech activity: Silero VAD's speech probability on the 30 fps timeline (record member `speech`).

Model: `silero_vad.onnx` bundled in the `silero-vad` wheel (MIT), found through
`importlib.util.find_spec("silero_vad")` and run with onnxruntime on one thread, offline (the
package itself is not imported: it pulls torchaudio). It is the streaming model the package's
`OnnxWrapper` drives, driven the same way: 16 kHz audio in chunks of 512 samples (32 ms), each
fed with the previous chunk's last 64 samples in front and the recurrent state carried over;
one speech probability per chunk. The last partial chunk is zero-padded.

Timeline: chunk c covers samples [512c, 512c + 512), its probability is placed at the chunk
centre and linearly interpolated onto frame k's time k / 30 s (ends held), so `speech` has
exactly T values whatever the audio's length (audio shorter than the video reads as silence).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from space_data.errors import SetupError
from space_data.record import FPS, SAMPLE_RATE

CHUNK = 512
"""Samples per VAD step at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous chunk prepended to each chunk (as the package's OnnxWrapper)."""


def bundled_model_path() -> Path:
    """`silero_vad/data/silero_vad.onnx` of the installed wheel (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(
            "speech activity needs the silero-vad wheel: pip install --no-deps silero-vad"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise SetupError(f"{path} is missing from the installed silero-vad package: reinstall it")
    return path


class SpeechDetector:
    """Silero VAD over whole clips; the ONNX session is created at first use (pickles for Ray)."""

    name = "silero-vad"

    def __init__(self) -> None:
        self._session = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._session = None

    def chunk_probs(self, audio: np.ndarray) -> np.ndarray:
        """(ceil(S / 512),) float32 speech probability per 32-ms chunk of (S,) 16 kHz audio."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be (S,) mono samples, got shape {audio.shape}")
        n = -(-len(audio) // CHUNK)
        padded = np.zeros(CONTEXT + n * CHUNK, np.float32)
        padded[CONTEXT : CONTEXT + len(audio)] = audio
        session = self._get_session()
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        out = np.empty(n, np.float32)
        for c in range(n):
            x = padded[None, c * CHUNK : c * CHUNK + CONTEXT + CHUNK]
            prob, state = session.run(None, {"input": x, "state": state, "sr": sr})
            out[c] = prob[0, 0]
        return out

    def __call__(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """(T,) float32 speech probability per timeline frame of (S,) 16 kHz mono audio."""
        probs = self.chunk_probs(audio)
        if len(probs) == 0:
            return np.zeros(n_frames, np.float32)
        centres = (np.arange(len(probs)) + 0.5) * CHUNK / SAMPLE_RATE
        return np.interp(np.arange(n_frames) / FPS, centres, probs).astype(np.float32)

    def _get_session(self):
        if self._session is None:
            import onnxruntime  # only needed here

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(bundled_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return self._session


def speech_fraction(speech: np.ndarray, threshold: float = 0.5) -> float:
    """Share of timeline frames whose speech probability is at least `threshold` (0 if none)."""
    speech = np.asarray(speech)
    return float((speech >= threshold).mean()) if speech.size else 0.0
