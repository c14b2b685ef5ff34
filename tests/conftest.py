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


# The sample corpus shared by every test that needs media with known ground truth: built once
# per session (~20 s on one core) with fewer speakers and 3-s clips; every designed clip kind
# is still there (the hand clip only where the realdata hand photo exists).
SAMPLE_TEST_CONFIG = {"speakers_per_corpus": 3, "min_seconds": 3.0, "max_seconds": 3.0}


@pytest.fixture(scope="session")
def sample_config():
    """The SynthConfig the session's sample corpus is built with (realdata photos when present)."""
    from space_data.synth import SynthConfig

    images = Path(os.environ.get("SPACE_REALDATA", ROOT.parent / "shared" / "realdata")) / "images"
    hand = images / "hand_on_cheek.jpg"
    return SynthConfig(
        photos_dir=str(images) if images.is_dir() else None,
        hand_photo=str(hand) if hand.is_file() else None,
        **SAMPLE_TEST_CONFIG,
    )


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory, sample_config) -> Path:
    """Path of a freshly built sample corpus (`truth.json`, `truth/`, one tree per corpus)."""
    from space_data.synth import build_sample_corpus

    out = tmp_path_factory.mktemp("sample")
    build_sample_corpus(out, sample_config)
    return out


# --- object storage: moto's standalone S3 server -------------------------------------------------


class S3Server:
    """A real S3-compatible HTTP server (moto) on 127.0.0.1, in its own process.

    `env` holds the standard variables that point boto/s3fs at it; `requests` counts the
    requests in its log (one line per request: `"GET /bucket/key HTTP/1.1"`).
    """

    def __init__(self, port: int, log: Path, process) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = log
        self.process = process
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def requests(self, method: str, path_prefix: str, since: int = 0) -> list[str]:
        """Request paths (`/bucket/key?query`) of `method` under `path_prefix`, from log line
        `since` on (a `len(lines())` taken earlier)."""
        found = []
        for line in self.lines()[since:]:
            _, quote, rest = line.partition('"')
            parts = rest.split(" ")
            if quote and len(parts) > 1 and parts[0] == method and parts[1].startswith(path_prefix):
                found.append(parts[1])
        return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One moto S3 server for the session (`moto_server` of this venv), stopped by PID after."""
    import socket
    import subprocess
    import sys
    import time

    exe = Path(sys.executable).with_name("moto_server")
    if not exe.is_file():
        pytest.skip(f"{exe} is absent: install moto[server] (a test dependency)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "requests.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    server = S3Server(port, log, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<fresh bucket>` on the session's moto server, with the AWS_* variables set for
    this process and the subprocesses it starts."""
    import uuid

    import s3fs

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()  # an earlier instance may predate the variables
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    return f"s3://{bucket}"
