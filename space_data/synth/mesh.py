"""A textured 3D head mesh built from one real photo with MediaPipe FaceMesh.

FaceMesh (static image mode, refined landmarks) gives 478 points: x, y in photo pixels and a
relative depth z on the same scale as x. Its tesselation triangulates the 468 face vertices
and leaves three holes (two eyes, the mouth) and one outer boundary (the face oval). We close
the eye holes with fans around the iris centres (textured from the photo), close the mouth with
a dark cavity fan that shows when the jaw opens, and add rings of vertices outside the face oval
(hair, ears, neck, from the same photo, receding in depth) so the rendered head has the context
detectors expect.

Canonical frame (what the ground-truth angles are relative to): the photo's face is rarely
exactly frontal, so the mesh is rotated into a frame defined by the face itself:
- x: the normal of the face's mirror-symmetry plane (found by fitting the mesh to the mesh
  FaceMesh returns for the mirrored photo), pointing to the image right;
- z: the direction of least spread of the 468 face vertices (the face's principal plane
  normal), made orthogonal to x, pointing away from the camera;
- y = z × x (down).
Origin: centroid of the 468 face vertices. Unit: distance between the outer eye corners
(FaceMesh vertices 33 and 263). A head rendered with rotation `euler_to_matrix(yaw, pitch,
roll)` therefore has exactly those angles relative to a mirror-symmetric face whose principal
plane faces the camera.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from space_data.landmarks import face_mesh_points

N_FACE = 468
"""FaceMesh vertices covered by the tesselation (468..477 are the refined iris points)."""
EYE_CORNERS = (33, 263)
"""Outer eye corners; their distance is the canonical unit."""
IRIS_CENTRES = (468, 473)
LIP_UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LIP_LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
LIP_LOWER_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
MOUTH_CORNERS = (61, 291)

RING_SCALES = (1.2, 1.5, 1.9, 2.4)
"""Outer rings: distance from the face-oval centre relative to the oval, in the photo plane."""
RING_DEPTHS = (0.35, 0.8, 1.15, 1.3)
"""Depth of each ring behind the face oval, in canonical units (eye-corner distance)."""
TEXTURE_UNIT_PX = 96.0
"""Photos are downscaled until the canonical unit spans at most this many texture pixels
(about 1.5× the largest rendered size: more detail is never seen, and a small texture keeps
the per-frame remap in cache)."""
CAVITY_DEPTH = 0.25
"""How far the mouth-cavity centre sits behind the inner lips, canonical units."""


@dataclass(slots=True)
class HeadMesh:
    """A head in its canonical frame, textured from `texture`.

    vertices: (V, 3) float64, canonical units (x right, y down, z away from the camera).
    triangles: (F, 3) int32 vertex indices.
    uv: (F, 3, 2) float32 texture pixel coordinates per triangle corner.
    cavity: (F,) bool, triangles of the mouth cavity (drawn in a flat dark colour).
    jaw: (V,) float64 in [0, 1], how much each vertex follows the jaw when the mouth opens.
    texture: (H, W, 3) uint8 RGB photo.
    landmarks: (478, 3) float64 canonical positions of the FaceMesh points (iris included).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray
    cavity: np.ndarray
    jaw: np.ndarray
    texture: np.ndarray
    landmarks: np.ndarray

    def posed(self, mouth_open: float) -> np.ndarray:
        """(V, 3) vertices with the jaw lowered by `mouth_open` canonical units."""
        out = self.vertices.copy()
        out[:, 1] += mouth_open * self.jaw
        return out


def _face_mesh_model():
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    )


def detect_landmarks(rgb: np.ndarray, model=None) -> np.ndarray:
    """(478, 3) float64 FaceMesh points of the one face in `rgb`: x, y, z in pixels.

    Raises ValueError when no face is found (a synth photo must show a face).
    """
    own = model is None
    model = model or _face_mesh_model()
    try:
        points = face_mesh_points(model, rgb)
    finally:
        if own:
            model.close()
    if points is None:
        raise ValueError("MediaPipe FaceMesh found no face in the synth photo")
    return points


