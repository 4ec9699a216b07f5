"""diskstats: I/O counters per block device (node_exporter's diskstats).

node_disk_reads_completed_total, node_disk_read_bytes_total, ...,
node_disk_io_time_seconds_total, discards and flushes, labelled `device`, and
node_disk_info{device,major,minor,path,wwn,model,serial,revision} with what
udev knows of the disk. Partitions, loop and ram devices are left out by
node_exporter 1.5's default pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.collectors._filters import NameFilter, regex_option
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform import SystemCollector, SystemSource
from totem_agent.collectors.platform.types import DiskStats

# node_exporter 1.5's --collector.diskstats.device-exclude default: partitions
# (sda1, nvme0n1p1), loop, ram and floppy devices.
DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

# DiskStats.counters key -> (metric name as exposed, counter?, HELP), node_exporter's order.
COUNTERS: tuple[tuple[str, str, bool, str], ...] = (
    ("reads_completed", "node_disk_reads_completed", True,
     "The total number of reads completed successfully."),
    ("reads_merged", "node_disk_reads_merged", True, "The total number of reads merged."),
    ("read_bytes", "node_disk_read_bytes", True, "The total number of bytes read successfully."),
    ("read_time_seconds", "node_disk_read_time_seconds", True,
     "The total number of seconds spent by all reads."),
    ("writes_completed", "node_disk_writes_completed", True,
     "The total number of writes completed successfully."),
    ("writes_merged", "node_disk_writes_merged", True, "The number of writes merged."),
    ("written_bytes", "node_disk_written_bytes", True,
     "The total number of bytes written successfully."),
    ("write_time_seconds", "node_disk_write_time_seconds", True,
     "This is the total number of seconds spent by all writes."),
    ("io_now", "node_disk_io_now", False, "The number of I/Os currently in progress."),
    ("io_time_seconds", "node_disk_io_time_seconds", True, "Total seconds spent doing I/Os."),
    ("io_time_weighted_seconds", "node_disk_io_time_weighted_seconds", True,
     "The weighted # of seconds spent doing I/Os."),
    ("discards_completed", "node_disk_discards_completed", True,
     "The total number of discards completed successfully."),
    ("discards_merged", "node_disk_discards_merged", True, "The total number of discards merged."),
    ("discarded_sectors", "node_disk_discarded_sectors", True,
     "The total number of sectors discarded successfully."),
    ("discard_time_seconds", "node_disk_discard_time_seconds", True,
     "This is the total number of seconds spent by all discards."),
    ("flush_requests", "node_disk_flush_requests", True,
     "The total number of flush requests completed successfully"),
    ("flush_requests_time_seconds", "node_disk_flush_requests_time_seconds", True,
     "This is the total number of seconds spent by all flush requests."),
)

# udev properties behind the info families (node_exporter's diskstats_linux.go).
ATA_GAUGES = (
    ("ID_ATA_WRITE_CACHE", "node_disk_ata_write_cache", "ATA disk has a write cache."),
    ("ID_ATA_WRITE_CACHE_ENABLED", "node_disk_ata_write_cache_enabled",
     "ATA disk has its write cache enabled."),
    ("ID_ATA_ROTATION_RATE_RPM", "node_disk_ata_rotation_rate_rpm",
     "ATA disk rotation rate in RPMs (0 for SSDs)."),
)


class DiskstatsCollector(SystemCollector):
    name = "diskstats"
    description = "reads, writes, bytes and busy time per block device"
    options = {
        "device_exclude": regex_option(
            DEVICE_EXCLUDE,
            "Regular expression of block devices to leave out (searched anywhere in the "
            "name; empty leaves none out). node_exporter 1.5's default leaves out "
            "partitions, loop, ram and floppy devices."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 source: SystemSource | None = None) -> None:
        super().__init__(context, settings, source)
        self._devices = NameFilter(settings["device_exclude"])

    def collect(self) -> Iterable[Metric]:
        return families(self._source.disk_stats(self._devices.excluded))


def families(disks: Iterable[DiskStats]) -> list[Metric]:
    """The node_disk_* families for the given devices."""
    disks = list(disks)
    out: list[Metric] = []
    info = GaugeMetricFamily(
        "node_disk_info", "Info of /sys/block/<block_device>.",
        labels=["device", "major", "minor", "path", "wwn", "model", "serial", "revision"])
    filesystem_info = GaugeMetricFamily(
        "node_disk_filesystem_info", "Info about disk filesystem.",
        labels=["device", "type", "usage", "uuid", "version"])
    device_mapper_info = GaugeMetricFamily(
        "node_disk_device_mapper_info", "Info about disk device mapper.",
        labels=["device", "name", "uuid", "vg_name", "lv_name", "lv_layer"])
    ata = {key: GaugeMetricFamily(name, doc, labels=["device"]) for key, name, doc in ATA_GAUGES}
    for disk in disks:
        if disk.major is None or disk.minor is None:
            continue  # no device numbers on this platform: no info series
        p = disk.properties
        # The serial printed on the disk's label, else the short one udev derives.
        serial = p.get("SCSI_IDENT_SERIAL") or p.get("ID_SERIAL_SHORT", "")
        info.add_metric([disk.device, str(disk.major), str(disk.minor), p.get("ID_PATH", ""),
                         p.get("ID_WWN", ""), p.get("ID_MODEL", ""), serial,
                         p.get("ID_REVISION", "")], 1.0)
        if p.get("ID_FS_TYPE"):
            filesystem_info.add_metric([disk.device, p["ID_FS_TYPE"], p.get("ID_FS_USAGE", ""),
                                        p.get("ID_FS_UUID", ""), p.get("ID_FS_VERSION", "")],
                                       1.0)
        if p.get("DM_NAME"):
            device_mapper_info.add_metric([disk.device, p["DM_NAME"], p.get("DM_UUID", ""),
                                           p.get("DM_VG_NAME", ""), p.get("DM_LV_NAME", ""),
                                           p.get("DM_LV_LAYER", "")], 1.0)
        if p.get("ID_ATA"):
            for key, gauge in ata.items():
                value = _number(p.get(key))
                if value is not None:  # node_exporter skips what does not parse, too
                    gauge.add_metric([disk.device], value)
    out.append(info)
    for key, name, is_counter, doc in COUNTERS:
        family: CounterMetricFamily | GaugeMetricFamily = (
            CounterMetricFamily(name, doc, labels=["device"]) if is_counter
            else GaugeMetricFamily(name, doc, labels=["device"]))
        for disk in disks:
            if key in disk.counters:
                family.add_metric([disk.device], disk.counters[key])
        out.append(family)
    out += [filesystem_info, device_mapper_info, *ata.values()]
    # Families no device fills (no udev, no ATA disks, counters this kernel or
    # platform lacks) are not exported, as node_exporter exports no empty ones.
    return [f for f in out if f.samples]


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None
