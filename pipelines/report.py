"""`space report`: a static HTML report of the data (counts, drop reasons, head pose,
durations, predicted emotions, speech fraction and A/V offset, sample frames with landmarks):
`reports/report.html` + `reports/figures/*.png`,
and `reports/metrics.json` (flat numbers) for `dvc metrics show`.

Counts and reasons come from the parquet tables; the pose histograms and the sample frames
read feature records of kept clips (at most `report.max_pose_clips` of them). Counts add up,
in metrics.json and on the page, in total and per corpus: kept plus dropped by first reason is
every clip, and each rule's count holds every clip that fails it (`report_data.clip_counts`).
An empty dataset (no file indexed, none usable, none kept) gives a report that says so.
"""

from __future__ import annotations

import html
import io
import json
import os
from pathlib import Path

import click
import pandas as pd
from tqdm import tqdm

from pipelines.report_data import (
    ROTATION_BUCKETS,
    ReportConfig,
    clip_counts,
    corpora_in,
    empty_note,
    evenly_spaced,
    rotation_shares,
)
from pipelines.units import CLIPS_TABLE, SUMMARY
from space_data import storage
from space_data.datasets import DATASETS
from space_data.filters import RULE_REASONS, FilterConfig
from space_data.params import (
    features_option,
    keep_option,
    load_section,
    manifest_option,
    params_option,
    shards_option,
)
from space_data.record import ClipFeatures
from space_data.shards import INDEX_NAME

FIGURES = "figures"
"""Sub-folder of the report folder that holds the PNGs (a separate DVC output)."""


def collect_tables(manifest: pd.DataFrame, keep: pd.DataFrame, clips: pd.DataFrame) -> pd.DataFrame:
    """One row per manifest clip: manifest labels, keep decision, and extraction statistics."""
    # an empty table may come back with float ids, which cannot be merged with strings
    manifest, keep, clips = (
        f.assign(clip_id=f["clip_id"].astype(str)) for f in (manifest, keep, clips)
    )
    labels = manifest[["clip_id", "emotion", "duration"]].rename(
        columns={"duration": "header_duration"}
    )
    stats = clips.drop(columns=[c for c in ("dataset", "path", "split", "emotion") if c in clips])
    table = keep.merge(labels, on="clip_id", how="left").merge(
        stats.rename(columns={"reason": "extract_reason"}), on="clip_id", how="left"
    )
    table["keep"] = table["keep"].astype(bool)
    table["emotion"] = table["emotion"].fillna("unlabelled")
    table["reason"] = table["reason"].fillna("kept").astype(str)
    return table


def compute_metrics(table: pd.DataFrame, index: dict | None, extract: dict | None = None) -> dict:
    """Numbers for `dvc metrics show`: the totals of `clip_counts`, `kept_fraction`, the test
    split's rotation buckets and the shards, under `corpus` the `clip_counts` of every
    registered corpus (0 without rows), and under `extract` what the last extract run met
    (`extract` = its `extract_summary.json`; absent when there is none)."""
    metrics: dict = clip_counts(table)
    total = metrics["clips_total"]
    metrics["kept_fraction"] = round(metrics["clips_kept"] / total, 4) if total else 0.0
    test = table[table["keep"] & (table["split"] == "test")]
    labels = [(int(lo), "inf" if hi == float("inf") else int(hi)) for _, lo, hi in ROTATION_BUCKETS]
    names = [f"test_rotation_{lo}_{hi}_pct" for lo, hi in labels] + ["test_rotation_unmeasured_pct"]
    for name, share in zip(names, rotation_shares(test), strict=True):
        metrics[name] = round(share, 2)
    if index is not None:
        metrics["shards"] = index["totals"]["all"]["shards"]
        metrics["shard_bytes"] = index["totals"]["all"]["bytes"]
    corpora_in(table)  # every row's corpus is registered
    metrics["corpus"] = {d: clip_counts(table[table["dataset"] == d]) for d in DATASETS}
    if extract is not None:
        metrics["extract"] = {
            "worker_deaths": len(extract["deaths"]),
            **{f"worker_deaths_{_slug(c)}": n for c, n in extract["deaths_by_cause"].items()},
            "unit_retries": extract["retries"],
            "worker_died_clips": len(extract["worker_died_clips"]),
            "storage_retries": extract["storage_retries"],
        }
    return metrics


def _slug(cause: str) -> str:
    """A death cause as a metrics key ("node lost" → node_lost)."""
    return "_".join("".join(ch if ch.isalnum() else " " for ch in cause).split())


def load_kept_records(table: pd.DataFrame, features: str, n: int) -> list[ClipFeatures]:
    """Feature records of at most n kept clips, evenly spaced over the sorted clip ids."""
    kept = table[table["keep"] & table["record"].notna()].sort_values("clip_id")
    chosen = evenly_spaced(list(kept["record"]), n)
    return [
        ClipFeatures.load_npz(io.BytesIO(storage.read_bytes(storage.join(features, r))))
        for r in tqdm(chosen, desc="report", unit="clip")
    ]


