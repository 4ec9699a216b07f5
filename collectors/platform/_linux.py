"""Linux: read /proc and /sys under injected roots (read apart from parse)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from totem_agent.collectors.base import HostPaths, parse_file
from totem_agent.collectors.platform._linux_devices import (
    parse_diskstats,
    parse_mounts,
    parse_net_dev,
    parse_udev_properties,
    usage_from_statvfs,
)
from totem_agent.collectors.platform._linux_system import (
    parse_clock_source,
    parse_meminfo,
    parse_proc_stat,
    uname_info,
)
from totem_agent.collectors.platform._mount_guard import (
    MountGuard,
    describe_stat_error,
    may_hang,
)
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

T = TypeVar("T")

log = logging.getLogger("totem_agent.collectors")


def parse_loadavg(text: str) -> LoadAverage:
    """Parse /proc/loadavg: "0.21 0.06 0.02 4/88 1755"."""
    parts = text.split()
    try:
        return LoadAverage(float(parts[0]), float(parts[1]), float(parts[2]))
    except (IndexError, ValueError):
        raise ValueError(f"expected three load averages, got {text[:60]!r}") from None


class LinuxSource:
    def __init__(self, paths: HostPaths,
                 statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> None:
        self.paths = paths
        self._statvfs = statvfs  # injectable: tests hang it on purpose

    def load_average(self) -> LoadAverage:
        return _parse_file(self.paths.proc("loadavg"), parse_loadavg)

    def cpu_times(self) -> list[CpuTimes]:
        return _parse_file(self.paths.proc("stat"), parse_proc_stat)[0]

    def kernel_stats(self) -> KernelStats:
        return _parse_file(self.paths.proc("stat"), parse_proc_stat)[1]

    def memory_info(self) -> MemoryInfo:
        return _parse_file(self.paths.proc("meminfo"), parse_meminfo)

    def clock_sources(self) -> list[ClockSource]:
        # No clocksource directory (some containers' /sys) means nothing to
        # list, as node_exporter's sysfs glob finds nothing; a device directory
        # without its files is broken and its FileNotFoundError names the file.
        devices = sorted(self.paths.sys("devices", "system", "clocksource").glob(
            "clocksource[0-9]*"))
        # node_exporter labels each device by its position in the sorted glob.
        return [
            parse_clock_source(str(index),
                               (path / "available_clocksource").read_text(),
                               (path / "current_clocksource").read_text())
            for index, path in enumerate(devices)
        ]

    def uname(self) -> UnameInfo:
        domainname = self.paths.proc("sys", "kernel", "domainname").read_text()
        return uname_info(os.uname(), domainname)

    # -- filesystem, diskstats, netdev ------------------------------------------
    def mounts(self) -> list[Mount]:
        # node_exporter 1.5 reads PID 1's mount table (the host's, when the agent
        # runs in a container with the host's /proc), and /proc/mounts when
        # hidepid hides PID 1.
        source = self.paths.proc("1", "mounts")
        if not source.exists():
            source = self.paths.proc("mounts")
        rootfs = str(self.paths.rootfs)
        return parse_file(source, lambda text: parse_mounts(text, rootfs))

    def filesystem_usage(self, mounts: Sequence[Mount], timeout: float) -> list[FilesystemUsage]:
        def where(mount: Mount) -> str:
            return os.path.join(self.paths.rootfs, mount.mountpoint.lstrip("/"))

        outcomes: dict[str, os.statvfs_result | str] = {}
        for mount in mounts:
            if not may_hang(mount.fstype):
                outcomes[where(mount)] = self._statvfs_now(where(mount))
        outcomes.update(self._mount_guard.run(
            (where(m) for m in mounts if may_hang(m.fstype)), timeout))
        usage = []
        for mount in mounts:
            outcome = outcomes[where(mount)]
            if isinstance(outcome, str):
                log.debug("statfs failed", extra={"mountpoint": mount.mountpoint,
                                                  "error": outcome})
                usage.append(FilesystemUsage(mount=mount, error=outcome))
            else:
                usage.append(usage_from_statvfs(mount, outcome))
        return usage

    def _statvfs_now(self, path: str) -> os.statvfs_result | str:
        try:
            return self._statvfs(path)
        except OSError as err:
            return describe_stat_error(err)

    @cached_property
    def _mount_guard(self) -> MountGuard[os.statvfs_result]:
        return MountGuard(self._statvfs)

    def disk_stats(self, exclude: Callable[[str], bool]) -> list[DiskStats]:
        disks = parse_file(self.paths.proc("diskstats"), parse_diskstats)
        return [DiskStats(device=d.device, counters=d.counters, major=d.major, minor=d.minor,
                          properties=self._udev_properties(d.major, d.minor))
                for d in disks if not exclude(d.device)]

    def _udev_properties(self, major: int | None, minor: int | None) -> dict[str, str]:
        # node_exporter's --path.udev.data default, under the injected root.
        path = self.paths.root("run", "udev", "data", f"b{major}:{minor}")
        try:
            return parse_udev_properties(path.read_text())
        except FileNotFoundError:
            return {}  # no udev here (containers, minimal images): info labels stay ""

    def net_dev_stats(self, exclude: Callable[[str], bool]) -> list[NetDevStats]:
        devices = parse_file(self.paths.proc("net", "dev"), parse_net_dev)
        stats = []
        for name, counters in devices.items():
            if exclude(name):
                continue
            # /proc/net/dev has no column for packets dropped for want of a
            # protocol handler; node_exporter 1.5 (netlink) exports it, sysfs has it.
            nohandler = self.paths.sys("class", "net", name, "statistics", "rx_nohandler")
            # Kernels before 4.6, or no sysfs mounted: the series is absent.
            with contextlib.suppress(FileNotFoundError):
                counters["receive_nohandler"] = float(int(nohandler.read_text()))
            stats.append(NetDevStats(device=name, counters=counters))
        return stats


def _parse_file(path: Path, parse: Callable[[str], T]) -> T:
    """Read a file and parse it; a parse error names the file it came from."""
    text = path.read_text()
    try:
        return parse(text)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
