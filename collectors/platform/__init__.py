"""The one door to platform code (psutil's _pslinux / _pswindows split).

`system_source()` picks the module for this platform once. Collectors that
export node_exporter's cross-platform names (cpu, meminfo, filesystem, netdev,
loadavg, ...) read through the returned object and never test sys.platform
themselves; the Windows module imports its Windows-only pieces lazily.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from totem_agent.collectors.base import Collector, CollectorContext, HostPaths
from totem_agent.collectors.platform.types import (
    ClockSource,
    CpuTimes,
    DiskStats,
    FilesystemUsage,
    KernelStats,
    LoadAverage,
    MemoryInfo,
    Mount,
    NetDevStats,
    UnameInfo,
)


class SystemSource(Protocol):
    """What a platform module offers. Each method reads the system once."""

    def load_average(self) -> LoadAverage: ...

    def cpu_times(self) -> list[CpuTimes]: ...

    def kernel_stats(self) -> KernelStats: ...

    def memory_info(self) -> MemoryInfo: ...

    def clock_sources(self) -> list[ClockSource]:
        """Kernel clocksource devices; empty where the platform has none to show."""
        ...

    def uname(self) -> UnameInfo: ...

    def mounts(self) -> list[Mount]:
        """The mount table, every entry, unfiltered."""
        ...

    def filesystem_usage(self, mounts: Sequence[Mount], timeout: float) -> list[FilesystemUsage]:
        """Space and inodes per mount; a mount that does not answer within
        `timeout` seconds comes back with an error and is skipped until it does."""
        ...

    def disk_stats(self, exclude: Callable[[str], bool]) -> list[DiskStats]:
        """I/O counters per block device, leaving out the names `exclude` accepts."""
        ...

    def net_dev_stats(self, exclude: Callable[[str], bool]) -> list[NetDevStats]:
        """Traffic counters per interface, leaving out the names `exclude` accepts."""
        ...


def system_source(paths: HostPaths, platform: str = sys.platform) -> SystemSource:
    if platform.startswith("linux"):
        from totem_agent.collectors.platform import _linux

        return _linux.LinuxSource(paths)
    if platform == "win32":
        from totem_agent.collectors.platform import _windows

        return _windows.WindowsSource()
    raise NotImplementedError(f"totem-agent has no system collectors for {platform!r} yet")


class SystemCollector(Collector):
    """Base of the collectors that read node_exporter's cross-platform numbers
    through this door (cpu, meminfo, filesystem, ...)."""

    platforms = frozenset({"linux", "win32"})

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 source: SystemSource | None = None) -> None:
        super().__init__(context, settings)
        # One source for the collector's life (the filesystem one remembers stuck
        # mounts); `source` lets a test hand in a WindowsSource over a fake psutil.
        self._source = system_source(context.paths) if source is None else source
