"""Linux: pure parsers for the kernel-wide files behind cpu, stat, meminfo, time, uname.

Kept apart from `_linux.py` (which only reads files and hands the text here) so
each parser is tested with literals, node_exporter's parseX(data) habit. Every
parser raises ValueError saying what is wrong; the reader adds the file name.
"""

from __future__ import annotations

import re
from typing import Any

from totem_agent.collectors.platform.types import (
    ClockSource,
    CpuTimes,
    KernelStats,
    MemoryInfo,
    UnameInfo,
)

# /proc/stat counts CPU time in USER_HZ ticks. The kernel fixes USER_HZ at 100
# for userspace on every architecture Linux supports today, whatever CONFIG_HZ
# is, and node_exporter (through procfs) divides by the same constant.
USER_HZ = 100.0

# The /proc/stat lines the stat collector exports, and the KernelStats field each feeds.
_STAT_KEYS = {
    "btime": "boot_time",
    "ctxt": "context_switches",
    "intr": "interrupts",
    "processes": "forks",
    "procs_running": "procs_running",
    "procs_blocked": "procs_blocked",
}

# The mode columns of a /proc/stat cpuN line, in the kernel's order.
_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
              "guest", "guest_nice")


def _number(text: str, what: str, lineno: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"line {lineno}: {what} is not a whole number: {text!r}") from None


def parse_proc_stat(text: str) -> tuple[list[CpuTimes], KernelStats]:
    """Parse /proc/stat into per-CPU times (seconds, by CPU number) and kernel counters.

    Missing trailing CPU columns (kernels older than 2.6.33 lack guest_nice)
    count as 0, as node_exporter's procfs does; fewer than the four columns
    every kernel has, or a missing counter line, is a malformed file.
    """
    cpus: dict[int, CpuTimes] = {}
    found: dict[str, float] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key.startswith("cpu") and key != "cpu":
            number = key[3:]
            if not number.isdigit():
                raise ValueError(f"line {lineno}: unexpected CPU name {key!r}")
            if len(parts) < 5:
                raise ValueError(f"line {lineno}: {key} has {len(parts) - 1} columns, "
                                 "expected at least user, nice, system and idle")
            ticks = [_number(p, f"{key} column {i}", lineno)
                     for i, p in enumerate(parts[1:len(_CPU_MODES) + 1], start=1)]
            ticks += [0] * (len(_CPU_MODES) - len(ticks))
            seconds: dict[str, Any] = {
                mode: t / USER_HZ for mode, t in zip(_CPU_MODES, ticks, strict=True)}
            cpus[int(number)] = CpuTimes(cpu=str(int(number)), **seconds)
        elif key in _STAT_KEYS:
            if len(parts) < 2:
                raise ValueError(f"line {lineno}: {key} has no value")
            # intr's first number is the total; the per-IRQ counts after it are not needed.
            found[_STAT_KEYS[key]] = float(_number(parts[1], key, lineno))
    missing = [k for k, field in _STAT_KEYS.items() if field not in found]
    if missing:
        raise ValueError(f"no {', '.join(missing)} line")
    if not cpus:
        raise ValueError("no per-CPU (cpuN) lines")
    return [cpus[n] for n in sorted(cpus)], KernelStats(**found)


_PAREN = re.compile(r"\((.*)\)")


def parse_meminfo(text: str) -> MemoryInfo:
    """Parse /proc/meminfo the way node_exporter 1.5 names the fields.

    "Active(anon):  1516 kB" becomes Active_anon_bytes = 1552384; a line
    without a unit ("HugePages_Total:  0") keeps its name and value as they are.
    """
    info: MemoryInfo = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue  # some kernels (CentOS 6) print blank lines
        if len(parts) not in (2, 3) or not parts[0].endswith(":"):
            raise ValueError(f"line {lineno}: expected 'Name: value [kB]', got {line!r}")
        try:
            value = float(parts[1])
        except ValueError:
            raise ValueError(f"line {lineno}: {parts[1]!r} is not a number") from None
        key = _PAREN.sub(r"_\1", parts[0][:-1])
        if len(parts) == 3:
            # The kernel writes every sized field in kB (KiB); node_exporter assumes it too.
            if parts[2] != "kB":
                raise ValueError(f"line {lineno}: unknown unit {parts[2]!r}")
            value *= 1024
            key += "_bytes"
        info[key] = value
    if not info:
        raise ValueError("no fields")
    return info


def parse_clock_source(device: str, available: str, current: str) -> ClockSource:
    """One clocksource device from its available_clocksource and current_clocksource text."""
    return ClockSource(device=device, available=tuple(available.split()), current=current.strip())


def uname_info(uname: Any, domainname: str) -> UnameInfo:
    """UnameInfo from os.uname() and /proc/sys/kernel/domainname.

    Python's os.uname() leaves out the NIS domain name that uname(2) returns
    and node_uname_info labels, so it comes from the proc file (same UTS
    namespace as the syscall: the reading process's).
    """
    return UnameInfo(sysname=uname.sysname, nodename=uname.nodename, release=uname.release,
                     version=uname.version, machine=uname.machine,
                     domainname=domainname.strip())
