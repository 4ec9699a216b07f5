"""Linux: pure parsers for mounts, block devices and network interfaces.

The files behind the filesystem, diskstats and netdev collectors. `_linux.py`
reads the files and hands the text here, so every parser is tested with
literals (node_exporter's parseX(data) habit). Parsers raise ValueError saying
what is wrong; the reader adds the file name.
"""

from __future__ import annotations

import os

from totem_agent.collectors.platform.types import DiskStats, FilesystemUsage, Mount

# /proc/diskstats counts "standard UNIX 512-byte sectors", whatever the device's
# own block size (Documentation/admin-guide/iostats.rst), and times in ms.
SECTOR_BYTES = 512.0
MS = 0.001

# The columns of a /proc/diskstats line after major, minor and name, in order,
# as node_disk_<key> and the factor to base units. Kernels before 4.18 have the
# first 11, before 5.5 the first 15; a line exports as many as it has.
DISKSTATS_FIELDS: tuple[tuple[str, float], ...] = (
    ("reads_completed", 1.0),
    ("reads_merged", 1.0),
    ("read_bytes", SECTOR_BYTES),
    ("read_time_seconds", MS),
    ("writes_completed", 1.0),
    ("writes_merged", 1.0),
    ("written_bytes", SECTOR_BYTES),
    ("write_time_seconds", MS),
    ("io_now", 1.0),
    ("io_time_seconds", MS),
    ("io_time_weighted_seconds", MS),
    ("discards_completed", 1.0),
    ("discards_merged", 1.0),
    ("discarded_sectors", 1.0),  # node_exporter keeps these in sectors
    ("discard_time_seconds", MS),
    ("flush_requests", 1.0),
    ("flush_requests_time_seconds", MS),
)

# Lines with fewer fields (old kernels' 7-field partition lines) are skipped,
# as node_exporter's procfs does.
_DISKSTATS_MIN_FIELDS = 14


def parse_mounts(text: str, rootfs: str = "/") -> list[Mount]:
    """Parse /proc/<pid>/mounts: "device mountpoint fstype options 0 0" per line.

    Like node_exporter 1.5, only `\\040` (space) and `\\011` (tab) are unescaped,
    in the mount point only, and a rootfs prefix (the host's / mounted inside a
    container) is stripped so mount points read as on the host.
    """
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            raise ValueError(f"malformed mount point information: {line!r}")
        mountpoint = parts[1].replace("\\040", " ").replace("\\011", "\t")
        mounts.append(Mount(device=parts[0], mountpoint=strip_rootfs(mountpoint, rootfs),
                            fstype=parts[2], options=tuple(parts[3].split(","))))
    return mounts


def strip_rootfs(mountpoint: str, rootfs: str) -> str:
    """node_exporter's rootfsStripPrefix: a plain prefix cut, "/" if nothing is left."""
    if rootfs == "/" or not mountpoint.startswith(rootfs):
        return mountpoint
    return mountpoint[len(rootfs):] or "/"


def usage_from_statvfs(mount: Mount, st: os.statvfs_result) -> FilesystemUsage:
    # node_exporter multiplies by statfs' f_bsize (not f_frsize); the two are
    # equal on every common Linux filesystem, and f_bsize keeps the values equal
    # to node_exporter's where they are not.
    return FilesystemUsage(
        mount=mount,
        size_bytes=float(st.f_blocks) * st.f_bsize,
        free_bytes=float(st.f_bfree) * st.f_bsize,
        avail_bytes=float(st.f_bavail) * st.f_bsize,
        files=float(st.f_files),
        files_free=float(st.f_ffree),
    )


def parse_diskstats(text: str) -> list[DiskStats]:
    """Parse /proc/diskstats: "major minor name" and 11, 15 or 17 counters per line."""
    disks = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if len(parts) < _DISKSTATS_MIN_FIELDS:
            continue
        try:
            major, minor = int(parts[0]), int(parts[1])
            raw = [int(v) for v in parts[3:3 + len(DISKSTATS_FIELDS)]]
        except ValueError:
            raise ValueError(f"line {number}: not a diskstats line: {line.strip()!r}") from None
        counters = {key: value * factor
                    for (key, factor), value in zip(DISKSTATS_FIELDS, raw, strict=False)}
        disks.append(DiskStats(device=parts[2], counters=counters, major=major, minor=minor))
    return disks


def parse_udev_properties(text: str) -> dict[str, str]:
    """Parse a udev database file (/run/udev/data/b<major>:<minor>): the `E:KEY=value`
    lines are the device's properties (udevadm(8)); other lines are ignored."""
    properties = {}
    for line in text.splitlines():
        if line.startswith("E:"):
            key, sep, value = line[2:].partition("=")
            if sep:
                properties[key] = value
    return properties


def parse_net_dev(text: str) -> dict[str, dict[str, float]]:
    """Parse /proc/net/dev into {device: {"receive_bytes": ..., "transmit_colls": ...}}.

    The counter names come from the second header line, as node_exporter reads
    them, so a kernel that adds a column adds a metric.
    """
    lines = text.splitlines()
    if len(lines) < 2:
        raise ValueError("no header lines")
    sections = lines[1].split("|")
    if len(sections) != 3:
        raise ValueError(f"invalid header line: {lines[1]!r}")
    keys = ([f"receive_{name}" for name in sections[1].split()]
            + [f"transmit_{name}" for name in sections[2].split()])
    devices: dict[str, dict[str, float]] = {}
    for line in lines[2:]:
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or not name.strip():
            raise ValueError(f"no interface name in line {line.strip()!r}")
        if len(values) != len(keys):
            raise ValueError(f"{name.strip()}: {len(values)} values for {len(keys)} columns")
        try:
            devices[name.strip()] = {key: float(int(v)) for key, v in zip(keys, values,
                                                                           strict=True)}
        except ValueError:
            raise ValueError(f"{name.strip()}: a counter is not a whole number: "
                             f"{rest.strip()!r}") from None
    return devices
