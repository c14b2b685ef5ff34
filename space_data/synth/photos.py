"""The real face photos the sample corpus is rendered from, and identity variants of them.

Always available (public domain, inside installed packages):
- `astronaut`: scikit-image's `skimage.data.astronaut()` (Eileen Collins, NASA);
- `hopper`: matplotlib's sample `grace_hopper.jpg` (Grace Hopper, U.S. Navy photo).
Optional: every `portrait_*.png|jpg` in `photos_dir` (the shared realdata folder); they are
read in place and never copied into the project or the corpus.

More identities than photos: each photo also appears mirrored (FaceMesh is run again on the
mirrored photo, so the mesh is a different, left-right swapped face) and with a skin/hair tone
shift in Lab colour space. Variants are listed after all plain photos, so distinct photos are
used first.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MAX_SIDE = 1024
"""Larger photos are downscaled to this side (texture detail beyond it is never rendered)."""
TONES = {"warm": (4.0, 10.0, 12.0), "cool": (-6.0, -2.0, -10.0)}
"""Lab offsets (L, a, b) of the tone variants."""


def _fit(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return np.ascontiguousarray(rgb)
    f = MAX_SIDE / max(h, w)
    return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def read_photo(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, at most MAX_SIDE on the longer side; ValueError if unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read photo {path}")
    return _fit(bgr[:, :, ::-1])


def base_photos(photos_dir: str | None) -> dict[str, np.ndarray]:
    """name → (H, W, 3) uint8 RGB: portraits from `photos_dir` (if it exists) then the
    built-in photos, in a fixed order."""
    import skimage.data
    from matplotlib import cbook

    photos: dict[str, np.ndarray] = {}
    folder = Path(photos_dir) if photos_dir else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("portrait_*")):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                photos[path.stem.removeprefix("portrait_").replace("-", "_")] = read_photo(path)
    photos["astronaut"] = _fit(skimage.data.astronaut())
    photos["hopper"] = read_photo(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return photos


def tone_shift(rgb: np.ndarray, offset: tuple[float, float, float]) -> np.ndarray:
    """Shift lightness and colour of an RGB photo by (L, a, b) in 8-bit Lab units."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab += np.array(offset, dtype=np.float32)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def identity_names(photos: dict[str, np.ndarray], count: int) -> list[str]:
    """The first `count` identity names: plain photos, then mirrored, then tone variants
    (`<photo>`, `<photo>-mirror`, `<photo>-warm`, `<photo>-mirror-cool`, ...), cycling."""
    names = list(photos)
    variants = [""] + ["-mirror"] + [f"-{t}" for t in TONES] + [f"-mirror-{t}" for t in TONES]
    pool = [f"{n}{v}" for v in variants for n in names]
    return [pool[i % len(pool)] for i in range(count)]


def identity_photo(photos: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The (H, W, 3) uint8 photo of identity `name` (see `identity_names`)."""
    base, *variants = name.split("-")
    rgb = photos[base]
    for v in variants:
        rgb = np.ascontiguousarray(rgb[:, ::-1]) if v == "mirror" else tone_shift(rgb, TONES[v])
    return rgb
