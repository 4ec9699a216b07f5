"""The collector contract: what every collector module declares and returns.

A collector turns one source into metric families and knows nothing of the
scheduler, HTTP, buffers or outputs. It declares its name, whether it is on by
default, the platforms it runs on and its own config keys up front, where a
reader sees them first (node_exporter's registerCollector habit).

Three outcomes, not two: `collect()` returns families (success), raises any
exception (failure, counted and reported by the scheduler), or raises
`NoDataError` when there is nothing to watch on this machine (absent is not
down: no conntrack module, no hwmon chips).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from prometheus_client.metrics_core import Metric

from totem_agent.options import Option

T = TypeVar("T")


class NoDataError(Exception):
    """Nothing to watch here (the file or device does not exist by design)."""


@dataclass(frozen=True)
class HostPaths:
    """Where the host's /proc, /sys and / are (node_exporter's --path.* flags).

    Injected, never global, so a test points a collector at a fixture tree.
    """

    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    rootfs: Path = Path("/")

    def proc(self, *parts: str) -> Path:
        return self.procfs.joinpath(*parts)

    def sys(self, *parts: str) -> Path:
        return self.sysfs.joinpath(*parts)

    def root(self, *parts: str) -> Path:
        return self.rootfs.joinpath(*parts)


@dataclass(frozen=True)
class CollectorContext:
    """What a collector may touch, handed in by whoever builds it."""

    paths: HostPaths = field(default_factory=HostPaths)


class Collector(abc.ABC):
    """Base class of every collector. Subclasses set the class attributes."""

    name: ClassVar[str]
    description: ClassVar[str]
    default_enabled: ClassVar[bool] = True
    # sys.platform values this collector runs on ("linux", "win32").
    platforms: ClassVar[frozenset[str]] = frozenset({"linux"})
    # The collector's own keys under [collectors.NAME], besides enabled/interval/timeout.
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        self.context = context
        self.settings = settings

    @abc.abstractmethod
    def collect(self) -> Iterable[Metric]:
        """Read the source once and return its metric families."""

    def close(self) -> None:
        """Release what is held open between runs (a serial port), when a config reload
        replaces this collector: its successor may need the same port at once."""
        return None  # most collectors hold nothing between runs


def read_text(path: Path) -> str:
    """Read a small /proc or /sys file; a missing file is NoDataError.

    Raw os.read calls, not a text file object: a few dozen of these run every
    cycle and the io stack around a 2 KB read cost more than the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise NoDataError(f"{path} does not exist") from None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def parse_file(path: Path, parse: Callable[[str], T]) -> T:
    """Read a /proc or /sys file and parse it: a missing file is NoDataError, and a
    parse error (ValueError) names the file it came from."""
    text = read_text(path)
    try:
        return parse(text)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