@click.command()
@manifest_option
@keep_option
@features_option
@shards_option
@click.option(
    "--out",
    default="reports",
    show_default=True,
    help="Report folder (report.html, PNGs, metrics.json); a path or a URL (s3://...).",
)
@params_option("report", "filter")
def cli(manifest: str, keep: str, features: str, shards: str, out: str, params: str) -> None:
    """Write the dataset report: report.html + figures/*.png, and metrics.json.

    Counts per corpus, split and emotion; drop reasons; head-pose histograms and the test
    split's rotation buckets beside the SPACE paper's; durations; frames with landmarks.
    """
    from pipelines import report_plots  # matplotlib only when the command runs

    config = load_section("report", ReportConfig, params)
    filters = load_section("filter", FilterConfig, params)  # thresholds drawn on histograms
    clips_path = storage.join(features, CLIPS_TABLE)
    for path, stage in (
        (manifest, "space index"),
        (clips_path, "space extract"),
        (keep, "space filter"),
    ):
        if not storage.isfile(path):
            raise click.ClickException(f"{path} not found: run `{stage}` first")
    table = collect_tables(
        storage.read_parquet(manifest), storage.read_parquet(keep), storage.read_parquet(clips_path)
    )
    index_path = storage.join(shards, INDEX_NAME)
    index = json.loads(storage.read_bytes(index_path)) if storage.isfile(index_path) else None
    records = load_kept_records(table, features, config.max_pose_clips)
    summary_path = storage.join(features, SUMMARY)
    extract = json.loads(storage.read_bytes(summary_path)) if storage.isfile(summary_path) else None
    metrics = compute_metrics(table, index, extract)
    with storage.staged_folder(out) as folder:
        out_dir = Path(folder)
        (out_dir / FIGURES).mkdir(parents=True, exist_ok=True)
        figures = report_plots.draw_all(table, records, config, filters, out_dir / FIGURES)
        metrics_text = json.dumps(metrics, indent=1, sort_keys=True) + "\n"
        _write_atomic(out_dir / "metrics.json", metrics_text)
        _write_atomic(out_dir / "report.html", render_html(table, metrics, figures, index))
    click.echo(
        f"{metrics['clips_kept']} of {metrics['clips_total']} clips kept; "
        f"{storage.join(out, 'report.html')}"
    )
    note = empty_note(table)
    if note:
        click.echo(note)


def count_tables(metrics: dict, corpora: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From `metrics`, per corpus and in total: (kept and dropped by first reason, then the
    total: the rows above it sum to it), (every rule's count: clips failing it)."""
    columns = {**{d: metrics["corpus"][d] for d in corpora}, "all": metrics}
    first = ["clips_kept", *(k for k in metrics if k.startswith("dropped_")), "clips_total"]
    rules = [f"fails_{rule}" for rule in RULE_REASONS]
    frame = pd.DataFrame({name: {k: counts.get(k, 0) for k in first + rules}
                          for name, counts in columns.items()})  # fmt: skip
    return frame.loc[first].astype(int), frame.loc[rules].astype(int)


def render_html(
    table: pd.DataFrame, metrics: dict, figures: list[tuple[str, str]], index: dict | None
) -> str:
    """The report page: a note when the dataset is empty, the summary, the count tables, and
    the figures with captions."""
    first, rules = count_tables(metrics, corpora_in(table))
    note = empty_note(table)
    note_html = f'<p class="note"><strong>{html.escape(note)}</strong></p>' if note else ""
    version = index["data_version"] if index else "no shards yet (run `space pack`)"
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
        for k, v in metrics.items()
        if not isinstance(v, dict) and not k.startswith(("dropped_", "fails_"))
    )
    figs = "".join(
        f'<figure><img src="{FIGURES}/{name}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in figures
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>space dataset report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
img{{max-width:100%}}figure{{margin:2em 0}}.note{{font-size:120%;color:#a00}}</style></head><body>
<h1>space dataset report</h1>
{note_html}
<p>Data version (sha256 of data/shards/index.json content): <code>{html.escape(version)}</code></p>
<h2>Summary</h2><table>{rows}</table>
<h2>Clips per corpus: kept, and dropped by first reason</h2>
<p>Each clip counted once, under kept or the first reason that drops it: the rows above
clips_total sum to it (index:* rejected by the indexer, error:* failed extraction, the rest by
the filters in their order).</p>
{first.to_html()}
<h2>Clips failing each filter rule</h2>
<p>A clip counts under every rule it fails, so a column may sum to more than its dropped clips.</p>
{rules.to_html()}
{figs}
</body></html>
"""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
