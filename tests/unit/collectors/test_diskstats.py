"""diskstats: /proc/diskstats and udev properties as node_exporter 1.5 exports them,
old kernels' shorter lines, malformed and missing files, Windows, this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import collect, samples
from tests.unit.collectors.fake_psutil_io import DISK_IO, FakePsutilIO
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import copy_fixture, fixture_text, make_tree
from totem_agent.collectors._filters import NameFilter
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.diskstats import DEVICE_EXCLUDE, DiskstatsCollector, families
from totem_agent.collectors.platform._linux_devices import (
    parse_diskstats,
    parse_udev_properties,
)
from totem_agent.collectors.platform._windows import WindowsSource
from totem_agent.collectors.platform.types import DiskStats

LINE_20 = " 254       0 vda 31273 7044 1564018 9331 3690 9182 1348616 5418 0 3976 14991 " \
          "3430 33 75712 220 369 19\n"


def test_parse_converts_sectors_and_milliseconds() -> None:
    [disk] = parse_diskstats(LINE_20)
    assert (disk.device, disk.major, disk.minor) == ("vda", 254, 0)
    assert disk.counters == {
        "reads_completed": 31273, "reads_merged": 7044, "read_bytes": 1564018 * 512,
        "read_time_seconds": 9331 * 0.001, "writes_completed": 3690, "writes_merged": 9182,
        "written_bytes": 1348616 * 512, "write_time_seconds": 5418 * 0.001, "io_now": 0,
        "io_time_seconds": 3976 * 0.001, "io_time_weighted_seconds": 14991 * 0.001,
        "discards_completed": 3430, "discards_merged": 33,
        "discarded_sectors": 75712,  # node_exporter keeps discards in sectors
        "discard_time_seconds": 220 * 0.001, "flush_requests": 369,
        "flush_requests_time_seconds": 19 * 0.001,
    }


def test_parse_old_kernels_give_fewer_counters() -> None:
    text = ("   8       0 sda 10 0 80 5 2 0 16 1 0 6 6\n"        # before 4.18: 11 counters
            "   8       1 sda1 10 80 2 16\n"                     # 2.6 partition: skipped
            "   8      16 sdb 10 0 80 5 2 0 16 1 0 6 6 1 0 8 2\n")  # 4.18 to 5.4: 15
    disks = parse_diskstats(text)
    assert [d.device for d in disks] == ["sda", "sdb"]
    assert len(disks[0].counters) == 11 and "discards_completed" not in disks[0].counters
    assert len(disks[1].counters) == 15 and "flush_requests" not in disks[1].counters


def test_parse_rejects_text_where_numbers_belong() -> None:
    with pytest.raises(ValueError, match="line 2: not a diskstats line"):
        parse_diskstats(LINE_20 + LINE_20.replace("31273", "lots"))


def test_parse_udev_properties_reads_only_e_lines() -> None:
    assert parse_udev_properties("S:disk/by-id/x\nE:ID_MODEL=QEMU HARDDISK\nE:BROKEN\n"
                                 "E:ID_PATH=pci-0000:00:05.0=x\nG:systemd\n") == {
        "ID_MODEL": "QEMU HARDDISK", "ID_PATH": "pci-0000:00:05.0=x"}


@pytest.mark.parametrize("device, excluded", [
    ("sda", False), ("sda1", True), ("vda", False), ("vda2", True), ("xvda1", True),
    ("nvme0n1", False), ("nvme0n1p1", True), ("loop0", True), ("ram15", True),
    ("fd0", True), ("zram0", False), ("dm-0", False), ("mmcblk0", False), ("md127", False),
])
def test_default_device_exclude_is_node_exporter_15s(device: str, excluded: bool) -> None:
    assert NameFilter(DEVICE_EXCLUDE).excluded(device) is excluded


def test_fixture_matches_node_exporter() -> None:
    # tests/fixtures/linux/proc/diskstats and root/run/udev/data/b254:0, compared
    # series by series with node_exporter 1.5 run on the same files.
    families_ = collect(DiskstatsCollector)
    assert assert_matches_node_exporter(families_.values(), "node_disk_") == 37
    assert families_["node_disk_io_now"].type == "gauge"
    assert families_["node_disk_reads_completed"].type == "counter"


def test_udev_properties_fill_the_info_labels() -> None:
    got = samples(collect(DiskstatsCollector).values())
    assert got[("node_disk_info", (("device", "vda"), ("major", "254"), ("minor", "0"),
                                   ("model", ""), ("path", "pci-0000:00:05.0"),
                                   ("revision", ""), ("serial", "KIOSK-VDA-0042"),
                                   ("wwn", "")))] == 1
    # zram0 has no udev file: its labels are empty, not missing.
    assert ("node_disk_info", (("device", "zram0"), ("major", "253"), ("minor", "0"),
                               ("model", ""), ("path", ""), ("revision", ""), ("serial", ""),
                               ("wwn", ""))) in got


def test_ata_and_device_mapper_families() -> None:
    disk = DiskStats(device="sda", counters={"io_now": 1.0}, major=8, minor=0, properties={
        "ID_ATA": "1", "ID_ATA_ROTATION_RATE_RPM": "0", "ID_ATA_WRITE_CACHE": "1",
        "ID_ATA_WRITE_CACHE_ENABLED": "maybe",  # not a number: no series, as in 1.5
        "SCSI_IDENT_SERIAL": "WD-1234", "ID_SERIAL_SHORT": "short",
        "DM_NAME": "vg-root", "DM_UUID": "LVM-abc", "DM_VG_NAME": "vg", "DM_LV_NAME": "root"})
    got = samples(families([disk]))
    assert got[("node_disk_ata_rotation_rate_rpm", (("device", "sda"),))] == 0
    assert got[("node_disk_ata_write_cache", (("device", "sda"),))] == 1
    assert not any(k[0] == "node_disk_ata_write_cache_enabled" for k in got)
    info = next(dict(k[1]) for k in got if k[0] == "node_disk_info")
    assert info["serial"] == "WD-1234"  # the label serial wins over udev's short one
    assert got[("node_disk_device_mapper_info", (
        ("device", "sda"), ("lv_layer", ""), ("lv_name", "root"), ("name", "vg-root"),
        ("uuid", "LVM-abc"), ("vg_name", "vg")))] == 1


def test_device_exclude_option() -> None:
    # The option replaces the default pattern, as the flag does in node_exporter.
    got = samples(collect(DiskstatsCollector,
                          settings={"device_exclude": "^(zram|loop)"}).values())
    assert {dict(k[1])["device"] for k in got} == {"vda"}
    got = samples(collect(DiskstatsCollector, settings={"device_exclude": ""}).values())
    assert {dict(k[1])["device"] for k in got} == \
        {"vda", "zram0"} | {f"loop{i}" for i in range(8)}


def test_missing_diskstats_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="diskstats"):
        collect(DiskstatsCollector, make_tree(tmp_path, {}))


def test_malformed_diskstats_names_the_file(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/diskstats": fixture_text("proc/diskstats")
                                 .replace(" vda 5", " vda x")})
    with pytest.raises(ValueError, match=r"proc/diskstats: line \d+: not a diskstats line"):
        collect(DiskstatsCollector, paths)


def test_no_udev_database_leaves_labels_empty(tmp_path: Path) -> None:
    paths = copy_fixture(tmp_path, "proc/diskstats")
    got = samples(collect(DiskstatsCollector, paths).values())
    info = [dict(k[1]) for k in got if k[0] == "node_disk_info"]
    assert [i["serial"] for i in info] == ["", ""]
    assert not any(k[0] == "node_disk_filesystem_info" for k in got)


def test_windows_counts_what_psutil_has() -> None:
    collector = DiskstatsCollector(CollectorContext(), {"device_exclude": DEVICE_EXCLUDE},
                                   source=WindowsSource(psutil_module=FakePsutilIO()))
    got = samples(collector.collect())
    d0 = (("device", "PhysicalDrive0"),)
    io = DISK_IO["PhysicalDrive0"]
    assert got[("node_disk_reads_completed_total", d0)] == io.read_count
    assert got[("node_disk_read_bytes_total", d0)] == io.read_bytes
    assert got[("node_disk_read_time_seconds_total", d0)] == io.read_time / 1000
    assert got[("node_disk_writes_completed_total", d0)] == io.write_count
    assert got[("node_disk_written_bytes_total", d0)] == io.write_bytes
    assert got[("node_disk_write_time_seconds_total", d0)] == io.write_time / 1000
    # No device numbers, merges, queue or busy time on Windows: absent, not 0.
    names = {k[0] for k in got}
    assert names == {"node_disk_reads_completed_total", "node_disk_read_bytes_total",
                     "node_disk_read_time_seconds_total", "node_disk_writes_completed_total",
                     "node_disk_written_bytes_total", "node_disk_write_time_seconds_total"}
    assert len(got) == 12


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(DiskstatsCollector, HostPaths()).values())
    devices = {dict(k[1])["device"] for k in got}
    listed = {line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()}
    assert devices and devices <= listed
    assert not any(NameFilter(DEVICE_EXCLUDE).excluded(d) for d in devices)
    for device in devices:
        key = (("device", device),)
        assert got[("node_disk_read_bytes_total", key)] >= 0
        assert got[("node_disk_io_time_seconds_total", key)] >= 0
