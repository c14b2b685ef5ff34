"""The conformance table of docs/corpora.md: every format of tests/space_data/test_conformance.py
written from the real clip, then decoded (`VideoReader`: frames, seconds, truncated), its audio
length, FFmpeg's own frame count, and the extraction's status and filter reasons.

Run from the project root: .venv/bin/python benchmarks/formats.py [FILE_NAME ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.filters import FilterConfig, filter_clip
from space_data.media import MediaFile, VideoReader
from space_data.testing.faces import realdata_root

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.space_data import test_conformance as conformance  # noqa: E402  (the writers)


def main(names: list[str]) -> None:
    frames, audio = conformance._source(realdata_root())
    extractor = ClipExtractor(ExtractConfig())
    print("| file | video / audio | FFmpeg's frames | decoded | s decoded | audio s | truncated | "
          "extraction, filters |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt in conformance.FORMATS.items():
            if names and name not in names:
                continue
            path = Path(tmp) / name
            conformance._write(path, fmt, frames, audio)
            if fmt.edit_list:
                conformance._shift_first_frame_before_zero(path)
            with MediaFile(str(path)) as media:
                sound = media.audio()
                reader = VideoReader(media)
                decoded = sum(1 for _ in reader.frames())
                streams = media.container.streams
                codecs = (
                    f"{streams.video[0].codec_context.name} / {streams.audio[0].codec_context.name}"
                )
            rec = extractor(Clip(clip_id=path.stem, dataset="mead", speaker="s", path=str(path)))
            outcome = (
                f"ok, {filter_clip(rec.stats, FilterConfig()) or 'kept'}" if rec.ok else rec.reason
            )
            print(
                f"| {name} | {codecs} {fmt.pix_fmt} {fmt.size[0]}×{fmt.size[1]} {fmt.rate} Hz "
                f"{fmt.layout} | {conformance._ffmpeg_count(path)} | {decoded} | "
                f"{reader.duration:.2f} | {len(sound) / 16_000:.3f} | "
                f"{'yes' if reader.truncated else 'no'} | {outcome} |",
                flush=True,
            )
    extractor.close()


if __name__ == "__main__":
    main(sys.argv[1:])
