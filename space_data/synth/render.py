"""Render a `HeadMesh` at a head pose: orthographic projection, painter's-order rasterizer.

Each frame: pose the canonical vertices (x_img = s·R·v + t, R = `euler_to_matrix`), rank the
triangles far to near, find for every pixel the nearest-ranked triangle covering its centre,
then map each covered pixel through its triangle's affine map into the photo and sample it with
one `cv2.remap` over the head's bounding box. Small triangles (most of the face's ~900) are
rasterized together in numpy (edge functions over each triangle's bounding box, one batch per
size class); the large ones (outer rings) with `cv2.fillConvexPoly`, where one Python call per
triangle is cheaper than its pixels. ~1,200 triangles, a few ms per frame on one core.
"""

from __future__ import annotations

import cv2
import numpy as np

from space_data.pose import euler_to_matrix
from space_data.synth.mesh import HeadMesh

CAVITY_RGB = np.array([70, 22, 28], dtype=np.uint8)
"""Flat colour of the open mouth (dark red)."""
_SHIFT = 4  # fillConvexPoly fixed-point bits: 1/16 px vertex precision
_CLASSES = (4, 8, 16)  # bounding-box sides (px) rasterized in numpy, one batch per class
_GRIDS = {s: np.divmod(np.arange(s * s, dtype=np.float32), s) for s in _CLASSES}  # (oy, ox)


def project(mesh: HeadMesh, pose: np.ndarray, mouth_open: float = 0.0) -> np.ndarray:
    """(V, 3) image-space vertices: x, y pixels, z depth in pixels (larger = farther).

    pose: (6,) yaw, pitch, roll degrees, tx, ty pixels (image position of the canonical
    origin), scale (pixels per canonical unit).
    """
    yaw, pitch, roll, tx, ty, scale = pose
    rot = euler_to_matrix(yaw, pitch, roll)
    return scale * mesh.posed(mouth_open) @ rot.T + np.array([tx, ty, 0.0])


