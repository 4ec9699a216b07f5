"""uname: node_uname_info labels on Linux (fixture domain name, real uname) and Windows."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.fake_psutil import WINDOWS_UNAME, FakePsutil
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform._linux_system import uname_info
from totem_agent.collectors.platform._windows import WindowsSource
from totem_agent.collectors.platform.types import UnameInfo
from totem_agent.collectors.uname import UnameCollector

LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses os.uname()")


def labels_of(families: Iterable[Metric]) -> dict[str, str]:
    got = samples(families)
    (name, labels), value = next(iter(got.items()))
    assert len(got) == 1 and name == "node_uname_info" and value == 1.0
    return dict(labels)


def test_uname_info_takes_the_domain_from_the_proc_file() -> None:
    u = os.uname_result(("Linux", "kiosk-7", "6.1.0-18-amd64", "#1 SMP Debian 6.1.76-1",
                         "x86_64"))
    assert uname_info(u, "shop.example\n") == UnameInfo(
        sysname="Linux", nodename="kiosk-7", release="6.1.0-18-amd64",
        version="#1 SMP Debian 6.1.76-1", machine="x86_64", domainname="shop.example")


@LINUX_ONLY
def test_fixture_domainname_and_this_kernel() -> None:
    families = collect(UnameCollector, linux_paths())
    assert [f.type for f in families.values()] == ["gauge"]
    u = os.uname()
    assert labels_of(families.values()) == {
        "domainname": "(none)",  # tests/fixtures/linux/proc/sys/kernel/domainname
        "machine": u.machine, "nodename": u.nodename, "release": u.release,
        "sysname": u.sysname, "version": u.version,
    }


@LINUX_ONLY
def test_a_set_domain_name_is_reported(tmp_path: Path) -> None:
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "domainname").write_text("stores.example\n")
    labels = labels_of(collect(UnameCollector, linux_paths(tmp_path)).values())
    assert labels["domainname"] == "stores.example"


@LINUX_ONLY
def test_missing_domainname_file_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    with pytest.raises(FileNotFoundError, match="domainname"):
        collect(UnameCollector, linux_paths(tmp_path))


def test_windows_labels_from_platform_uname() -> None:
    source = WindowsSource(psutil_module=FakePsutil(), platform_uname=lambda: WINDOWS_UNAME)
    collector = UnameCollector(CollectorContext(), {}, source=source)
    assert labels_of(collector.collect()) == {
        "domainname": "(none)", "machine": "AMD64", "nodename": "KIOSK-0042", "release": "10",
        "sysname": "Windows", "version": "10.0.19045",
    }


@LINUX_ONLY
def test_live_this_machine() -> None:
    labels = labels_of(collect(UnameCollector, settings={}).values())
    assert labels["sysname"] == "Linux"
    assert labels["nodename"] == socket.gethostname()
    assert labels["release"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert labels["domainname"] == Path("/proc/sys/kernel/domainname").read_text().strip()
