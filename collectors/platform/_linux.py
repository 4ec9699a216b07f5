"""Linux: read /proc and /sys under injected roots (read apart from parse)."""

from __future__ import annotations

from totem_agent.collectors.base import HostPaths
from totem_agent.collectors.platform.types import CpuTimes, LoadAverage


def parse_loadavg(text: str) -> LoadAverage:
    """Parse /proc/loadavg: "0.21 0.06 0.02 4/88 1755"."""
    parts = text.split()
    if len(parts) < 3:
        raise ValueError(f"unexpected /proc/loadavg content: {text[:60]!r}")
    return LoadAverage(float(parts[0]), float(parts[1]), float(parts[2]))


class LinuxSource:
    def __init__(self, paths: HostPaths) -> None:
        self.paths = paths

    def load_average(self) -> LoadAverage:
        return parse_loadavg(self.paths.proc("loadavg").read_text())

    def cpu_times(self) -> list[CpuTimes]:
        raise NotImplementedError
