"""Measure the 68-point map and the head-pose estimator; prints the numbers of docs/record.md.

1. iBUG convention: NME (2D point error / inter-ocular distance, outer eye corners) of
   `space_data.landmarks.mesh_to_ibug68` against dlib's iBUG-300W-trained 68-point predictor
   (scripts/ibug_reference.py) on every second frame of the realdata clips the map was NOT
   fitted on (scripts/fit_ibug_map.py HELD_OUT_VIDEOS), median over frames of the per-frame
   mean, overall and per region; the vertical offset of the jaw ends 0/16. The previous
   one-vertex-per-point map (`LEGACY_MAP`) and the surface map without the jaw's contour
   marching are measured on the same frames for comparison. The
   same on sample-corpus-style renders of the held-out faces of 2. at near-frontal poses
   (`FRONTAL_GRID`; FaceMesh and dlib in static image mode).
2. Head pose on renders of held-out identities (scripts/pose_renders.py held_out_photos: never
   used to build the canonical face, the pose response or the map) at yaw −60…60 step 10,
   pitch −30…30 step 15, roll −10/0/10: median and 95th-percentile absolute error, least-squares
   slope of estimate against truth per axis, and tables per 15° bin of |yaw| and of |pitch|.
3. Real clips: the peak |yaw| of the strong-yaw clip; the mirror check (a portrait and its
   mirror image: yaw and roll negated, pitch kept) and the in-plane check (the portrait turned
   20° clockwise: roll +20°) on the realdata portraits.

Run (project root): python -m scripts.measure_geometry [--realdata DIR] [--cache DIR]
"""

from __future__ import annotations

from pathlib import Path

import click
import cv2
import numpy as np

from scripts.fit_ibug_map import HELD_OUT_VIDEOS, mirrored_sources, summary
from scripts.ibug_reference import (
    Pairs,
    cached_npz,
    collect,
    nme,
    realdata_option,
    video_sources,
)
from scripts.pose_renders import held_out_photos, pose_grid, render_frames, render_meshes
from space_data.landmarks import LandmarksConfig, ibug68_weights, make_landmarker, mesh_to_ibug68
from space_data.pose import estimate_pose
from space_data.testing.faces import PORTRAITS, read_rgb, video_frames

LEGACY_MAP = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301, 168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip
"""The FaceMesh → iBUG vertex list in wide use before (e.g. LatentSync's LM68_FROM_MP478)."""
GRID = pose_grid(range(-60, 61, 10), range(-30, 31, 15), (-10, 0, 10))
FRONTAL_GRID = pose_grid(range(-20, 21, 10), range(-15, 16, 15), (0,))
STRONG_YAW = "strong_yaw_noaudio_30fps.mp4"


def surface_map(mesh: np.ndarray) -> np.ndarray:
    """(F, 68, 3) `IBUG68_FROM_MESH` alone: the jaw without its contour marching."""
    return np.einsum("kv,fvc->fkc", ibug68_weights(), mesh)


def landmark_report(pairs: Pairs) -> None:
    yaw = estimate_pose(mesh_to_ibug68(pairs.mesh))[0][:, 0]
    plain = np.array(["-mirror" not in s for s in pairs.source])
    frontal = np.abs(yaw) < 25
    iod = np.linalg.norm(pairs.ref[:, 36] - pairs.ref[:, 45], axis=-1)
    for label, points in (
        ("new map", mesh_to_ibug68(pairs.mesh)),
        ("surface map alone (no jaw marching)", surface_map(pairs.mesh)),
        ("legacy map", pairs.mesh[:, list(LEGACY_MAP)]),
    ):
        err = nme(points, pairs.ref)
        click.echo(f"{label}, NME % against dlib on held-out clips:")
        click.echo(summary("  all frames", err[plain]))
        click.echo(summary("  |yaw| < 25°", err[plain & frontal]))
        click.echo(summary("  |yaw| < 25°, with mirrored", err[frontal]))
        drop = np.median(
            (points[frontal][:, [0, 16], 1] - pairs.ref[frontal][:, [0, 16], 1])
            / iod[frontal, None],
            0,
        )
        click.echo(f"  jaw ends 0/16 below dlib's by {drop[0]:+.3f} / {drop[1]:+.3f} IOD")
    err = nme(mesh_to_ibug68(pairs.mesh), pairs.ref)
    for clip in HELD_OUT_VIDEOS:
        sel = (pairs.source == clip) & frontal
        if sel.any():
            click.echo(summary(f"  {clip[:26]}", err[sel]))


