"""process: the kiosk application (or its browser) is running, and since when.

    [[collectors.process.processes]]
    name = "kiosk"                       # the `name` label, check process:kiosk
    match = "chromium.*--kiosk"          # regex on the command line
    title = "Kiosk app (chromium)"

Read from /proc/*/cmdline and /proc/*/stat (through HostPaths, so fixture trees
work). The start time is the oldest matching process's, so a restarted browser
shows as a new start time (`changes()` in PromQL), not as a gap.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.collectors.device_tables import parse_entries
from totem_agent.health import DEGRADED, OK, Check
from totem_agent.options import Option, OptionError


def _check_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as err:
        raise OptionError(f"not a valid regular expression ({err})") from None


FIELDS = {
    "name": Option("str", "", "The `name` label and the check process:NAME. Required."),
    "match": Option("str", "", "Regular expression searched in the command line (arguments "
                    "joined by spaces).", check=_check_regex),
    "comm": Option("str", "", "Exact process name (/proc/PID/comm), instead of match."),
    "title": Option("str", "", "How a person calls it in /health (default: the name)."),
}


def _parse(value: Any) -> list[dict[str, Any]]:
    entries = parse_entries(value, FIELDS, ("name",), "name")
    for index, entry in enumerate(entries):
        if bool(entry["match"]) == bool(entry["comm"]):
            raise OptionError("set either match (command line) or comm (process name)",
                              subkey=f"[{index}].match")
    return entries


def _check_processes(value: Any) -> None:
    _parse(value)


class ProcessCollector(Collector):
    name = "process"
    description = "The kiosk application or browser: running, and its start time"
    options = {
        "processes": Option("tables", [], "Processes that must run, one table each with name, "
                            "match or comm, title. Empty: nothing to watch.",
                            check=_check_processes),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.processes = _parse(settings.get("processes", ()))
        self._patterns = [re.compile(p["match"]) if p["match"] else None
                          for p in self.processes]
        self._lock = threading.Lock()
        self._checks: list[Check] = []

    def collect(self) -> Iterable[Metric]:
        if not self.processes:
            raise NoDataError("no processes configured")
        boot = _boot_time(self.context.paths.proc("stat"))
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        oldest: dict[int, float | None] = {}
        for pid_dir in _pids(self.context.paths.procfs):
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                comm = (pid_dir / "comm").read_text().strip()
            except OSError:
                continue
            text = cmdline.decode("utf-8", "replace")
            for index, entry in enumerate(self.processes):
                pattern = self._patterns[index]
                hit = pattern.search(text) if pattern is not None else comm == entry["comm"]
                if not hit:
                    continue
                started = _start_time(pid_dir, boot, ticks)
                known = oldest.get(index)
                if index not in oldest or (started is not None
                                           and (known is None or started < known)):
                    oldest[index] = started
        up = GaugeMetricFamily("totem_process_up", "1 when a process matching the "
                               "configured name or command line runs.", labels=["name"])
        start = GaugeMetricFamily("totem_process_start_time_seconds", "Start time of the "
                                  "oldest matching process (Unix time).", labels=["name"])
        checks = []
        for index, entry in enumerate(self.processes):
            running = index in oldest
            up.add_metric([entry["name"]], 1.0 if running else 0.0)
            started = oldest.get(index)
            if started is not None:
                start.add_metric([entry["name"]], started)
            title = entry["title"] or entry["name"]
            checks.append(Check(f"process:{entry['name']}", "peripheral",
                                OK if running else DEGRADED,
                                f"{title} is running" if running
                                else f"{title} is not running"))
        with self._lock:
            self._checks = checks
        return [f for f in (up, start) if f.samples]

    def health_checks(self) -> list[Check]:
        with self._lock:
            return list(self._checks)


def _pids(procfs: Path) -> list[Path]:
    try:
        return [p for p in procfs.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def _boot_time(stat: Path) -> float | None:
    try:
        for line in stat.read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _start_time(pid_dir: Path, boot: float | None, ticks: int) -> float | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot) as Unix time."""
    if boot is None:
        return None
    try:
        text = (pid_dir / "stat").read_text()
        # The command name may hold spaces and parentheses: fields start after the last ")".
        fields = text[text.rindex(")") + 2:].split()
        return boot + int(fields[19]) / ticks
    except (OSError, ValueError, IndexError):
        return None
