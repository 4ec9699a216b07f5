"""Small /proc and /sys trees built in a test's tmp_path (malformed and missing variants)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from tests.support import LINUX, linux_paths
from totem_agent.collectors.base import HostPaths


def make_tree(root: Path, files: Mapping[str, str]) -> HostPaths:
    """HostPaths over `root` holding `files` ({"proc/net/udp": text}); proc/ and sys/ exist
    even when empty."""
    for part in ("proc", "sys", "root"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return linux_paths(root)


def fixture_text(relative: str) -> str:
    """A file of the checked-in fixture tree, e.g. fixture_text("proc/net/sockstat")."""
    return (LINUX / relative).read_text()


def copy_fixture(root: Path, *relatives: str) -> HostPaths:
    """A tree holding copies of some fixture files or directories (symlinks kept)."""
    for relative in relatives:
        source, target = LINUX / relative, root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    return make_tree(root, {})
