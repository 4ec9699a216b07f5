"""The one door to platform code (psutil's _pslinux / _pswindows split).

`system_source()` picks the module for this platform once. Collectors that
export node_exporter's cross-platform names (cpu, meminfo, filesystem, netdev,
loadavg, ...) read through the returned object and never test sys.platform
themselves; the Windows module imports its Windows-only pieces lazily.
"""

from __future__ import annotations

import sys
from typing import Protocol

from totem_agent.collectors.base import HostPaths
from totem_agent.collectors.platform.types import CpuTimes, LoadAverage


class SystemSource(Protocol):
    """What a platform module offers. Each method reads the system once."""

    def load_average(self) -> LoadAverage: ...

    def cpu_times(self) -> list[CpuTimes]: ...


def system_source(paths: HostPaths, platform: str = sys.platform) -> SystemSource:
    if platform.startswith("linux"):
        from totem_agent.collectors.platform import _linux

        return _linux.LinuxSource(paths)
    if platform == "win32":
        from totem_agent.collectors.platform import _windows

        return _windows.WindowsSource()
    raise NotImplementedError(f"totem-agent has no system collectors for {platform!r} yet")
