"""A real S3-compatible server for tests and benchmarks: moto's standalone server
(`moto_server`, from `moto[server]`, a test dependency) in its own process on 127.0.0.1.

`S3Server.env` holds the standard variables that point boto/s3fs at it; `requests` counts the
requests in its log (one line per request: `"GET /bucket/key HTTP/1.1"`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


class S3Server:
    """A running moto server; `stop()` ends it by PID."""

    def __init__(self, log: Path, timeout_s: float = 60.0) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        if not exe.is_file():
            raise FileNotFoundError(f"{exe} is absent: install moto[server] (a test dependency)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
            )
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start: {log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

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
