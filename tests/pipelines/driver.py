"""Driving `space extract` as its own process in the extract-job tests."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from pipelines.units import committed_markers


def kill_after_first_commit(
    command: list,
    features: str,
    env: dict,
    cwd: Path,
    log: Path,
    timeout: float,
    poll: float = 0.05,
) -> None:
    """Run `command` (a `space extract` writing to `features`, a folder or a URL), its stderr in
    `log`, and SIGKILL it once a unit has committed (looked for every `poll` seconds: one
    listing each); fails when it ends first or no unit commits within `timeout` seconds."""
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + timeout
        while not committed_markers(features):
            assert proc.poll() is None, f"driver ended early: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no unit committed within {timeout:g} s"
            time.sleep(poll)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
