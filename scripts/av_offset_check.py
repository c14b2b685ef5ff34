"""Measure the offline A/V sync backend (`space_data.av_offset`) and the `av_offset` filter at
its default thresholds (README "A/V offset").

Every realdata talking clip (`space_data.testing.talking.TALKING` and `TALKING_SHORT`) is
extracted once (`ClipExtractor`: landmarks, scale, speech); then its audio is shifted by −12,
−8, 0, +8 and +12 timeline frames (its start cut, or zeros in front) and for each copy the
estimate (offset, confidence, or why it is unmeasured) and the filter's decision are printed,
then per shift how many copies the filter drops. The in-sync clips (`IN_SYNC`) give the mean raw
peak lag that `av_offset.MOUTH_LEAD` should equal. The speech track of the unshifted clip is
used for every copy (it only decides `no_speech`, by its count of speech frames).

Then the in-sync clips (and the turned VoxCeleb2 track, in sync too) are cut into windows of
2.5, 3, 4 and 5 s starting every second (`CUTS`), each window shifted the same way, and only the
counts are printed: short clips are where a weak fit can point confidently at the wrong lag.
Every table ends with how many confident readings (confidence ≥ the threshold) of clips in sync
(the in-sync realdata clips, their windows, the sample corpus) lie more than `WRONG` frames from
the shift: the estimator's confident errors, which should be none.

With `--sample DIR` the clips of a sample corpus (built there with params.yaml's `synth`
section when DIR does not exist) are measured too, with the same shifts: their jaws lead the
loudness by `synth.speech.JAW_LEAD_S` (the real mouth lead), so in sync they read about 0.

Run (project root): .venv/bin/python -m scripts.av_offset_check [--realdata DIR]
[--sample DIR] [--cache FILE.npz]   (~1 min for the realdata clips; the sample corpus ~3 min)
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np

from scripts.ibug_reference import cached_npz, npz_cache_option, realdata_option
from space_data import av_offset
from space_data.clip import Clip
from space_data.datasets import sample_clips
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.filters import FilterConfig, filter_clip
from space_data.media import decode_audio
from space_data.params import load_section
from space_data.record import FPS, SAMPLE_RATE, ClipStats
from space_data.sync_estimate import SyncEstimate
from space_data.synth import build_sample_corpus
from space_data.synth.corpus import SynthConfig
from space_data.testing.talking import IN_SYNC, TALKING, TALKING_SHORT, shifted, talking_path

SHIFTS = (-12, -8, 0, 8, 12)
"""Audio shifts, timeline frames (positive = audio made late)."""
CUTS = (2.5, 3.0, 4.0, 5.0)
"""Lengths (s) of the windows cut from the in-sync clips, one starting every second."""
WRONG = 3.0
"""A confident reading farther than this (frames) from the shift is confidently wrong."""
MEMBERS = ("lm3d", "scale", "speech", "audio")


def dropped(estimate: SyncEstimate, filters: FilterConfig) -> bool:
    """Whether the `av_offset` rule drops a clip with this estimate (and nothing else wrong)."""
    stats = ClipStats(
        av_offset_frames=estimate.offset_frames,
        av_offset_confidence=estimate.confidence,
        av_sync_backend=estimate.backend,
    )
    return "av_offset" in filter_clip(stats, filters)


def cell(estimate: SyncEstimate, drop: bool) -> str:
    if not estimate.measured:
        return f"{'—':>6s} {estimate.reason:9s} keep"
    return (
        f"{estimate.offset_frames:+6.1f} ({estimate.confidence:.2f})  {'DROP' if drop else 'keep'}"
    )


def extract_all(clips: list[Clip]) -> dict[str, np.ndarray]:
    """name/member → array of every clip (failed clips are left out, with a line)."""
    extractor = ClipExtractor(ExtractConfig())
    out = {}
    try:
        for clip in clips:
            record = extractor(clip)
            if not record.ok or "speech" not in record.arrays:
                click.echo(f"{clip.clip_id}: not measured ({record.reason or 'no audio'})")
                continue
            audio = decode_audio(clip.audio_path or clip.path)
            arrays = {**record.arrays, "audio": audio}
            out.update({f"{clip.clip_id}/{m}": arrays[m] for m in MEMBERS})
    finally:
        extractor.close()
    return out


def measure(
    arrays: dict[str, np.ndarray], shifts: tuple[int, ...], filters: FilterConfig
) -> dict[str, dict[int, tuple[SyncEstimate, bool]]]:
    """clip → shift → (estimate, dropped by the filter)."""
    names = sorted({key.split("/")[0] for key in arrays})
    out: dict[str, dict[int, tuple[SyncEstimate, bool]]] = {}
    for name in names:
        lm, scale, speech, audio = (arrays[f"{name}/{m}"] for m in MEMBERS)
        out[name] = {}
        for s in shifts:
            estimate = av_offset.estimate_offset(lm, scale, shifted(audio, s), speech)
            out[name][s] = (estimate, dropped(estimate, filters))
    return out


def cut_windows(arrays: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """name[a:b]/member → the `CUTS` windows of each clip (timeline frames a … b), audio cut
    at the same times."""
    out = {}
    for name in names:
        lm, scale, speech, audio = (arrays[f"{name}/{m}"] for m in MEMBERS)
        for seconds in CUTS:
            length = round(seconds * FPS)
            for a in range(0, max(1, len(lm) - length), FPS):
                b = a + length
                sound = audio[a * SAMPLE_RATE // FPS : b * SAMPLE_RATE // FPS]
                parts = (lm[a:b], scale[a:b], speech[a:b], sound)
                out.update({f"{name}[{a}:{b}]/{m}": x for m, x in zip(MEMBERS, parts, strict=True)})
    return out


def confidently_wrong(results: dict, shift: int, names, filters: FilterConfig) -> int:
    """Readings of these clips at this shift trusted by the filter (confidence ≥ its threshold)
    but more than WRONG frames from the shift (the clips are in sync unshifted)."""
    trusted = filters.av_offset.offline.min_confidence
    return sum(
        e.measured and e.confidence >= trusted and abs(e.offset_frames - shift) > WRONG
        for e in (results[n][shift][0] for n in names)
    )


def print_table(title: str, results: dict, counted: tuple[str, ...], in_sync: tuple[str, ...],
                filters: FilterConfig, rows: bool = True) -> None:  # fmt: skip
    """Each clip's row (when `rows`), then per shift the drops over all clips and over `counted`
    (when a subset), and the confidently wrong readings of the clips known to be `in_sync`."""
    click.echo(f"== {title}: offset (confidence) and decision at audio shift "
               + " / ".join(f"{s:+d}" for s in SHIFTS))  # fmt: skip
    for name, row in results.items() if rows else ():
        click.echo(f"{name[:44]:44s} " + " | ".join(cell(*row[s]) for s in SHIFTS))
    for label, names in (("all", tuple(results)), ("counted", counted)):
        if not names or (label == "counted" and set(names) == set(results)):
            continue
        drops = ", ".join(f"{s:+d}: {sum(results[n][s][1] for n in names)}/{len(names)}"
                          for s in SHIFTS)  # fmt: skip
        unmeasured = sum(not results[n][0][0].measured for n in names)
        click.echo(f"dropped ({label}, {len(names)} clips) {drops}; unmeasured unshifted: "
                   f"{unmeasured}")  # fmt: skip
    wrong = ", ".join(f"{s:+d}: {confidently_wrong(results, s, in_sync, filters)}" for s in SHIFTS)
    click.echo(f"confidently wrong (of {len(in_sync)} in-sync clips) {wrong}")


@click.command()
@realdata_option
@click.option("--sample", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A sample corpus folder (built there when absent) to measure too.")  # fmt: skip
@npz_cache_option("the extracted realdata (and sample) clips")
@click.option("--params", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="params.yaml whose `filter` section gives the thresholds.")  # fmt: skip
def main(realdata: Path, sample: Path | None, cache: Path | None, params: Path | None) -> None:
    """Print the offline backend's estimates and the filter's decisions on shifted copies."""
    filters = load_section("filter", FilterConfig, params) if params else FilterConfig()
    click.echo(f"thresholds (offline): {filters.av_offset.offline}")
    real = [
        Clip(n, "voxceleb2", "s", str(talking_path(realdata, n))) for n in TALKING + TALKING_SHORT
    ]
    clips = list(real)
    if sample is not None:
        if not sample.is_dir():
            build_sample_corpus(sample, load_section("synth", SynthConfig))
        clips += sample_clips(str(sample))
    arrays = cached_npz(cache, lambda: extract_all(clips))
    real_names = {c.clip_id for c in real}
    real_arrays = {k: v for k, v in arrays.items() if k.split("/")[0] in real_names}
    results = measure(real_arrays, SHIFTS, filters)
    print_table("realdata talking clips", results, TALKING, IN_SYNC + TALKING_SHORT, filters)
    peaks = [results[n][0][0].offset_frames + av_offset.MOUTH_LEAD for n in IN_SYNC]
    click.echo(f"raw peak lag of the in-sync clips {', '.join(IN_SYNC)}: "
               + ", ".join(f"{p:.1f}" for p in peaks)
               + f" (mean {np.mean(peaks):.2f}; MOUTH_LEAD = {av_offset.MOUTH_LEAD})")  # fmt: skip
    windows = measure(cut_windows(real_arrays, IN_SYNC + TALKING_SHORT), SHIFTS, filters)
    print_table(f"windows of {', '.join(map(str, CUTS))} s cut from the in-sync clips", windows,
                (), tuple(windows), filters, rows=False)  # fmt: skip
    if sample is not None:
        rest = {k: v for k, v in arrays.items() if k.split("/")[0] not in real_names}
        results = measure(rest, SHIFTS, filters)
        print_table(f"sample corpus {sample}", results, (), tuple(results), filters)
        measured = [r[0][0].offset_frames for r in results.values() if r[0][0].measured]
        if measured:
            click.echo(f"sample corpus, unshifted, measured: {len(measured)} of {len(results)}, "
                       f"offset {min(measured):+.1f} … {max(measured):+.1f} "
                       f"(median {float(np.median(measured)):+.1f})")  # fmt: skip
    if any(math.isnan(p) for p in peaks):
        raise click.ClickException("an in-sync clip is unmeasured: MOUTH_LEAD cannot be checked")


if __name__ == "__main__":
    main()
