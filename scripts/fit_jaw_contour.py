"""Fit the jaw's contour marching in `space_data.landmarks`: `JAW_SILHOUETTE` and `JAW_OUTSET`.

On turned heads iBUG's jaw line (dlib's, scripts/ibug_reference.py) is the visible outline of
the face, which moves over the mesh as the head turns; `mesh_to_ibug68` moves each surface-map
jaw point outwards onto that outline (`silhouette_depth`), found per frame among a short strip
of vertices across the outline. On the same fitting pairs as scripts/fit_ibug_map.py (all their
frames, any yaw; mirrored too):
1. strips: on the mean face in the canonical frame (`frontal_mesh`, made mirror-symmetric), the
   vertices within STRIP_WIDTH inter-ocular distances of jaw point k along the jaw line and at
   most STRIP_INSIDE inside it along its outward normal, for k = 0…8; point 16 − k takes the
   mirror vertices of k's strip (8, the chin, the union of its strip and its mirror);
2. outsets: per jaw point, the median over the frames of how far dlib's point lies beyond the
   marched point along the normal (inter-ocular distances), averaged with its mirror partner's.
   FaceMesh's outline lies a little inside dlib's, and a convex combination of vertices cannot
   leave the mesh.

Prints both literals and the NME on the fitting frames (scripts/measure_geometry.py measures
the shipped map on the held-out clips).

Run (project root): python -m scripts.fit_jaw_contour [--realdata DIR] [--cache pairs.npz]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from scripts.fit_ibug_map import fit_pairs, frontal_mesh, summary, vertex_mirror
from scripts.ibug_reference import Pairs, nme, npz_cache_option, realdata_option
from space_data.landmarks import ibug68_weights, jaw_normals, mesh_to_ibug68, silhouette_depth

STRIP_WIDTH = 0.2
STRIP_INSIDE = 0.05


def strips(mean: np.ndarray, partner: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Per jaw point 0–16 the strip's vertices on the symmetric mean face (468, 3)."""
    weights = ibug68_weights()[:, : len(mean)]
    points = (weights @ mean)[:, :2]
    normal = jaw_normals(points)
    iod = np.linalg.norm(points[36] - points[45])
    rows: dict[int, np.ndarray] = {}
    for k in range(9):
        offset = mean[:, :2] - points[k]
        along = offset @ np.array([-normal[k, 1], normal[k, 0]])
        out = offset @ normal[k]
        rows[k] = np.flatnonzero((np.abs(along) < STRIP_WIDTH * iod) & (out > -STRIP_INSIDE * iod))
        rows[16 - k] = partner[rows[k]]
    rows[8] = np.union1d(rows[8], partner[rows[8]])
    return tuple(tuple(sorted(int(v) for v in rows[k])) for k in range(17))


def outsets(pairs: Pairs, rows: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """(17,) median distance (inter-ocular) of dlib's jaw beyond the marched one, symmetrized."""
    surface = np.einsum("kv,fvc->fkc", ibug68_weights(), pairs.mesh)
    normal = jaw_normals(surface)
    iod = np.linalg.norm(surface[:, 36, :2] - surface[:, 45, :2], axis=-1)[:, None]
    beyond = ((pairs.ref[:, :17] - surface[:, :17, :2]) * normal).sum(-1) / iod
    out = np.median(beyond - silhouette_depth(pairs.mesh, surface, rows), axis=0)
    return (out + out[::-1]) / 2


@click.command()
@realdata_option
@npz_cache_option("the fitting pairs (as scripts/fit_ibug_map.py)")
def main(realdata: Path, cache: Path | None) -> None:
    """Fit the jaw strips and outsets against dlib and print them as Python literals."""
    pairs = fit_pairs(realdata, cache)
    aligned, _ = frontal_mesh(pairs.mesh, ibug68_weights())
    mean = aligned.mean(0)
    partner = vertex_mirror(mean)
    mean = (mean + (mean * [-1.0, 1.0, 1.0])[partner]) / 2
    rows = strips(mean, partner)
    click.echo("JAW_SILHOUETTE = (")
    for k, row in enumerate(rows):
        click.echo(f"    {row},  # {k}")
    click.echo(")")
    values = ", ".join(f"{v:.3f}" for v in outsets(pairs, rows))
    click.echo(f"JAW_OUTSET = ({values})")
    click.echo(summary("fitting frames, shipped map", nme(mesh_to_ibug68(pairs.mesh), pairs.ref)))


if __name__ == "__main__":
    main()
