"""`totem-agent service ...` on Linux: it wraps install.sh / uninstall.sh (run for
real by tests/integration/test_binary.py); here, what it says when it cannot."""

from __future__ import annotations

import io
from pathlib import Path

from totem_agent.cli import main
from totem_agent.service_cli import NOT_FOUND, linux_service


def test_missing_installer_points_to_the_release_folder(tmp_path: Path) -> None:
    err = io.StringIO()
    code = linux_service("install", None, False, io.StringIO(), err, places=[tmp_path])
    assert code == NOT_FOUND
    assert "install.sh was not found next to this program" in err.getvalue()
    assert "sudo ./install.sh" in err.getvalue()


def test_found_installer_runs_with_root_and_purge(tmp_path: Path) -> None:
    script = tmp_path / "uninstall.sh"
    record = tmp_path / "args"
    script.write_text(f'printf "%s\\n" "$@" > "{record}"\nexit 3\n')
    code = linux_service("uninstall", "/tmp/image", True, io.StringIO(), io.StringIO(),
                         places=[tmp_path])
    assert code == 3  # the script's own exit code
    assert record.read_text().split() == ["--root", "/tmp/image", "--purge"]


def test_service_run_is_for_windows_only() -> None:
    err = io.StringIO()
    assert main(["service", "run"], env={}, stdout=io.StringIO(), stderr=err) == 64
    assert "Windows" in err.getvalue() and "totem-agent run" in err.getvalue()
