"""What a corpus module declares about its corpus: `Corpus`, registered once in `CORPORA`.

Every other list of corpora (`DATASETS`, the `CorporaConfig` fields, the `space index` and
`space extract-clip` choices, the sample corpus, the report's tables and metrics) is derived
from `space_data.datasets.CORPORA`, so a corpus is either everywhere or nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from space_data.clip import EMOTIONS, Clip


@dataclass(frozen=True, slots=True)
class Corpus:
    """One corpus: its name, its scanner, how its frames are used, and its labels."""

    name: str
    """Dataset name: the `corpora:` key in params.yaml, `Clip.dataset`, the clip id prefix."""
    scan: Callable[[str], list[Clip]]
    """root → one `Clip` per path seen below it (usable, or with a reason); never raises for
    a bad file."""
    root: str
    """What the configured root is (one line, shown in `space index --help` and the README)."""
    layout: str
    """Where the media files lie below the root (one line; a root with no media file of this
    layout is an error naming it)."""
    whole_frames: bool
    """True: the frames are face tracks already (VoxCeleb2) and are used whole; False: a square
    crop around the face, resized to `extract.crop_size`."""
    labels: tuple[str, ...]
    """Emotions (of `space_data.clip.EMOTIONS`) the corpus labels clips with; empty: unlabelled
    (emotion and intensity null)."""
    licence: str
    """Licence id as the Hugging Face hub lists them (`cc-by-4.0`, `odbl`; `other` for terms
    of the authors' own), written to the data card beside the shards."""
    terms: str
    """Who owns what and on which terms, in one line (the data card's licence table)."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"corpus name {self.name!r} must be a lower-case identifier")
        unknown = set(self.labels) - set(EMOTIONS)
        if unknown:
            raise ValueError(f"corpus {self.name}: labels {sorted(unknown)} not in {EMOTIONS}")