def render(
    mesh: HeadMesh, pose: np.ndarray, background: np.ndarray, mouth_open: float = 0.0
) -> np.ndarray:
    """(H, W, 3) uint8 frame: the posed head over `background` ((H, W, 3) uint8)."""
    h, w = background.shape[:2]
    corners = project(mesh, pose, mouth_open)[mesh.triangles]  # (F, 3, 3)
    ids = rasterize(corners, h, w)
    rows, cols = np.flatnonzero(ids.any(1)), np.flatnonzero(ids.any(0))
    out = background.copy()
    if rows.size == 0:
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = ids[y0:y1, x0:x1]
    idx = np.flatnonzero(box)
    tri = box.ravel()[idx].astype(np.int64) - 1
    # per covered pixel: [x, y, 1] @ its triangle's affine map → texture (u, v)
    affine = np.take(_affines(corners[:, :, :2], mesh.uv).reshape(-1, 6), tri, axis=0)
    ys, xs = np.divmod(idx, box.shape[1])
    gx, gy = (xs + x0).astype(np.float32), (ys + y0).astype(np.float32)
    map_x = np.full(box.shape, -1.0, dtype=np.float32)
    map_y = np.full(box.shape, -1.0, dtype=np.float32)
    map_x.ravel()[idx] = gx * affine[:, 0] + gy * affine[:, 2] + affine[:, 4]
    map_y.ravel()[idx] = gx * affine[:, 1] + gy * affine[:, 3] + affine[:, 5]
    sampled = cv2.remap(mesh.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    np.copyto(out[y0:y1, x0:x1], sampled, where=(box > 0)[:, :, None])
    mouth = mesh.cavity[tri]
    out[ys[mouth] + y0, xs[mouth] + x0] = CAVITY_RGB
    return out


def rasterize(corners: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) uint16 buffer: 1 + index of the nearest triangle covering each pixel, 0 = none.

    corners: (F, 3, 3) image-space triangle corners (x, y px, depth). Nearness is by mean corner
    depth (painter's order), which is exact for the face surface away from silhouettes.
    """
    rank = np.empty(len(corners), dtype=np.int64)
    rank[np.argsort(-corners[:, :, 2].mean(1), kind="stable")] = np.arange(len(corners))
    xy = corners[:, :, :2]
    lo = np.floor(xy.min(1))
    side = (np.ceil(xy.max(1)) - lo).max(1) + 1
    onscreen = (xy.max(1) >= 0).all(1) & (lo[:, 0] < w) & (lo[:, 1] < h)
    big = np.flatnonzero((side > _CLASSES[-1]) & onscreen)
    fixed = np.round(xy[big] * (1 << _SHIFT)).astype(np.int32)
    buf = np.zeros((h, w), dtype=np.uint16)
    for k in np.argsort(rank[big]):
        colour = int(rank[big[k]]) + 1
        cv2.fillConvexPoly(buf, fixed[k], (colour,), cv2.LINE_8, _SHIFT)
        # and a 1-px outline: no crack where a big triangle meets small ones
        cv2.polylines(buf, [fixed[k]], True, (colour,), 1, cv2.LINE_8, _SHIFT)
    best = buf.ravel().astype(np.int64)  # 1 + rank of the nearest triangle so far
    prev = 0
    for size in _CLASSES:
        sel = np.flatnonzero((side > prev) & (side <= size) & onscreen)
        prev = size
        pix, cand = _small_pixels(
            xy[sel].astype(np.float32), lo[sel].astype(np.float32), size, h, w
        )
        np.maximum.at(best, pix, rank[sel][cand] + 1)
    order = np.argsort(rank)
    ids = np.zeros(h * w, dtype=np.uint16)
    hit = best > 0
    ids[hit] = order[best[hit] - 1] + 1
    return ids.reshape(h, w)


def _small_pixels(
    xy: np.ndarray, lo: np.ndarray, size: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose centres lie in triangles xy (n, 3, 2) float32 whose bounding boxes start at
    lo (n, 2) and fit in size × size: (flat pixel index, triangle index)."""
    oy, ox = _GRIDS[size]
    a, b, c = xy[:, 0], xy[:, 1], xy[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    sign = np.where(area < 0, -1.0, 1.0).astype(np.float32)
    inside = None
    for p, q in ((a, b), (b, c), (c, a)):
        # edge function (q - p) × (pixel - p) = ex·(y - py) − ey·(x - px), oriented by sign
        ex, ey = (q[:, 0] - p[:, 0]) * sign, (q[:, 1] - p[:, 1]) * sign
        base = ex * (lo[:, 1] - p[:, 1]) - ey * (lo[:, 0] - p[:, 0])
        ok = (base[:, None] + ex[:, None] * oy - ey[:, None] * ox) >= -1e-4
        inside = ok if inside is None else inside & ok
    inside &= (np.abs(area) > 1e-6)[:, None]
    tri, k = np.nonzero(inside)
    px = lo[tri, 0].astype(np.int64) + ox[k].astype(np.int64)
    py = lo[tri, 1].astype(np.int64) + oy[k].astype(np.int64)
    keep = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    return py[keep] * w + px[keep], tri[keep]


def _affines(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """(F, 3, 2) maps [x, y, 1] @ A = texture (u, v) from image triangles dst (F, 3, 2) to
    texture triangles src (F, 3, 2). Edge-on triangles map to their texture centroid."""
    # closed-form inverse of [[x0 y0 1], [x1 y1 1], [x2 y2 1]]: batched linalg is slow here
    x, y = dst[:, :, 0], dst[:, :, 1]
    det = (
        x[:, 0] * (y[:, 1] - y[:, 2])
        + x[:, 1] * (y[:, 2] - y[:, 0])
        + x[:, 2] * (y[:, 0] - y[:, 1])
    )
    flat = np.abs(det) < 1e-6
    det = np.where(flat, 1.0, det)
    inv = (
        np.stack(
            [
                np.stack([y[:, 1] - y[:, 2], y[:, 2] - y[:, 0], y[:, 0] - y[:, 1]], 1),
                np.stack([x[:, 2] - x[:, 1], x[:, 0] - x[:, 2], x[:, 1] - x[:, 0]], 1),
                np.stack(
                    [
                        x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1],
                        x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2],
                        x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0],
                    ],
                    1,
                ),
            ],
            1,
        )
        / det[:, None, None]
    )
    affine = inv @ src.astype(np.float64)
    affine[flat] = 0.0
    affine[flat, 2] = src[flat].mean(1)
    return affine.astype(np.float32)
