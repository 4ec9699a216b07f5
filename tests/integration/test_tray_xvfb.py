"""`totem-agent tray` under Xvfb, docked in trayer, following a running agent.

The X server (Xvfb, on a display number it picks itself with -displayfd), the tray
host (trayer) and the agent are real; pystray runs its xorg backend. The test reads
the icon back from the screen (`import -window <id>`, imagemagick) and its tooltip
from the window's name (xdotool), while the agent goes ok -> degraded -> failing ->
unreachable: its procfs is a temp dir whose loadavg and meminfo files the test
corrupts, so its collectors fail for real. The xorg backend has no menu: a left
click runs the default item, "Open status page", through $BROWSER.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import AGENT_EXE, AgentProcess, agent_config, terminate
from tests.support import wait_until
from totem_agent.tray import copy_text
from totem_agent.tray_model import COLOURS, diagnostics_text

pytestmark = pytest.mark.integration

TOOLS = ("Xvfb", "trayer", "xdotool", "import")


@pytest.fixture
def x_display(tmp_path: Path) -> Iterator[str]:
    """DISPLAY of a fresh Xvfb with trayer docked at the top right."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (sudo apt-get install xvfb trayer xdotool "
                        "imagemagick)")
    if importlib.util.find_spec("pystray") is None:  # importing it needs a display
        pytest.skip("pystray is not installed (pip install 'totem-agent[tray]')")
    read_fd, write_fd = os.pipe()
    with open(tmp_path / "xvfb.log", "wb") as xvfb_log:
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                                 "1024x768x24", "-nolisten", "tcp"], pass_fds=(write_fd,),
                                stdout=subprocess.DEVNULL, stderr=xvfb_log)
    os.close(write_fd)
    processes: list[subprocess.Popen[Any]] = [xvfb]
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # written once the server accepts clients
        assert number, f"Xvfb did not start: {(tmp_path / 'xvfb.log').read_text()}"
        display = f":{number}"
        with open(tmp_path / "trayer.log", "wb") as trayer_log:
            trayer = subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel",
                 "--width", "200", "--heighttype", "pixel", "--height", "48", "--SetDockType",
                 "false", "--transparent", "false", "--tint", "0x303030"],
                env={**os.environ, "DISPLAY": display}, stdout=subprocess.DEVNULL,
                stderr=trayer_log)
        processes.append(trayer)
        yield display
    finally:
        for proc in reversed(processes):
            terminate(proc)


def x(display: str, *argv: str) -> str:
    done = subprocess.run(list(argv), env={**os.environ, "DISPLAY": display},
                          capture_output=True, timeout=10, check=False)
    return done.stdout.decode(errors="replace").strip() if done.returncode == 0 else ""


def icon_window(display: str) -> str | None:
    found = x(display, "xdotool", "search", "--classname", "totem-agent").split()
    return found[0] if found else None


def icon_share(display: str, window: str, colour: tuple[int, int, int]) -> float:
    """Share of the icon's pixels (as on screen) within a small distance of `colour`."""
    from PIL import Image

    png = subprocess.run(["import", "-window", window, "png:-"], capture_output=True,
                         env={**os.environ, "DISPLAY": display}, timeout=10, check=True).stdout
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = [image.getpixel((i, j)) for i in range(image.width) for j in range(image.height)]
    near = sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, colour, strict=True)) < 40)
    return near / max(len(pixels), 1)


def test_tray_follows_the_agent(tmp_path: Path, x_display: str,
                                start_agent: Callable[..., AgentProcess]) -> None:
    proc_dir = tmp_path / "proc"
    proc_dir.mkdir()
    loadavg, meminfo = proc_dir / "loadavg", proc_dir / "meminfo"
    loadavg.write_text(Path("/proc/loadavg").read_text())
    meminfo.write_text(Path("/proc/meminfo").read_text())
    config = agent_config(tmp_path / "state", interval="0.5s", only=["loadavg", "meminfo"],
                          agent={"procfs": str(proc_dir)})
    agent = start_agent(config)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    log_path = tmp_path / "tray.log"
    with open(log_path, "wb") as log:
        tray = subprocess.Popen(
            [str(AGENT_EXE), "tray", "--url", str(agent.url), "--interval", "0.3"],
            env={**os.environ, "DISPLAY": x_display, "PYSTRAY_BACKEND": "xorg",
                 "BROWSER": str(browser)},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        window = wait_until(lambda: icon_window(x_display), timeout=20,
                            message="the tray icon's window")

        def shows(state: str, words: str) -> None:
            def check() -> bool:
                name = x(x_display, "xdotool", "getwindowname", window)
                return words in name and icon_share(x_display, window, COLOURS[state]) > 0.3
            try:
                wait_until(check, timeout=15, interval=0.2,
                           message=f"the icon to turn {state} with {words!r} in its tooltip")
            except AssertionError as err:
                name = x(x_display, "xdotool", "getwindowname", window)
                raise AssertionError(f"{err}; tooltip now {name!r}; tray log:\n"
                                     f"{log_path.read_text()}") from None

        shows("ok", ": OK")
        geometry = x(x_display, "xdotool", "getwindowgeometry", window)
        assert "Geometry" in geometry  # docked with a size, inside trayer

        loadavg.write_text("garbage\n")  # one collector fails: degraded
        shows("degraded", "needs attention - collector:loadavg:")
        meminfo.write_text("garbage\n")  # every collector fails: failing
        shows("failing", "FAILING")
        loadavg.write_text(Path("/proc/loadavg").read_text())
        meminfo.write_text(Path("/proc/meminfo").read_text())
        shows("ok", ": OK")

        # A click runs the default item of the (xorg: invisible) menu.
        x(x_display, "xdotool", "mousemove", "--window", window, "5", "5", "click", "1")
        wait_until(lambda: opened.exists() and opened.read_text().strip(),
                   message="the click to open the status page")
        assert opened.read_text().strip() == f"{agent.url}/"

        agent.stop()
        shows("unreachable", "agent not reachable")
        text = log_path.read_text()
        for change in ("start -> ok", "ok -> degraded", "degraded -> failing", "failing -> ok",
                       "ok -> unreachable"):
            assert f"tray: state {change}" in text, text
        assert tray.poll() is None, f"the tray exited:\n{text}"
    finally:
        terminate(tray)


def test_copy_diagnostics_goes_to_the_x_clipboard(x_display: str, tmp_path: Path) -> None:
    if shutil.which("xclip") is None:
        pytest.skip("xclip is not installed (sudo apt-get install xclip)")
    text = diagnostics_text(None, "http://127.0.0.1:9", error="Connection refused")
    said = copy_text(text, {"DISPLAY": x_display}, fallback_dir=tmp_path)
    assert said == "Diagnostics copied to the clipboard (xclip)."
    pasted = x(x_display, "xclip", "-o", "-selection", "clipboard")
    assert pasted == text.strip()
    assert list(tmp_path.glob("totem-agent-diagnostics-*")) == []


def test_tray_without_a_display_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([str(AGENT_EXE), "tray", "--url", "http://127.0.0.1:9"], env=env,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if sys.platform != "linux":
        pytest.skip("Linux only")
    assert done.returncode == 4
    assert "cannot show the tray icon" in done.stderr and "DISPLAY" in done.stderr
