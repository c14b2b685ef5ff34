"""A filtered sample corpus against its design: each clip of `truth.json` is designed to be kept
or to be dropped for one reason (`plan.DESIGNS`), and `space filter`'s decisions should say the
same. `make demo` ends with this check (`pipelines/check_sample.py`); the tests run it on
their own corpus."""

from __future__ import annotations

import pandas as pd


def designed_decision(designed: dict) -> str:
    """What `space filter` should decide for a clip of `truth.json`: "keep", the filter rule's
    reason, or `index:<reason>` for a clip the indexer rejects."""
    outcome = designed["outcome"]
    return f"index:{outcome}" if designed["stage"] == "index" else outcome


def outcome_mismatches(
    truth: dict[str, dict], keep: pd.DataFrame, only: set[str] | None = None
) -> dict[str, tuple[str, str]]:
    """clip id → (designed, decided) for each clip of `truth` (those in `only`, when given) whose
    decision in `keep` (`space filter`'s table: clip_id, keep, reason) is not its designed one;
    a clip `keep` lacks is decided "absent"."""
    decided = {
        clip_id: "keep" if kept else str(reason)
        for clip_id, kept, reason in zip(keep["clip_id"], keep["keep"], keep["reason"], strict=True)
    }
    out = {}
    for clip_id, designed in sorted(truth.items()):
        if only is not None and clip_id not in only:
            continue
        want, got = designed_decision(designed), decided.get(clip_id, "absent")
        if got != want:
            out[clip_id] = (want, got)
    return out
