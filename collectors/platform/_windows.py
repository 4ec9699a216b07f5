"""Windows: the same node_* numbers from psutil (imported lazily, only here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from totem_agent.collectors.platform._mount_guard import MountGuard
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


class WindowsSource:
    def __init__(self, psutil_module: Any = None,
                 platform_uname: Callable[[], Any] | None = None) -> None:
        if psutil_module is None:
            import psutil

            psutil_module = psutil
        if platform_uname is None:
            import platform

            platform_uname = platform.uname
        self._psutil = psutil_module
        self._platform_uname = platform_uname

    def load_average(self) -> LoadAverage:
        # psutil emulates it on Windows from the processor queue length.
        return LoadAverage(*self._psutil.getloadavg())

    def cpu_times(self) -> list[CpuTimes]:
        # psutil's per-CPU scputimes(user, system, idle, interrupt, dpc): interrupt
        # is hardware interrupt time (Linux irq), a DPC is Windows' deferred
        # interrupt work (Linux softirq). Windows has no nice, iowait, steal or
        # guest time: None, so no series rather than a zero that looks measured.
        # psutil's system is kernel time minus idle; whether Windows also counts
        # interrupt and DPC time in it is not documented, so it is passed on as is.
        return [
            CpuTimes(cpu=str(index), user=float(t.user), nice=None, system=float(t.system),
                     idle=float(t.idle), iowait=None, irq=float(t.interrupt),
                     softirq=float(t.dpc), steal=None, guest=None, guest_nice=None)
            for index, t in enumerate(self._psutil.cpu_times(percpu=True))
        ]

    def kernel_stats(self) -> KernelStats:
        stats = self._psutil.cpu_stats()
        # Windows has no fork counter and no running/blocked split of its run queue.
        return KernelStats(boot_time=float(self._psutil.boot_time()),
                           context_switches=float(stats.ctx_switches),
                           interrupts=float(stats.interrupts),
                           forks=None, procs_running=None, procs_blocked=None)

    def memory_info(self) -> MemoryInfo:
        vm = self._psutil.virtual_memory()
        swap = self._psutil.swap_memory()
        # Only what maps onto a /proc/meminfo field. psutil's `free` on Windows
        # is GlobalMemoryStatusEx's available physical memory (standby cache
        # included): Windows gives no separate "never used" figure, so MemFree
        # equals MemAvailable here. Swap is the paging file (commit limit minus
        # physical memory), its use from the paging-file performance counter.
        return {
            "MemTotal_bytes": float(vm.total),
            "MemFree_bytes": float(vm.free),
            "MemAvailable_bytes": float(vm.available),
            "SwapTotal_bytes": float(swap.total),
            "SwapFree_bytes": float(swap.free),
        }

    def clock_sources(self) -> list[ClockSource]:
        return []  # Windows has no selectable kernel clocksource to report

    def uname(self) -> UnameInfo:
        u = self._platform_uname()
        # Windows has no NIS domain; "(none)" is what Linux reports when it is unset,
        # so one query matches both fleets.
        return UnameInfo(sysname=u.system, nodename=u.node, release=u.release,
                         version=u.version, machine=u.machine, domainname="(none)")

    # -- filesystem, diskstats, netdev ------------------------------------------
    def mounts(self) -> list[Mount]:
        # all=False: the volumes that have a drive letter or mount folder and are
        # ready (psutil leaves out empty card readers and CD drives).
        return [Mount(device=p.device, mountpoint=p.mountpoint, fstype=p.fstype,
                      options=tuple(o for o in p.opts.split(",") if o))
                for p in self._psutil.disk_partitions(all=False)]

    def filesystem_usage(self, mounts: Sequence[Mount], timeout: float) -> list[FilesystemUsage]:
        # A mapped network drive whose server is gone blocks here as a dead NFS
        # mount does on Linux: the same guard.
        outcomes = self._mount_guard.run((m.mountpoint for m in mounts), timeout)
        usage = []
        for mount in mounts:
            outcome = outcomes[mount.mountpoint]
            if isinstance(outcome, str):
                usage.append(FilesystemUsage(mount=mount, error=outcome))
                continue
            # GetDiskFreeSpaceEx through psutil gives total and free bytes; Windows
            # reserves no blocks for an administrator, so free is also what a user
            # may fill (per-user quotas aside). No inode counts: files and
            # files_free stay None, so those series are absent, not 0.
            usage.append(FilesystemUsage(mount=mount, size_bytes=float(outcome.total),
                                         free_bytes=float(outcome.free),
                                         avail_bytes=float(outcome.free)))
        return usage

    @cached_property
    def _mount_guard(self) -> MountGuard[Any]:
        return MountGuard(self._psutil.disk_usage)

    def disk_stats(self, exclude: Callable[[str], bool]) -> list[DiskStats]:
        # Per physical drive ("PhysicalDrive0") from IOCTL_DISK_PERFORMANCE; times
        # in milliseconds. Windows counts no merges, queue depth, busy time,
        # discards or flushes here: those series are absent.
        drives = self._psutil.disk_io_counters(perdisk=True) or {}
        return [
            DiskStats(device=name, counters={
                "reads_completed": float(io.read_count),
                "read_bytes": float(io.read_bytes),
                "read_time_seconds": io.read_time / 1000.0,
                "writes_completed": float(io.write_count),
                "written_bytes": float(io.write_bytes),
                "write_time_seconds": io.write_time / 1000.0,
            })
            for name, io in drives.items() if not exclude(name)
        ]

    def net_dev_stats(self, exclude: Callable[[str], bool]) -> list[NetDevStats]:
        # GetIfEntry2 per interface; the FIFO, frame, compression, multicast,
        # collision and carrier columns of /proc/net/dev have no counterpart.
        nics = self._psutil.net_io_counters(pernic=True) or {}
        return [
            NetDevStats(device=name, counters={
                "receive_bytes": float(io.bytes_recv),
                "receive_packets": float(io.packets_recv),
                "receive_errs": float(io.errin),
                "receive_drop": float(io.dropin),
                "transmit_bytes": float(io.bytes_sent),
                "transmit_packets": float(io.packets_sent),
                "transmit_errs": float(io.errout),
                "transmit_drop": float(io.dropout),
            })
            for name, io in nics.items() if not exclude(name)
        ]
