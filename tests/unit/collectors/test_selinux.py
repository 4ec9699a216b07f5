"""selinux: off exports only node_selinux_enabled 0; on, both modes in node_exporter's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, samples
from totem_agent.collectors.base import HostPaths
from totem_agent.collectors.selinux import SelinuxCollector, parse_config_mode


def tree(tmp_path: Path, enforce: str | None, config: str | None) -> HostPaths:
    sysfs, root = tmp_path / "sys", tmp_path / "root"
    sysfs.mkdir()
    root.mkdir()
    if enforce is not None:
        (sysfs / "fs" / "selinux").mkdir(parents=True)
        (sysfs / "fs" / "selinux" / "enforce").write_text(enforce)
    if config is not None:
        (root / "etc" / "selinux").mkdir(parents=True)
        (root / "etc" / "selinux" / "config").write_text(config)
    return HostPaths(procfs=tmp_path / "proc", sysfs=sysfs, rootfs=root)


def test_disabled_exports_only_enabled_zero(tmp_path: Path) -> None:
    got = samples(collect(SelinuxCollector, tree(tmp_path, None, None)).values())
    assert got == {("node_selinux_enabled", ()): 0.0}


def test_enforcing(tmp_path: Path) -> None:
    paths = tree(tmp_path, "1\n", "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n")
    got = samples(collect(SelinuxCollector, paths).values())
    assert got == {("node_selinux_enabled", ()): 1.0, ("node_selinux_config_mode", ()): 1.0,
                   ("node_selinux_current_mode", ()): 1.0}


def test_permissive_at_runtime_with_no_config_file(tmp_path: Path) -> None:
    got = samples(collect(SelinuxCollector, tree(tmp_path, "0", None)).values())
    assert got[("node_selinux_current_mode", ())] == 0.0
    assert got[("node_selinux_config_mode", ())] == -1.0


def test_a_garbled_enforce_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="enforce: expected 0 or 1"):
        collect(SelinuxCollector, tree(tmp_path, "maybe", None))


@pytest.mark.parametrize(("text", "mode"), [("SELINUX=permissive", 0.0),
                                            ('SELINUX="disabled"', -1.0),
                                            ("SELINUX=bogus", -1.0), ("", -1.0)])
def test_config_modes(text: str, mode: float) -> None:
    assert parse_config_mode(text) == mode
