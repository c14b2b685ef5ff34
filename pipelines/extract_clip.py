"""`space extract-clip`: the per-clip record of one video file, written as one `.npz`."""

from __future__ import annotations

from pathlib import Path

import click

from space_data import storage
from space_data.clip import Clip, make_clip_id
from space_data.datasets import CORPORA, DATASETS
from space_data.extract import ExtractConfig, extract_clip
from space_data.params import DEFAULT_PARAMS, load_section, reports_params_errors


@click.command("extract-clip")
@click.argument("video")
@click.option("--audio", help="Separate audio file (MEAD .m4a, CREMA-D .wav).")
@click.option(
    "--dataset",
    type=click.Choice(DATASETS),
    help="Corpus the file comes from: frames of "
    + ", ".join(c.name for c in CORPORA.values() if c.whole_frames)
    + " are used whole, others are cropped around the face and resized. "
    "Default: an unknown corpus, cropped.",
)
@click.option(
    "--params",
    type=click.Path(dir_okay=False),
    help="params.yaml whose `extract` section to use (default: ./params.yaml if present, "
    "else the built-in defaults).",
)
@click.option("--out", required=True, help="Output .npz (a path or a URL).")
@reports_params_errors
def cli(video: str, audio: str | None, dataset: str | None, params: str | None, out: str) -> None:
    """Extract the per-clip feature record of VIDEO (a path or a URL) into OUT (.npz).

    The npz holds the record arrays under their names in docs/record.md (lm3d, pose, scale,
    face, lm_norm, eyes, eyes_norm, hands, emotion_pred; mfcc and speech with audio; kp,
    kp_source, kp_pose, kp_t, kp_exp with a keypoint checkpoint), plus `meta` and `stats` (JSON
    strings), `frame0` (JPEG bytes) and, when enabled, `audio` (FLAC bytes).
    A video that cannot be processed exits with status 1 and one line naming the reason.
    """
    config = _config(params)
    name = dataset or "custom"
    clip = Clip(
        clip_id=make_clip_id(name, storage.name(video)),
        dataset=name,
        speaker="unknown",
        path=video,
        audio_path=audio,
    )
    record = extract_clip(clip, config)
    if not record.ok:
        click.echo(f"error: {video}: {record.reason}", err=True)
        raise SystemExit(1)
    with storage.writing(out) as tmp:  # a path or a URL, written whole
        record.save_npz(tmp)
    stats = record.stats
    click.echo(
        f"wrote {out}: {stats.n_frames} frames at 30 fps ({stats.duration:.2f} s), "
        f"{stats.frames_no_face} without a face, max |yaw| {stats.max_abs_yaw:.1f}°"
    )


def _config(params_path: str | None) -> ExtractConfig:
    path = Path(params_path) if params_path else DEFAULT_PARAMS
    if params_path is None and not path.is_file():
        return ExtractConfig()
    return load_section("extract", ExtractConfig, path)
