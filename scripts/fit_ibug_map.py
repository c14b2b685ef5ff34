"""Fit `space_data.landmarks.IBUG68_FROM_MESH`: each iBUG-300W point as a convex combination
of a few MediaPipe FaceMesh vertices, against dlib's iBUG-trained 68-point predictor.

Data (scripts/ibug_reference.py): FaceMesh (tracking through each clip, as the extractor runs it)
and dlib on every second frame of the FIT_VIDEOS and on the portrait photos, each also mirrored
left-right (mirror images are more faces, and they balance the two detectors' left/right habits).
Frames whose head is turned more than MAX_YAW are left out: on turned heads iBUG's jaw line is
the visible outline, which no fixed surface point follows.

Per iBUG point k (and its mirror partner, fitted together so the map is exactly mirror-symmetric):
1. candidates: the CANDIDATES face vertices nearest to dlib's point k on average (distances in
   inter-ocular units), restricted for lid and lip points to the right side of the eye/mouth
   line (an upper-lid point only from vertices on or above the line joining the eye corners, a
   lower-lip point only from vertices on or below the mouth line ...), so the point opens and
   closes with its own lid or lip;
2. non-negative least squares with the weights summing to 1 (a point inside the candidates'
   hull, carried rigidly with the mesh, z included), in inter-ocular units over all frames;
3. the KEEP largest weights are kept and refitted, rounded to 3 decimals.
Midline points (8, 27–30, 33, 51, 57, 62, 66) get mirror-symmetric weights.

The vertex mirror map (vertex i ↔ the vertex at its mirror position) is found on the mean face
of the fitting frames: each vertex's reflection about the canonical face's symmetry plane lies
20× closer to its partner than to any other vertex, and the map is an involution.

Prints the Python literal for space_data/landmarks.py and the NME on the fitting and held-out
frames (scripts/measure_geometry.py measures the shipped map on the held-out clips).

Run (project root): python -m scripts.fit_ibug_map [--realdata DIR] [--cache pairs.npz]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from scipy.optimize import nnls

from scripts.ibug_reference import (
    Pairs,
    cached_npz,
    collect,
    nme,
    npz_cache_option,
    photo_sources,
    realdata_option,
    video_sources,
)
from space_data.landmarks import IBUG68_MIRROR, IBUG68_NAMES
from space_data.pose import CANONICAL_FACE68, fit_similarity, matrix_to_euler
from space_data.synth.mesh import N_FACE
from space_data.testing.faces import PORTRAITS

FIT_VIDEOS = (
    "frontal_talking_may_25fps.mp4",
    "news_talking_25fps.mp4",
    "emotion_happy_woman_30fps.mp4",
    "emotion_sad_man_30fps.mp4",
    "emotion_surprised_woman_30fps.mp4",
    "voxceleb2_style_224_turned.mp4",
)
"""Clips the map is fitted on; the other realdata clips are held out (measure_geometry.py)."""
HELD_OUT_VIDEOS = (
    "interview_talking_25fps.mp4",
    "outdoor_singing_25fps.mp4",
    "voxceleb2_style_224_frontal.mp4",
    "emotion_angry_man_30fps.mp4",
    "emotion_sad_crying_bw_30fps.mp4",
    "strong_yaw_noaudio_30fps.mp4",
)
FIT_PHOTOS = (*PORTRAITS, "hand_on_cheek.jpg", "hand_waving_beside_face.png")
MAX_YAW = 25.0
CANDIDATES = 12
KEEP = 4
UPPER_LID = {37: 0, 38: 0, 43: 1, 44: 1}  # iBUG point → eye (0 subject's right, 1 left)
LOWER_LID = {40: 0, 41: 0, 46: 1, 47: 1}
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
EYE_CORNER_PAIRS = ((33, 133), (362, 263))  # FaceMesh outer/inner corners of each eye
MOUTH_LINE = (78, 13, 14, 308)  # inner-lip corners and the inner-lip midline points


def mirrored_sources(sources: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    return {
        f"{name}-mirror": [np.ascontiguousarray(f[:, ::-1]) for f in frames]
        for name, frames in sources.items()
    }


def gather(realdata: Path, videos: tuple[str, ...], photos: tuple[str, ...]) -> Pairs:
    """Mesh/dlib pairs on every second frame of `videos` (and mirrored), and on `photos`."""
    clips = video_sources(realdata / "video", list(videos), step=2)
    parts = [collect(clips), collect(mirrored_sources(clips))]
    if photos:
        parts.append(collect(photo_sources(realdata / "images", list(photos)), static=True))
    return Pairs(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("mesh", "ref", "source"))
    )


def fit_pairs(realdata: Path, cache: Path | None) -> Pairs:
    """The fitting pairs (`gather` on FIT_VIDEOS and FIT_PHOTOS), read from the npz `cache` when
    it exists, else gathered and written there (when given)."""
    return Pairs(**cached_npz(cache, lambda: vars(gather(realdata, FIT_VIDEOS, FIT_PHOTOS))))


def frontal_mesh(mesh: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the 468 face vertices moved into the canonical frame (similarity fit of the
    68 points `weights @ mesh` onto CANONICAL_FACE68), and the frames' yaw (3D fit, degrees)."""
    out, yaw = [], []
    for frame in mesh:
        s, rot, t = fit_similarity(weights @ frame, CANONICAL_FACE68)
        out.append(s * frame[:N_FACE] @ rot.T + t)
        yaw.append(matrix_to_euler(rot.T)[0])
    return np.array(out), np.array(yaw)


