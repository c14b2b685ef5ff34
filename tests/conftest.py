"""Shared fixtures. Real media comes from ../shared/realdata (override with SPACE_REALDATA);
tests that need it skip with a reason where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def realdata() -> Path:
    path = Path(os.environ.get("SPACE_REALDATA", ROOT.parent / "shared" / "realdata"))
    if not path.is_dir():
        pytest.skip(f"real media folder {path} is absent (set SPACE_REALDATA to use another)")
    return path
