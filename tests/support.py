"""Shared test helpers: fixture roots, free ports, polling with a deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.metrics_core import Metric

from totem_agent.collectors.base import Collector, CollectorContext, HostPaths

FIXTURES = Path(__file__).parent / "fixtures"
LINUX = FIXTURES / "linux"

T = TypeVar("T")


def linux_paths(root: Path = LINUX) -> HostPaths:
    """HostPaths over the checked-in fixture tree (node_exporter's collector/fixtures)."""
    return HostPaths(procfs=root / "proc", sysfs=root / "sys", rootfs=root / "root")


def collect(cls: type[Collector], paths: HostPaths | None = None,
            settings: Mapping[str, Any] | None = None) -> dict[str, Metric]:
    """Build a collector over the fixture tree with its option defaults, collect once."""
    values = {key: opt.default for key, opt in cls.options.items()}
    values.update(settings or {})
    collector = cls(CollectorContext(paths=paths or linux_paths()), values)
    return {family.name: family for family in collector.collect()}


def samples(families: Iterable[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} for easy assertions."""
    out = {}
    for family in families:
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll until predicate() is truthy; fail the test with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as err:  # the thing polled may not be up yet
            last_error = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error})" if last_error else ""))
