"""filesystem: mount table parsing, node_exporter 1.5's excludes, statfs values, stuck
mounts that must not hang the collector, Windows through psutil, and this machine."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import LINUX, collect, samples, wait_until
from tests.unit.collectors.fake_psutil_io import USAGE, FakePsutilIO
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors._filters import NameFilter
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.filesystem import (
    FS_TYPES_EXCLUDE,
    MOUNT_POINTS_EXCLUDE,
    FilesystemCollector,
)
from totem_agent.collectors.platform._linux import LinuxSource
from totem_agent.collectors.platform._linux_devices import parse_mounts, strip_rootfs
from totem_agent.collectors.platform._mount_guard import (
    STILL_STUCK,
    TIMED_OUT,
    MountGuard,
)
from totem_agent.collectors.platform._windows import WindowsSource
from totem_agent.collectors.platform.types import Mount

DEFAULTS = {key: opt.default for key, opt in FilesystemCollector.options.items()}
ROOT = LINUX / "root"


def labels(device: str, fstype: str, mountpoint: str) -> tuple[tuple[str, str], ...]:
    return (("device", device), ("fstype", fstype), ("mountpoint", mountpoint))


# -- parsing ---------------------------------------------------------------------
def test_parse_mounts_unescapes_the_mount_point_as_node_exporter() -> None:
    text = ("/dev/sdb1 /media/USB\\040STICK vfat ro,nosuid 0 0\n"
            "\n"
            "//nas/a\\040b /mnt/tab\\011here cifs rw 0 0\n")
    assert parse_mounts(text) == [
        Mount("/dev/sdb1", "/media/USB STICK", "vfat", ("ro", "nosuid")),
        # Only the mount point is unescaped (node_exporter 1.5 leaves the device as is).
        Mount("//nas/a\\040b", "/mnt/tab\there", "cifs", ("rw",)),
    ]


def test_parse_mounts_rejects_a_short_line() -> None:
    with pytest.raises(ValueError, match="malformed mount point information: '/dev/sda1 /'"):
        parse_mounts("proc /proc proc rw 0 0\n/dev/sda1 /\n")


@pytest.mark.parametrize("mountpoint, rootfs, expected", [
    ("/host/var", "/host", "/var"),
    ("/host", "/host", "/"),
    ("/var", "/host", "/var"),     # not under the rootfs: left alone
    ("/var", "/", "/var"),
])
def test_strip_rootfs(mountpoint: str, rootfs: str, expected: str) -> None:
    assert strip_rootfs(mountpoint, rootfs) == expected


@pytest.mark.parametrize("mountpoint, excluded", [
    ("/", False), ("/boot/efi", False), ("/run", False), ("/run/user/1000", False),
    ("/home", False), ("/var/lib/docker", False), ("/devices", False),
    ("/dev", True), ("/dev/shm", True), ("/proc", True), ("/sys/fs/cgroup", True),
    ("/run/credentials/systemd-journald.service", True),
    ("/var/lib/docker/overlay2/x/merged", True),
    ("/var/lib/containers/storage/overlay", True),
])
def test_default_mount_point_exclude_is_node_exporter_15s(mountpoint: str,
                                                          excluded: bool) -> None:
    assert NameFilter(MOUNT_POINTS_EXCLUDE).excluded(mountpoint) is excluded


@pytest.mark.parametrize("fstype, excluded", [
    ("ext4", False), ("xfs", False), ("vfat", False), ("tmpfs", False), ("nfs4", False),
    ("cgroup", True), ("cgroup2", True), ("overlay", True), ("squashfs", True),
    ("iso9660", True), ("nsfs", True), ("sysfs", True), ("fuse.sshfs", False),
])
def test_default_fs_type_exclude_is_node_exporter_15s(fstype: str, excluded: bool) -> None:
    assert NameFilter(FS_TYPES_EXCLUDE).excluded(fstype) is excluded


# -- the fixture tree ------------------------------------------------------------------
def test_fixture_mounts_labels_values_and_errors() -> None:
    got = samples(collect(FilesystemCollector).values())
    errors = {dict(k[1])["mountpoint"]: v for k, v in got.items()
              if k[0] == "node_filesystem_device_error"}
    # tests/fixtures/linux/proc/1/mounts less /dev, /proc, /sys, cgroups, docker's
    # overlay, /run/credentials and the iso9660 CD. The NFS share has no directory
    # under the fixture root, so its statfs fails.
    assert errors == {"/": 0, "/boot/efi": 0, "/media/usb": 0, "/run": 0, "/srv/receipts": 1}
    assert ("node_filesystem_device_error", labels("nas:/export/receipts", "nfs4",
                                                   "/srv/receipts")) in got
    st = os.statvfs(ROOT)
    root = labels("/dev/vda", "ext4", "/")
    assert got[("node_filesystem_size_bytes", root)] == st.f_blocks * st.f_bsize
    assert got[("node_filesystem_files", root)] == st.f_files
    assert 0 < got[("node_filesystem_avail_bytes", root)] <= \
        got[("node_filesystem_free_bytes", root)] <= got[("node_filesystem_size_bytes", root)]
    assert 0 < got[("node_filesystem_files_free", root)] <= st.f_files
    # readonly comes from the mount options, as node_exporter 1.5 reads it.
    assert got[("node_filesystem_readonly", root)] == 0
    assert got[("node_filesystem_readonly", labels("/dev/sdb1", "vfat", "/media/usb"))] == 1
    # A mount that could not be read has device_error only, as in 1.5.
    nfs = labels("nas:/export/receipts", "nfs4", "/srv/receipts")
    assert [k[0] for k in got if k[1] == nfs] == ["node_filesystem_device_error"]


def test_fixture_types_and_help() -> None:
    families = collect(FilesystemCollector)
    assert sorted(families) == sorted(
        f"node_filesystem_{n}" for n in ("size_bytes", "free_bytes", "avail_bytes", "files",
                                         "files_free", "readonly", "device_error"))
    assert all(f.type == "gauge" and f.documentation for f in families.values())


def test_excludes_are_options() -> None:
    got = samples(collect(FilesystemCollector, settings={
        "mount_points_exclude": "", "fs_types_exclude": "^(nfs4|tmpfs|vfat)$"}).values())
    mountpoints = {dict(k[1])["mountpoint"] for k in got}
    # The options replace the defaults: /proc, /sys, /dev and the cgroups are back,
    # tmpfs, vfat and NFS are out.
    assert mountpoints == {
        "/proc", "/sys", "/dev", "/dev/pts", "/", "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/devices", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/blkio",
        "/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified",
        "/var/lib/docker/overlay2/4f1c/merged", "/media/cdrom"}


def test_duplicate_mounts_are_one_series(tmp_path: Path) -> None:
    line = "/dev/vda / ext4 rw,relatime 0 0\n"
    paths = make_tree(tmp_path, {"proc/1/mounts": line + line.replace("rw,", "ro,")})
    paths = HostPaths(procfs=paths.procfs, sysfs=paths.sysfs, rootfs=ROOT)
    families = collect(FilesystemCollector, paths)
    assert len(families["node_filesystem_size_bytes"].samples) == 1
    # The first entry wins, as node_exporter exposes the first it sees.
    assert families["node_filesystem_readonly"].samples[0].value == 0


def test_falls_back_to_proc_mounts_when_pid_1_is_hidden(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/mounts": "/dev/vda / ext4 rw 0 0\n"})
    paths = HostPaths(procfs=paths.procfs, sysfs=paths.sysfs, rootfs=ROOT)
    got = samples(collect(FilesystemCollector, paths).values())
    assert got[("node_filesystem_device_error", labels("/dev/vda", "ext4", "/"))] == 0


def test_no_mount_table_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="mounts"):
        collect(FilesystemCollector, make_tree(tmp_path, {}))


def test_malformed_mount_table_names_the_file(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/1/mounts": "/dev/vda / ext4 rw 0 0\nbroken line\n"})
    with pytest.raises(ValueError, match=r"proc/1/mounts: malformed mount point information"):
        collect(FilesystemCollector, paths)


def test_rootfs_prefix_is_stripped_from_labels_and_added_for_statfs(tmp_path: Path) -> None:
    # The host's / mounted at ROOT inside a container: its mounts are listed under ROOT.
    paths = make_tree(tmp_path, {"proc/1/mounts": f"/dev/vda1 {ROOT}/boot/efi vfat rw 0 0\n"})
    paths = HostPaths(procfs=paths.procfs, sysfs=paths.sysfs, rootfs=ROOT)
    got = samples(collect(FilesystemCollector, paths).values())
    assert got[("node_filesystem_device_error", labels("/dev/vda1", "vfat", "/boot/efi"))] == 0


# -- mounts that hang --------------------------------------------------------------------
class HangingStatvfs:
    """os.statvfs, except that `hang` blocks until released (a dead NFS server)."""

    def __init__(self, hang: str) -> None:
        self.hang = hang
        self.release = threading.Event()
        self.calls: list[str] = []

    def __call__(self, path: str) -> os.statvfs_result:
        self.calls.append(path)
        if path == self.hang:
            self.release.wait()
        return os.statvfs(path)


def nfs_tree(tmp_path: Path) -> tuple[HostPaths, str]:
    root = tmp_path / "root"
    (root / "srv" / "nfs").mkdir(parents=True)
    paths = make_tree(tmp_path, {"proc/1/mounts": "/dev/vda / ext4 rw 0 0\n"
                                 "nas:/export /srv/nfs nfs4 rw,hard 0 0\n"})
    return paths, os.path.join(paths.rootfs, "srv/nfs")


def errors_of(collector: FilesystemCollector) -> dict[str, float]:
    got = samples(collector.collect())
    return {dict(k[1])["mountpoint"]: v for k, v in got.items()
            if k[0] == "node_filesystem_device_error"}


def test_a_hanging_mount_times_out_is_skipped_and_comes_back(tmp_path: Path) -> None:
    paths, nfs = nfs_tree(tmp_path)
    statvfs = HangingStatvfs(hang=nfs)
    source = LinuxSource(paths, statvfs=statvfs)
    collector = FilesystemCollector(CollectorContext(paths=paths),
                                    {**DEFAULTS, "mount_timeout": 0.2}, source=source)
    try:
        started = time.monotonic()
        assert errors_of(collector) == {"/": 0, "/srv/nfs": 1}
        assert time.monotonic() - started < 2.0  # one timeout, not forever
        assert source._mount_guard.stuck == {nfs}

        # The next cycle answers at once and does not call statfs on it again.
        calls = len(statvfs.calls)
        started = time.monotonic()
        assert errors_of(collector) == {"/": 0, "/srv/nfs": 1}
        assert time.monotonic() - started < 0.2
        assert statvfs.calls[calls:] == [str(paths.rootfs) + "/"]
    finally:
        statvfs.release.set()  # the server is back: the old call returns
    wait_until(lambda: not source._mount_guard.stuck, message="the stuck mount to recover")
    got = samples(collector.collect())
    assert got[("node_filesystem_device_error", labels("nas:/export", "nfs4", "/srv/nfs"))] == 0
    assert ("node_filesystem_size_bytes", labels("nas:/export", "nfs4", "/srv/nfs")) in got


def test_stuck_calls_hold_threads_not_the_pool(tmp_path: Path) -> None:
    gate = threading.Event()
    hanging = {f"/hang{i}" for i in range(6)}

    def stat(path: str) -> int:
        if path in hanging:
            gate.wait()
        return len(path)

    guard: MountGuard[int] = MountGuard(stat, workers=4)
    try:
        outcome = guard.run([*sorted(hanging), "/ok"], timeout=0.1)
        # Six hanging mounts did not starve the seventh of a thread.
        assert outcome == {**{p: TIMED_OUT for p in hanging}, "/ok": 3}
        assert guard.run([*sorted(hanging), "/ok"], timeout=0.1) == \
            {**{p: STILL_STUCK for p in hanging}, "/ok": 3}
        # Six stuck threads plus the ones reused for "/ok": bounded, not one per call.
        assert guard.threads <= len(hanging) + 4
    finally:
        gate.set()
    wait_until(lambda: not guard.stuck, message="every stuck call to return")


def test_a_failing_stat_is_an_error_string_not_an_exception() -> None:
    def stat(path: str) -> int:
        raise FileNotFoundError(2, "No such file or directory", path)

    guard: MountGuard[int] = MountGuard(stat)
    assert guard.run(["/gone"], timeout=1.0) == {"/gone": "[Errno 2] No such file or "
                                                          "directory: '/gone'"}
    assert not guard.stuck


# -- Windows -------------------------------------------------------------------------------
def windows_collector(psutil: FakePsutilIO, **settings: object) -> FilesystemCollector:
    return FilesystemCollector(CollectorContext(), {**DEFAULTS, **settings},
                               source=WindowsSource(psutil_module=psutil))


def test_windows_volumes_without_inode_counts() -> None:
    families = {f.name: f for f in windows_collector(FakePsutilIO()).collect()}
    # No inode counts on Windows: those families are absent, not 0.
    assert "node_filesystem_files" not in families
    assert "node_filesystem_files_free" not in families
    got = samples(families.values())
    c = labels("C:\\", "NTFS", "C:\\")
    assert got[("node_filesystem_size_bytes", c)] == USAGE["C:\\"].total
    assert got[("node_filesystem_free_bytes", c)] == USAGE["C:\\"].free
    assert got[("node_filesystem_avail_bytes", c)] == USAGE["C:\\"].free
    assert got[("node_filesystem_readonly", c)] == 0
    assert got[("node_filesystem_readonly", labels("E:\\", "FAT32", "E:\\"))] == 1
    assert got[("node_filesystem_device_error", labels("Z:\\", "NTFS", "Z:\\"))] == 0


def test_windows_drive_not_ready_is_a_device_error() -> None:
    got = samples(windows_collector(FakePsutilIO(missing=frozenset({"E:\\"}))).collect())
    e = labels("E:\\", "FAT32", "E:\\")
    assert got[("node_filesystem_device_error", e)] == 1
    assert ("node_filesystem_size_bytes", e) not in got


def test_windows_dead_network_drive_times_out() -> None:
    psutil = FakePsutilIO(hang=frozenset({"Z:\\"}))
    collector = windows_collector(psutil, mount_timeout=0.2)
    try:
        z = labels("Z:\\", "NTFS", "Z:\\")
        assert samples(collector.collect())[("node_filesystem_device_error", z)] == 1
        calls = len(psutil.usage_calls)
        assert samples(collector.collect())[("node_filesystem_device_error", z)] == 1
        assert "Z:\\" not in psutil.usage_calls[calls:]
    finally:
        psutil.release.set()


# -- this machine --------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's mounts")
def test_live_this_machine() -> None:
    got = samples(collect(FilesystemCollector, HostPaths()).values())
    by_mountpoint = {dict(k[1])["mountpoint"]: (k, v) for k, v in got.items()
                     if k[0] == "node_filesystem_device_error"}
    assert "/" in by_mountpoint
    key, error = by_mountpoint["/"]
    assert error == 0
    st = os.statvfs("/")
    assert got[("node_filesystem_size_bytes", key[1])] == st.f_blocks * st.f_bsize
    assert not any(m.startswith(("/proc", "/sys", "/dev")) for m in by_mountpoint)
