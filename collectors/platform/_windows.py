"""Windows: the same node_* numbers from psutil (imported lazily, only here)."""

from __future__ import annotations

from typing import Any

from totem_agent.collectors.platform.types import CpuTimes, LoadAverage


class WindowsSource:
    def __init__(self, psutil_module: Any = None) -> None:
        if psutil_module is None:
            import psutil

            psutil_module = psutil
        self._psutil = psutil_module

    def load_average(self) -> LoadAverage:
        # psutil emulates it on Windows from the processor queue length.
        return LoadAverage(*self._psutil.getloadavg())

    def cpu_times(self) -> list[CpuTimes]:
        raise NotImplementedError