def vertex_mirror(mean: np.ndarray) -> np.ndarray:
    """(468,) vertex index of each vertex's mirror partner on a face symmetric about x = 0."""
    reflected = mean * np.array([-1.0, 1.0, 1.0])
    partner = np.linalg.norm(mean[:, None] - reflected[None], axis=-1).argmin(1)
    if not np.array_equal(partner[partner], np.arange(len(mean))):
        raise click.ClickException("the vertex mirror map is not an involution")
    return partner


def side_of_lines(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed vertical offset (image y down) of every vertex from each eye's corner line and
    from the mouth line (a parabola through the inner-lip corners and midline), (468,) each."""
    x, y = mean[:, 0], mean[:, 1]

    def line(a: int, b: int) -> np.ndarray:
        return y - (
            mean[a, 1] + (mean[b, 1] - mean[a, 1]) * (x - mean[a, 0]) / (mean[b, 0] - mean[a, 0])
        )

    left_c, top, bottom, right_c = MOUTH_LINE
    xs = mean[[left_c, top, right_c], 0]
    ys = np.array([mean[left_c, 1], (mean[top, 1] + mean[bottom, 1]) / 2, mean[right_c, 1]])
    mouth = y - np.polyval(np.polyfit(xs, ys, 2), x)
    return line(*EYE_CORNER_PAIRS[0]), line(*EYE_CORNER_PAIRS[1]), mouth


def _convex_lstsq(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """min |a·u − b|², u ≥ 0, counts·u = 1 (a heavily weighted constraint row)."""
    big = 1e3
    u, _ = nnls(np.vstack([a, big * counts]), np.concatenate([b, [big]]))
    return u


def _design(mesh: np.ndarray, ref: np.ndarray, k: int, partner: np.ndarray, orbits: list):
    """Least-squares rows for point k (vertex orbits as unknowns) and for its mirror point
    (the partner vertices, same unknowns): a (4F, len(orbits)), b (4F,), orbit sizes."""
    mk = IBUG68_MIRROR[k]
    cols_k = [mesh[:, list(o)].sum(1) for o in orbits]  # (F, 2) each
    cols_m = [mesh[:, [partner[v] for v in o]].sum(1) for o in orbits]
    a = np.concatenate(
        [
            np.stack(cols_k, -1).reshape(-1, len(orbits)),
            np.stack(cols_m, -1).reshape(-1, len(orbits)),
        ]
    )
    b = np.concatenate([ref[:, k].reshape(-1), ref[:, mk].reshape(-1)])
    return a, b, np.array([len(o) for o in orbits], dtype=np.float64)


def fit_map(pairs: Pairs, partner: np.ndarray, sides) -> np.ndarray:
    """(68, 478) weights, rows summing to 1, mirror-symmetric (see the module docstring)."""
    mesh, ref = pairs.mesh[:, :N_FACE, :2], pairs.ref
    iod = np.linalg.norm(ref[:, 36] - ref[:, 45], axis=-1)[:, None, None]
    mesh, ref = mesh / iod, ref / iod
    eyes, mouth = sides[:2], sides[2]
    weights = np.zeros((68, 478))
    for k in range(68):
        mk = IBUG68_MIRROR[k]
        if mk < k:
            continue
        dist = np.linalg.norm(mesh - ref[:, None, k], axis=-1).mean(0)
        if k in UPPER_LID:
            dist[eyes[UPPER_LID[k]] > 0] = np.inf
        if k in LOWER_LID:
            dist[eyes[LOWER_LID[k]] < 0] = np.inf
        if k in UPPER_LIP:
            dist[mouth > 0] = np.inf
        if k in LOWER_LIP:
            dist[mouth < 0] = np.inf
        cand = np.argsort(dist)[:CANDIDATES]
        if k == mk:  # unknowns per mirror orbit {v, partner(v)}
            orbits = sorted({tuple(sorted({v, partner[v]})) for v in cand})
        else:
            orbits = [(v,) for v in cand]

        u = _convex_lstsq(*_design(mesh, ref, k, partner, orbits))
        top = [orbits[i] for i in np.argsort(-u)[:KEEP] if u[i] > 0.02]
        u = _convex_lstsq(*_design(mesh, ref, k, partner, top))
        for o, value in zip(top, u, strict=True):
            for v in o:
                weights[k, v] = value
                weights[mk, partner[v]] = value
    return weights


def rounded(weights: np.ndarray) -> np.ndarray:
    """Weights rounded to 3 decimals, each row still summing to exactly 1 (largest adjusted)."""
    out = np.round(weights, 3)
    for row in out:
        row[np.argmax(row)] += 1.0 - row.sum()
    return out


def literal(weights: np.ndarray) -> str:
    lines = []
    for k, row in enumerate(weights):
        nz = np.flatnonzero(row)
        nz = nz[np.argsort(-row[nz], kind="stable")]
        terms = ", ".join(f"({v}, {row[v]:.3f})" for v in nz)
        lines.append(f"    ({terms}{',' if len(nz) == 1 else ''}),  # {k} {IBUG68_NAMES[k]}")
    return "IBUG68_FROM_MESH = (\n" + "\n".join(lines) + "\n)"


def summary(label: str, err: np.ndarray) -> str:
    """One line: median over frames of the mean NME (%) overall and per region."""
    parts = {
        "all": slice(0, 68),
        "jaw": slice(0, 17),
        "brows": slice(17, 27),
        "nose": slice(27, 36),
        "eyes": slice(36, 48),
        "mouth": slice(48, 68),
    }
    cells = "  ".join(f"{k} {100 * np.median(err[:, s].mean(1)):.2f}" for k, s in parts.items())
    return f"{label:28s} frames {len(err):4d}  {cells}"


@click.command()
@realdata_option
@npz_cache_option("the fitting pairs")
def main(realdata: Path, cache: Path | None) -> None:
    """Fit the MediaPipe → iBUG-68 map against dlib and print it as a Python literal."""
    from space_data.landmarks import ibug68_weights

    pairs = fit_pairs(realdata, cache)
    aligned, yaw = frontal_mesh(pairs.mesh, ibug68_weights())
    pairs = pairs.select(np.abs(yaw) < MAX_YAW)
    mean = aligned[np.abs(yaw) < MAX_YAW].mean(0)
    weights = rounded(fit_map(pairs, vertex_mirror(mean), side_of_lines(mean)))
    click.echo(literal(weights))
    err = nme(np.einsum("kv,fvc->fkc", weights, pairs.mesh), pairs.ref)
    click.echo(summary("fitting frames (NME %)", err))


if __name__ == "__main__":
    main()