def pose_report(truth: np.ndarray, mesh: np.ndarray) -> None:
    est = estimate_pose(mesh_to_ibug68(mesh))[0][:, :3].astype(np.float64)
    err = np.abs(est - truth)
    axes = ("yaw", "pitch", "roll")
    click.echo(f"head pose on {len(truth)} renders of held-out identities, degrees:")
    for i, axis in enumerate(axes):
        slope = np.polyfit(truth[:, i], est[:, i], 1)[0]
        click.echo(
            f"  {axis:5s} median {np.median(err[:, i]):.2f}  p95 {np.percentile(err[:, i], 95):.2f}"
            f"  max {err[:, i].max():.2f}  slope {slope:.3f}"
        )
    for i, axis in enumerate(axes[:2]):
        head = " | ".join(f"{a} median / p95" for a in axes)
        click.echo(f"\n| abs {axis} | renders | {head} |")
        click.echo("|---|---|---|---|---|")
        edges = (0, 15, 30, 45, 61) if i == 0 else (0, 15, 31)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            sel = (np.abs(truth[:, i]) >= lo) & (np.abs(truth[:, i]) < hi)
            cells = " | ".join(
                f"{np.median(err[sel, k]):.1f} / {np.percentile(err[sel, k], 95):.1f}"
                for k in range(3)
            )
            click.echo(f"| {lo}–{min(hi, 60 if i == 0 else 30)}° | {sel.sum()} | {cells} |")


def real_report(realdata: Path) -> None:
    landmarker = make_landmarker(LandmarksConfig())
    try:
        frames = video_frames(realdata / "video" / STRONG_YAW, 1000)
        found = [landmarker(rgb) for rgb in frames]
        lm = np.array([np.full((68, 3), np.nan) if f is None else f.lm68 for f in found])
        yaw = estimate_pose(lm)[0][:, 0]
        click.echo(f"\nstrong-yaw clip: peak |yaw| {np.nanmax(np.abs(yaw)):.1f}°")
        for name in PORTRAITS:
            rgb = read_rgb(realdata / "images" / name)
            h, w = rgb.shape[:2]
            turn = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), -20.0, 1.0), (w, h))
            poses = []
            for image in (rgb, np.ascontiguousarray(rgb[:, ::-1]), turn):
                landmarker.reset()
                poses.append(estimate_pose(landmarker(image).lm68[None])[0][0, :3])
            base, mirror, turned = poses
            click.echo(
                f"  {name[:30]:30s} pose {np.round(base, 1)}  mirror: "
                f"yaw+yaw' {base[0] + mirror[0]:+.2f}, roll+roll' {base[2] + mirror[2]:+.2f}, "
                f"pitch-pitch' {base[1] - mirror[1]:+.2f}; "
                f"turned 20°: roll change {turned[2] - base[2]:+.2f}"
            )
    finally:
        landmarker.close()


@click.command()
@realdata_option
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the collected landmarks (reused when present).",
)
def main(realdata: Path, cache: Path | None) -> None:
    """Print NME against dlib on held-out clips and pose errors on held-out renders."""
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)

    def pairs() -> dict[str, np.ndarray]:
        clips = video_sources(realdata / "video", list(HELD_OUT_VIDEOS), step=2)
        return vars(collect({**clips, **mirrored_sources(clips)}))

    def renders() -> dict[str, np.ndarray]:
        _, truth, mesh = render_meshes(held_out_photos(realdata), GRID)
        return {"truth": truth, "mesh": mesh}

    landmark_report(Pairs(**cached_npz(cache / "held_out_pairs.npz" if cache else None, pairs)))

    def frontal_renders() -> dict[str, np.ndarray]:
        frames = [f for _, _, f in render_frames(held_out_photos(realdata), FRONTAL_GRID)]
        return vars(collect({"renders": frames}, static=True))

    z = cached_npz(cache / "held_out_frontal_renders.npz" if cache else None, frontal_renders)
    err = nme(mesh_to_ibug68(z["mesh"]), z["ref"])
    click.echo(summary("renders of held-out faces", err))
    click.echo(summary("  surface map alone", nme(surface_map(z["mesh"]), z["ref"])))
    click.echo(summary("  legacy map", nme(z["mesh"][:, list(LEGACY_MAP)], z["ref"])))
    z = cached_npz(cache / "held_out_renders.npz" if cache else None, renders)
    pose_report(z["truth"], z["mesh"])
    real_report(realdata)


if __name__ == "__main__":
    main()
