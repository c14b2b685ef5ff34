"""How a job process meets Ray: start a private local Ray or join a cluster, read what the live
nodes can host, and turn SIGINT / SIGTERM into a flag the job checks between short waits.

Knows nothing of clips or units (the extract job in `pipelines.extract` uses it).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import ray

_EPS = 1e-9  # 2.0 // 0.1 == 19.0 in floats: ratios of resources are rounded with a margin


def ray_init(address: str | None) -> bool:
    """Join the cluster at `address` (else `RAY_ADDRESS`), or start a private local Ray of the
    cores this process may use; nothing when Ray is already up. True when this call started it.

    Without an address the local Ray is private even when a `ray start` cluster runs on the
    machine (a plain `ray.init()` would join that one and then reject `num_cpus`).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (cgroups, taskset)
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    return True


def asked(cpus: float, gpus: float) -> dict[str, float]:
    """The resources one task reserves, as Ray names them."""
    return {"CPU": cpus, **({"GPU": gpus} if gpus else {})}


def capacity(request: dict[str, float]) -> int:
    """How many tasks reserving `request` the alive nodes can host at once (a task's resources
    come from one node)."""
    total = 0
    for node in ray.nodes():
        if node["Alive"]:
            have = node["Resources"]
            total += min(int(have.get(k, 0.0) / v + _EPS) for k, v in request.items())
    return total


def describe_resources(request: dict[str, float]) -> str:
    """'CPU 2 (0 available) on 1 live node': the cluster's totals and what is free now, for the
    resources in `request`."""
    total, free = ray.cluster_resources(), ray.available_resources()
    alive = sum(node["Alive"] for node in ray.nodes())
    have = ", ".join(f"{k} {total.get(k, 0.0):g} ({free.get(k, 0.0):g} available)" for k in request)
    return f"{have} on {alive} live node{'s' * (alive != 1)}"


class JobInterrupted(Exception):
    """SIGINT or SIGTERM arrived while a job ran; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupt:
    """What `interruptible()` yields: the first SIGINT / SIGTERM received, if any.

    A handler only records the signal (an exception raised inside Ray's blocking calls comes
    out as a SystemError); the job calls `check()` between short waits.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self) -> None:
        """Raise `JobInterrupted` once a signal arrived."""
        if self.signum is not None:
            raise JobInterrupted(self.signum)


@contextmanager
def interruptible() -> Iterator[Interrupt]:
    """Within the block, SIGINT and SIGTERM are recorded in the yielded `Interrupt` instead of
    ending the process; the old handlers come back after. Off the main thread, where Python
    cannot install handlers, nothing is recorded."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return

    def record(signum: int, _frame: object) -> None:
        if interrupt.signum is None:
            interrupt.signum = signum

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupt
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
