"""The single-file binary: built once per session with installer/build-binary.sh
(PyInstaller, ~20 s), then run the way a technician would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.servers import AgentProcess, agent_config, clean_env, terminate
from tests.integration.test_tray_xvfb import icon_window, x
from tests.integration.test_tray_xvfb import x_display as xvfb_display  # noqa: F401 (a fixture)
from tests.support import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def build_binary(directory: Path) -> Path:
    """installer/build-binary.sh into `directory`; the binary's path."""
    if not (VENV_BIN / "pyinstaller").exists() and shutil.which("pyinstaller") is None:
        pytest.skip("PyInstaller is not installed: .venv/bin/pip install 'pyinstaller>=6' "
                    "(part of the test extra; scripts/bootstrap-venv test installs it)")
    result = subprocess.run([str(REPO / "installer" / "build-binary.sh"),
                             "--dist", str(directory / "dist"),
                             "--work", str(directory / "work")],
                            capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    binary = directory / "dist" / "totem-agent"
    assert binary.is_file()
    return binary


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield build_binary(tmp_path_factory.mktemp("binary"))


def run(binary: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run from an unrelated directory: the binary must not lean on the checkout.
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL)


def test_version(binary: Path, tmp_path: Path) -> None:
    result = run(binary, "version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("totem-agent 0.") and "Python 3." in result.stdout


def test_check_config_accepts_the_example_and_names_a_bad_key(binary: Path,
                                                              tmp_path: Path) -> None:
    example = REPO / "installer" / "config.example.toml"
    result = run(binary, "check-config", "--config", str(example), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[agent]\ninterval = "often"\n')
    result = run(binary, "check-config", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 78
    assert f"{bad}: agent.interval:" in result.stderr


def test_collect_once_prints_node_exporter_metrics(binary: Path, tmp_path: Path) -> None:
    result = run(binary, "collect", "--once", "--collector", "loadavg",
                 "--collector", "meminfo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "node_load1 " in result.stdout
    assert "node_memory_MemAvailable_bytes " in result.stdout


def test_run_serves_metrics_and_stops_cleanly(binary: Path, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s",
                                   only=["loadavg", "cpu", "meminfo"]))
    agent = AgentProcess(config)
    agent.argv[0] = str(binary)
    agent.start()
    try:
        text = agent.metrics_text()
        assert "node_load1 " in text
        assert 'totem_agent_collector_success{collector="cpu"} 1.0' in text
        assert agent.health()[0] == 200
        # The status page's files are package data: they must be inside the binary.
        css = agent.get("/static/status.css")
        assert css.status == 200 and css.body, css.status
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()
    assert (tmp_path / "state" / "buffer.sqlite").is_file()


def test_the_service_binary_carries_no_gui_toolkit(binary: Path) -> None:
    viewer = VENV_BIN / "pyi-archive_viewer"
    result = subprocess.run([str(viewer), "--list", "--recursive", "--brief", str(binary)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    names = {line.strip() for line in result.stdout.splitlines()}
    assert "totem_agent.collectors.cpu" in names
    assert "totem_agent.scheduler" in names
    gui = sorted(n for n in names if n.split(".")[0] in ("pystray", "PIL", "Xlib", "tkinter"))
    assert not gui, f"GUI modules in the service binary: {gui[:10]}"


def tray_binary(binary: Path) -> Path:
    """dist/totem-agent-tray, built beside the agent when the venv has the tray extra."""
    import importlib.util

    tray = binary.parent / "totem-agent-tray"
    if importlib.util.find_spec("pystray") is None:
        pytest.skip("pystray is not installed, so no tray binary was built "
                    "(pip install 'totem-agent[tray]'; the test extra has it)")
    assert tray.is_file(), "the venv has pystray but build-binary.sh built no tray binary"
    return tray


def test_the_tray_binary_docks_an_icon_that_follows_the_agent(
        binary: Path, tmp_path: Path, xvfb_display: str,  # noqa: F811 (the fixture)
        start_agent: Callable[..., AgentProcess]) -> None:
    """What the XDG autostart entry starts at a desktop login: the tray binary alone
    (no venv, no pip), under Xvfb with trayer, pointed at a running agent."""
    tray = tray_binary(binary)
    agent = start_agent(agent_config(tmp_path / "state", interval="1s", only=["loadavg"],
                                     agent={"instance": "kiosk-tray-bin"}))
    log_path = tmp_path / "tray.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(tray), "--url", str(agent.url), "--interval", "0.3"],
                                env={**clean_env(), "DISPLAY": xvfb_display}, cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        window = wait_until(lambda: icon_window(xvfb_display), timeout=30,
                            message="the tray binary's icon window")
        # The tooltip names the agent's instance: the tray read the agent's /health.
        wait_until(lambda: x(xvfb_display, "xdotool", "getwindowname", window)
                   .startswith("Kiosk kiosk-tray-bin: "),
                   timeout=15, message="the icon's tooltip to show the agent's state")
    except AssertionError as err:
        shown = x(xvfb_display, "xdotool", "search", "--classname", "totem-agent",
                  "getwindowname")
        raise AssertionError(f"{err}; tooltip {shown!r}\ntray log:\n{log_path.read_text()}"
                             ) from None
    finally:
        terminate(proc)


def test_binary_installs_itself_as_a_service_into_a_root(binary: Path, tmp_path: Path) -> None:
    """The release folder end to end: `totem-agent service install --root DIR` runs
    the install.sh beside the binary, which installs this very binary; the
    installed program then accepts the installed config, and the installed unit
    passes systemd-analyze verify."""
    from tests.integration.test_installer import system_root, verify_unit

    if os.geteuid() != 0:
        pytest.skip("install.sh creates users and chowns files: run as root")
    root = system_root(tmp_path / "root")
    result = run(binary, "service", "install", "--root", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = root / "usr/bin/totem-agent"
    assert installed.read_bytes() == binary.read_bytes()
    check = run(installed, "check-config", "--config", str(root / "etc/totem-agent/config.toml"),
                cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    verified = verify_unit(root)
    assert verified.returncode == 0 and not (verified.stdout + verified.stderr).strip(), \
        verified.stdout + verified.stderr
    tray = binary.parent / "totem-agent-tray"
    if tray.exists():  # the release's tray comes along, with its autostart entry
        assert (root / "usr/bin/totem-agent-tray").read_bytes() == tray.read_bytes()
        assert "Exec=/usr/bin/totem-agent-tray" in \
            (root / "etc/xdg/autostart/totem-agent-tray.desktop").read_text()
    removed = run(binary, "service", "uninstall", "--root", str(root), cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert not installed.exists() and (root / "etc/totem-agent/config.toml").exists()


def test_deb_package_unpacks_the_same_files_as_install_sh(binary: Path, tmp_path: Path) -> None:
    """installer/build-deb.sh, then `dpkg --root` unpacks it into an empty root
    (maintainer scripts are not run there: they need the real system)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (Debian package 'dpkg')")
    out = tmp_path / "out"
    built = subprocess.run([str(REPO / "installer" / "build-deb.sh"), "--fast", "--out",
                            str(out), str(binary)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    (deb,) = out.glob("totem-agent_*.deb")
    fields = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "Package: totem-agent" in fields and "adduser" in fields
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").touch()
    unpacked = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless",
                               "--force-not-root", "--no-triggers", "--unpack", str(deb)],
                              capture_output=True, text=True, timeout=120)
    assert unpacked.returncode == 0, unpacked.stdout + unpacked.stderr
    assert (root / "usr/bin/totem-agent").read_bytes() == binary.read_bytes()
    assert ((root / "usr/lib/systemd/system/totem-agent.service").read_bytes()
            == (REPO / "service_units/totem-agent.service").read_bytes())
    assert (root / "usr/lib/udev/rules.d/60-totem-agent.rules").is_file()
    tray = binary.parent / "totem-agent-tray"
    if tray.exists():
        assert (root / "usr/bin/totem-agent-tray").read_bytes() == tray.read_bytes()
    conffiles = (root / "var/lib/dpkg/info/totem-agent.conffiles").read_text().split()
    assert "/etc/totem-agent/config.toml" in conffiles  # kept and asked about on upgrade
    if tray.exists():  # a conffile too: unpacked as .dpkg-new until configured
        assert "/etc/xdg/autostart/totem-agent-tray.desktop" in conffiles