def tesselation() -> tuple[np.ndarray, list[list[int]]]:
    """FaceMesh triangles (F, 3) and the boundary loops (ordered vertex lists) of that surface."""
    import mediapipe as mp

    edges = mp.solutions.face_mesh_connections.FACEMESH_TESSELATION
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    tris = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]})
    count: dict[tuple[int, int], int] = defaultdict(int)
    for a, b, c in tris:
        for e in ((a, b), (b, c), (a, c)):
            count[e] += 1
    nxt: dict[int, list[int]] = defaultdict(list)
    for (a, b), n in count.items():
        if n == 1:
            nxt[a].append(b)
            nxt[b].append(a)
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            cand = [v for v in nxt[cur] if v != prev and (v not in seen or v == start)]
            if not cand or cand[0] == start:
                break
            prev, cur = cur, cand[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return np.array(tris, dtype=np.int32), loops


def _similarity_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3) of the least-squares similarity dst ≈ s·R·src + t (Umeyama)."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def canonical_frame(points: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Rotation R0 (3, 3) whose columns are the face's x, y, z axes in photo coordinates.

    points: (468, 3) face vertices in the photo; mirrored: (468, 3) the vertices FaceMesh
    finds in the left-right mirrored photo (in the mirrored photo's pixels). The map between
    the two is M·S (M = x-mirror, S = reflection through the symmetry plane), so S = M·Q.
    """
    q = _similarity_rotation(points, mirrored)
    s = np.diag([-1.0, 1.0, 1.0]) @ q
    evals, evecs = np.linalg.eigh((s + s.T) / 2)
    x = evecs[:, np.argmin(evals)]
    x *= np.sign(x[0])
    centred = points - points.mean(0)
    _, pvecs = np.linalg.eigh(centred.T @ centred)
    z = pvecs[:, 0] - (pvecs[:, 0] @ x) * x
    z /= np.linalg.norm(z)
    z *= np.sign(z[2])
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def build_head_mesh(photo: np.ndarray, model=None) -> HeadMesh:
    """Head mesh from a photo with one face; `model` is an optional open FaceMesh to reuse."""
    own = model is None
    model = model or _face_mesh_model()
    try:
        lm = detect_landmarks(photo, model)
        lm_mirror = detect_landmarks(np.ascontiguousarray(photo[:, ::-1]), model)
    finally:
        if own:
            model.close()
    unit = np.linalg.norm(lm[EYE_CORNERS[0]] - lm[EYE_CORNERS[1]])
    if unit > TEXTURE_UNIT_PX:
        f = TEXTURE_UNIT_PX / unit
        size = (round(photo.shape[1] * f), round(photo.shape[0] * f))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        lm, lm_mirror, unit = lm * f, lm_mirror * f, unit * f
    r0 = canonical_frame(lm[:N_FACE], lm_mirror[:N_FACE])
    origin = lm[:N_FACE].mean(0)

    def to_canonical(p: np.ndarray) -> np.ndarray:
        return (p - origin) @ r0 / unit

    tris, loops = tesselation()
    outer = next(loop for loop in loops if 10 in loop)
    mouth = next(loop for loop in loops if 13 in loop)
    eyes = [loop for loop in loops if EYE_CORNERS[0] in loop or EYE_CORNERS[1] in loop]

    photo_pts = [lm]  # photo-space positions (x, y px; z px) of every vertex, in order
    faces = [tris]
    # eyes: fans around the nearest iris centre, textured from the photo
    for loop in eyes:
        centre = min(IRIS_CENTRES, key=lambda i: np.linalg.norm(lm[i, :2] - lm[loop, :2].mean(0)))
        faces.append(_fan(loop, centre))
    # outer rings: scaled copies of the face oval in the photo plane, pushed back in depth
    oval = lm[outer]
    centre2 = oval[:, :2].mean(0)
    prev = np.array(outer)
    n_vert = len(lm)
    for scale, depth in zip(RING_SCALES, RING_DEPTHS, strict=True):
        ring = oval.copy()
        ring[:, :2] = _inside(centre2, centre2 + (oval[:, :2] - centre2) * scale, photo.shape)
        ring[:, 2] += depth * unit
        idx = np.arange(n_vert, n_vert + len(ring))
        photo_pts.append(ring)
        faces.append(_strip(prev, idx))
        prev, n_vert = idx, n_vert + len(ring)
    vertices = to_canonical(np.concatenate(photo_pts))
    uv_src = np.concatenate(photo_pts)[:, :2]
    # mouth cavity: a fan around a vertex set back behind the inner lips
    cavity_centre = vertices[mouth].mean(0) + np.array([0.0, 0.0, CAVITY_DEPTH])
    vertices = np.vstack([vertices, cavity_centre])
    uv_src = np.vstack([uv_src, uv_src[mouth].mean(0)])
    cavity_faces = _fan(mouth, len(vertices) - 1)
    faces.append(cavity_faces)

    triangles = np.concatenate(faces).astype(np.int32)
    cavity = np.zeros(len(triangles), dtype=bool)
    cavity[-len(cavity_faces) :] = True
    return HeadMesh(
        vertices=vertices,
        triangles=triangles,
        uv=uv_src[triangles].astype(np.float32),
        cavity=cavity,
        jaw=_jaw_weights(vertices, n_landmarks=len(lm)),
        texture=np.ascontiguousarray(photo),
        landmarks=to_canonical(lm),
    )


def _inside(centre: np.ndarray, pts: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pull points (n, 2) towards `centre` until they lie inside the photo (no mirrored
    texture at the border)."""
    hi = np.array([shape[1] - 1, shape[0] - 1], dtype=np.float64)
    d = pts - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = np.where(pts > hi, (hi - centre) / d, 1.0)
        t_lo = np.where(pts < 0, -centre / d, 1.0)
    t = np.minimum(t_hi, t_lo).min(1, keepdims=True)
    return centre + d * t


def _fan(loop: list[int], centre: int) -> np.ndarray:
    return np.array([(loop[i], loop[(i + 1) % len(loop)], centre) for i in range(len(loop))])


def _strip(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Triangles joining two rings with the same vertex count (quads split in two)."""
    a, b = inner, np.roll(inner, -1)
    c, d = outer, np.roll(outer, -1)
    return np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _jaw_weights(v: np.ndarray, n_landmarks: int) -> np.ndarray:
    """(V,) weights: 1 for the lower lip and chin, fading out above the mouth line and
    towards the jaw angles; 0 for the upper lip and the outer rings (the neck stretches);
    the cavity centre (last vertex) moves half way."""
    corners = v[list(MOUTH_CORNERS)]
    centre_x = corners[:, 0].mean()
    half_width = abs(corners[1, 0] - corners[0, 0]) / 2
    mouth_y = corners[:, 1].mean()
    below = _smoothstep((v[:, 1] - mouth_y) / (0.6 * half_width) + 0.2)
    lateral = 1.0 - _smoothstep(
        (np.abs(v[:, 0] - centre_x) - 1.2 * half_width) / (2.5 * half_width)
    )
    w = below * lateral
    w[list(LIP_LOWER_INNER) + list(LIP_LOWER_OUTER)] = 1.0
    w[list(LIP_UPPER_INNER)] = 0.0
    w[n_landmarks:-1] = 0.0
    w[-1] = 0.5
    return w
