"""Result types shared by the platform modules and the collectors.

Imports nothing of the package (psutil's _common.py habit), so both sides can
use it without a cycle. Units are the base units the metrics use: seconds and
bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class LoadAverage(NamedTuple):
    load1: float
    load5: float
    load15: float


@dataclass(frozen=True)
class CpuTimes:
    """Seconds one CPU spent in each mode since boot (node_cpu_seconds_total).

    None means the platform does not measure that mode (Windows has no nice,
    iowait, steal or guest time); the collector then exports no series for it
    rather than a made-up zero.
    """

    cpu: str
    user: float
    nice: float | None
    system: float
    idle: float
    iowait: float | None
    irq: float | None
    softirq: float | None
    steal: float | None
    guest: float | None
    guest_nice: float | None


@dataclass(frozen=True)
class KernelStats:
    """Kernel activity counters (node_exporter's stat collector).

    None: not measured on this platform (Windows has no fork counter or
    run-queue split), so the family is left out.
    """

    boot_time: float  # Unix time, seconds
    context_switches: float | None
    interrupts: float | None
    forks: float | None
    procs_running: float | None
    procs_blocked: float | None


@dataclass(frozen=True)
class ClockSource:
    """One kernel clocksource device (/sys/devices/system/clocksource/clocksourceN)."""

    device: str
    available: tuple[str, ...]
    current: str


@dataclass(frozen=True)
class UnameInfo:
    """The uname(2) fields, as node_uname_info labels them."""

    sysname: str
    nodename: str
    release: str
    version: str
    machine: str
    domainname: str


# node_exporter's meminfo field names (the part after `node_memory_`, e.g.
# "MemTotal_bytes", "Active_anon_bytes", "HugePages_Total") to their values.
MemoryInfo = dict[str, float]


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem as the mount table lists it (node_filesystem_* labels)."""

    device: str
    mountpoint: str
    fstype: str
    # Mount options ("rw", "ro", "fixed", ...); "ro" makes node_filesystem_readonly 1.
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilesystemUsage:
    """Space and inodes of one mount, or why they could not be read.

    `error` set means node_filesystem_device_error 1 and no other numbers.
    files/files_free are None where the platform has no inode counts (Windows).
    """

    mount: Mount
    error: str | None = None
    size_bytes: float = 0.0
    free_bytes: float = 0.0
    avail_bytes: float = 0.0
    files: float | None = None
    files_free: float | None = None


@dataclass(frozen=True)
class DiskStats:
    """I/O counters of one block device since boot.

    `counters` is keyed by node_exporter's metric stem ("reads_completed",
    "read_bytes", "read_time_seconds", ...: `node_disk_<key>`), already in bytes
    and seconds; a key is missing where the platform does not count it.
    major/minor and `properties` (udev's ID_MODEL, ID_SERIAL_SHORT, ...) feed
    node_disk_info and are None/empty where the platform has none.
    """

    device: str
    counters: Mapping[str, float]
    major: int | None = None
    minor: int | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetDevStats:
    """Traffic counters of one network interface since it appeared.

    `counters` is keyed by node_exporter's stem ("receive_bytes", "transmit_colls",
    ...: `node_network_<key>_total`); a key is missing where the platform does
    not count it.
    """

    device: str
    counters: Mapping[str, float]
