"""The disk and network part of the fake psutil (see fake_psutil.py): partitions,
usage, per-disk and per-NIC counters in psutil's Windows namedtuple shapes
(psutil/_ntuples.py: sdiskpart, sdiskusage, the 6-field Windows sdiskio, snetio).

Hand-written to look like a Windows 10 kiosk: a system SSD, a USB stick mounted
read-only, and a mapped network share; each number distinct so a field read from
the wrong place shows.
"""

from __future__ import annotations

import threading
from collections import namedtuple

from tests.unit.collectors.fake_psutil import FakePsutil

sdiskpart = namedtuple("sdiskpart", ["device", "mountpoint", "fstype", "opts"])
sdiskusage = namedtuple("sdiskusage", ["total", "used", "free", "percent"])
sdiskio = namedtuple("sdiskio", ["read_count", "write_count", "read_bytes", "write_bytes",
                                 "read_time", "write_time"])
snetio = namedtuple("snetio", ["bytes_sent", "bytes_recv", "packets_sent", "packets_recv",
                               "errin", "errout", "dropin", "dropout"])

PARTITIONS = [
    sdiskpart(device="C:\\", mountpoint="C:\\", fstype="NTFS", opts="rw,fixed"),
    sdiskpart(device="E:\\", mountpoint="E:\\", fstype="FAT32", opts="ro,removable"),
    sdiskpart(device="Z:\\", mountpoint="Z:\\", fstype="NTFS", opts="rw,remote"),
]
USAGE = {
    "C:\\": sdiskusage(total=255465369600, used=61234567168, free=194230802432, percent=24.0),
    "E:\\": sdiskusage(total=15997075456, used=1048576, free=15996026880, percent=0.0),
    "Z:\\": sdiskusage(total=2000398934016, used=1500000000000, free=500398934016,
                       percent=75.0),
}
DISK_IO = {
    "PhysicalDrive0": sdiskio(read_count=184467, write_count=97531, read_bytes=5368709120,
                              write_bytes=2147483648, read_time=73125, write_time=41250),
    "PhysicalDrive1": sdiskio(read_count=312, write_count=0, read_bytes=1277952,
                              write_bytes=0, read_time=250, write_time=0),
}
NET_IO = {
    "Ethernet": snetio(bytes_sent=123456789, bytes_recv=987654321, packets_sent=234567,
                       packets_recv=876543, errin=3, errout=1, dropin=17, dropout=2),
    "Loopback Pseudo-Interface 1": snetio(bytes_sent=0, bytes_recv=0, packets_sent=0,
                                          packets_recv=0, errin=0, errout=0, dropin=0,
                                          dropout=0),
}


class FakePsutilIO(FakePsutil):
    """FakePsutil plus disk_partitions, disk_usage, disk_io_counters, net_io_counters.

    `hang` names mount points whose disk_usage blocks until `release` is set (a
    mapped drive whose server is gone); `missing` ones raise as an empty drive does.
    """

    def __init__(self, hang: frozenset[str] = frozenset(),
                 missing: frozenset[str] = frozenset()) -> None:
        self.hang = hang
        self.missing = missing
        self.release = threading.Event()
        self.usage_calls: list[str] = []

    def disk_partitions(self, all: bool = False) -> list[sdiskpart]:
        if all:
            raise AssertionError("WindowsSource should ask for ready volumes only")
        return list(PARTITIONS)

    def disk_usage(self, path: str) -> sdiskusage:
        self.usage_calls.append(path)
        if path in self.hang:
            self.release.wait()
        if path in self.missing:
            # What Windows answers for a drive letter with no medium in it.
            raise PermissionError(13, "The device is not ready")
        return USAGE[path]

    def disk_io_counters(self, perdisk: bool = False) -> dict[str, sdiskio]:
        if not perdisk:
            raise AssertionError("WindowsSource should ask per disk")
        return dict(DISK_IO)

    def net_io_counters(self, pernic: bool = False) -> dict[str, snetio]:
        if not pernic:
            raise AssertionError("WindowsSource should ask per interface")
        return dict(NET_IO)
