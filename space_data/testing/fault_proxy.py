"""A fault-injecting HTTP proxy for object-storage tests: it sits on 127.0.0.1 in front of a
real S3 server (moto, `space_data.testing.s3`) and passes every request through, except those
its `plan` picks, which fail the way a sick object store fails:

- `slowdown`: HTTP 503 with S3's `SlowDown` error body (AWS's answer to a too-high request rate);
- `error500`: HTTP 500 `InternalError`;
- `denied`: HTTP 403 `AccessDenied` (a permanent error: no retry may follow);
- `reset`: the connection is reset (TCP RST) once the request is read, no answer;
- `stall`: no answer for `stall_s` seconds, then the connection is closed (a read timeout for
  any client whose timeout is shorter).

A plan maps the request number (1, 2, ... in arrival order, over all connections) to a fault
or None: `every(k, fault)` fails every k-th request, `burst(start, length, fault)` a run of
consecutive ones. `injected` counts the faults served, per kind. `endpoint` / `env` point
boto/s3fs at the proxy. Runs in threads of the calling process; `stop()` ends them.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Plan = Callable[[int], str | None]
FAULTS = ("slowdown", "error500", "denied", "reset", "stall")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "upgrade",
    "expect",
}
_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}'
    "</Message><RequestId>fault-proxy</RequestId></Error>"
)
_ANSWERS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "error500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "denied": (403, "AccessDenied", "Access Denied"),
}


def every(k: int, fault: str) -> Plan:
    """Fail every k-th request (k, 2k, ...) with `fault`."""
    _check(fault)
    return lambda n: fault if n % k == 0 else None


def burst(start: int, length: int, fault: str) -> Plan:
    """Fail requests start .. start + length - 1 with `fault` (a run, e.g. of 503s)."""
    _check(fault)
    return lambda n: fault if start <= n < start + length else None


def always(fault: str) -> Plan:
    """Fail every request with `fault`."""
    _check(fault)
    return lambda n: fault


def _check(fault: str) -> None:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")


class FaultProxy:
    """The proxy in front of `upstream` (`http://127.0.0.1:PORT`), injecting `plan`'s faults."""

    def __init__(self, upstream: str, plan: Plan | None = None, stall_s: float = 5.0) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.plan: Plan = plan or (lambda n: None)
        self.stall_s = stall_s
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def env(self, server_env: dict[str, str]) -> dict[str, str]:
        """The S3 server's variables with the endpoint replaced by the proxy's."""
        return {**server_env, "AWS_ENDPOINT_URL": self.endpoint}

    def next_fault(self) -> str | None:
        with self._lock:
            self.requests += 1
            fault = self.plan(self.requests)
            if fault is not None:
                self.injected[fault] += 1
            return fault

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as boto's connection pool expects

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 — the base's name
            pass

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            body = self._body()
            fault = proxy.next_fault()
            if fault in _ANSWERS:
                status, code, message = _ANSWERS[fault]
                data = _ERROR_BODY.format(code=code, message=message).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return
            if fault == "reset":
                # RST instead of FIN: the client reads "connection reset by peer"
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            if fault == "stall":
                time.sleep(proxy.stall_s)
                self.close_connection = True
                return
            self._forward(body)

        def _forward(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                # a HEAD answer states the object's length without sending it
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler
