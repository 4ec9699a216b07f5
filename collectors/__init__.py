"""The built-in collectors, registered explicitly (no folder scanning).

Add a collector: write its module, then list its class in `builtin_collectors`.
"""

from __future__ import annotations

import sys

from totem_agent.collectors.base import Collector


def builtin_collectors() -> dict[str, type[Collector]]:
    """Every built-in collector class by name, in a stable order."""
    from totem_agent.collectors import (
        arp,
        conntrack,
        cpu,
        diskstats,
        display,
        entropy,
        filefd,
        filesystem,
        hwmon,
        loadavg,
        meminfo,
        netclass,
        netdev,
        netstat,
        os_release,
        payment,
        pressure,
        process,
        selinux,
        sockstat,
        softnet,
        stat,
        textfile,
        time,
        timex,
        udp_queues,
        uname,
        usb,
        vmstat,
    )
    from totem_agent.collectors.printer.collector import PrinterCollector

    classes: list[type[Collector]] = [
        loadavg.LoadavgCollector,
        cpu.CpuCollector,
        meminfo.MeminfoCollector,
        stat.StatCollector,
        time.TimeCollector,
        uname.UnameCollector,
        os_release.OsCollector,
        filesystem.FilesystemCollector,
        diskstats.DiskstatsCollector,
        netdev.NetdevCollector,
        # Linux-only network state from /sys/class/net and /proc/net.
        netclass.NetclassCollector,
        arp.ArpCollector,
        softnet.SoftnetCollector,
        # Linux-only /proc and /sys parsers the "Node Exporter Full" dashboard reads.
        pressure.PressureCollector,
        timex.TimexCollector,
        hwmon.HwmonCollector,
        netstat.NetstatCollector,
        sockstat.SockstatCollector,
        vmstat.VmstatCollector,
        filefd.FilefdCollector,
        entropy.EntropyCollector,
        conntrack.ConntrackCollector,
        udp_queues.UdpQueuesCollector,
        selinux.SelinuxCollector,
        textfile.TextfileCollector,
        # Peripherals (docs/peripherals.md): nothing to watch until configured.
        PrinterCollector,
        payment.PaymentCollector,
        display.DisplayCollector,
        usb.UsbCollector,
        process.ProcessCollector,
    ]
    return {cls.name: cls for cls in classes}


def runs_here(cls: type[Collector], platform: str = sys.platform) -> bool:
    """Whether a collector class supports this platform ("linux" covers linux2 etc.)."""
    return any(platform.startswith(p) for p in cls.platforms)
