"""filesystem: space, inodes and state of mounted filesystems (node_exporter's filesystem).

node_filesystem_{size,free,avail}_bytes, _files, _files_free, _readonly and
_device_error, labelled device, fstype, mountpoint. Pseudo filesystems and
system mount points are left out by node_exporter 1.5's default patterns. A
mount whose statfs does not answer within `mount_timeout` (a dead network
share) reports device_error 1 and is skipped until it answers again, so it
can never hang the collector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors._filters import NameFilter, regex_option
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform import SystemCollector, SystemSource
from totem_agent.collectors.platform.types import FilesystemUsage, Mount
from totem_agent.options import Option

# node_exporter 1.5's defaults (collector/filesystem_linux.go). Debian's package
# patches its own binary to also leave out /run, /mnt and /media; these are upstream's.
MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|sysfs|tracefs)$"
)

LABELS = ["device", "fstype", "mountpoint"]


class FilesystemCollector(SystemCollector):
    name = "filesystem"
    description = "size, free space, inodes and read-only state of mounted filesystems"
    options = {
        "mount_points_exclude": regex_option(
            MOUNT_POINTS_EXCLUDE,
            "Regular expression of mount points to leave out (searched anywhere in the "
            "mount point; empty leaves none out). node_exporter 1.5's default."),
        "fs_types_exclude": regex_option(
            FS_TYPES_EXCLUDE,
            "Regular expression of filesystem types to leave out (empty leaves none "
            "out). node_exporter 1.5's default."),
        "mount_timeout": Option(
            "duration", 5.0,
            "How long to wait for one mount to answer statfs before reporting it with "
            "node_filesystem_device_error 1 and skipping it until it answers "
            "(node_exporter's --collector.filesystem.mount-timeout).",
            minimum=0.001),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 source: SystemSource | None = None) -> None:
        super().__init__(context, settings, source)
        self._mount_points = NameFilter(settings["mount_points_exclude"])
        self._fs_types = NameFilter(settings["fs_types_exclude"])
        self._timeout = float(settings["mount_timeout"])

    def collect(self) -> Iterable[Metric]:
        wanted: dict[tuple[str, str, str], Mount] = {}
        for mount in self._source.mounts():
            if self._mount_points.excluded(mount.mountpoint) or \
                    self._fs_types.excluded(mount.fstype):
                continue
            # A filesystem mounted twice at one place with one device (bind
            # mounts, over-mounts) is one series, as node_exporter exposes it once.
            wanted.setdefault((mount.device, mount.fstype, mount.mountpoint), mount)
        return families(self._source.filesystem_usage(list(wanted.values()), self._timeout))


def families(usage: Iterable[FilesystemUsage]) -> list[Metric]:
    """The node_filesystem_* families for the given mounts."""
    size = GaugeMetricFamily("node_filesystem_size_bytes", "Filesystem size in bytes.",
                             labels=LABELS)
    free = GaugeMetricFamily("node_filesystem_free_bytes", "Filesystem free space in bytes.",
                             labels=LABELS)
    avail = GaugeMetricFamily("node_filesystem_avail_bytes",
                              "Filesystem space available to non-root users in bytes.",
                              labels=LABELS)
    files = GaugeMetricFamily("node_filesystem_files", "Filesystem total file nodes.",
                              labels=LABELS)
    files_free = GaugeMetricFamily("node_filesystem_files_free",
                                   "Filesystem total free file nodes.", labels=LABELS)
    readonly = GaugeMetricFamily("node_filesystem_readonly", "Filesystem read-only status.",
                                 labels=LABELS)
    device_error = GaugeMetricFamily(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
        labels=LABELS)
    for u in usage:
        labels = [u.mount.device, u.mount.fstype, u.mount.mountpoint]
        device_error.add_metric(labels, 1.0 if u.error is not None else 0.0)
        if u.error is not None:
            continue  # node_exporter 1.5 exports nothing else for a mount it could not stat
        size.add_metric(labels, u.size_bytes)
        free.add_metric(labels, u.free_bytes)
        avail.add_metric(labels, u.avail_bytes)
        if u.files is not None:
            files.add_metric(labels, u.files)
        if u.files_free is not None:
            files_free.add_metric(labels, u.files_free)
        # From the mount options, as node_exporter 1.5 does (not statfs' f_flag).
        readonly.add_metric(labels, 1.0 if "ro" in u.mount.options else 0.0)
    # An empty family (no inode counts on Windows, no mounts left) is not exported.
    return [f for f in (size, free, avail, files, files_free, readonly, device_error)
            if f.samples]
