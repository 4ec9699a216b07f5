"""The tray: health -> colour, tooltip, menu, notification and diagnostics (pure), and the
Tray polling a real HTTP server on loopback, with its menu actions called directly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from totem_agent import tray_model
from totem_agent.tray import Tray, clipboard_commands, copy_text

NOW = datetime(2026, 11, 23, 10, 41, 35, tzinfo=UTC)


def report(status: str = "ok", **checks: dict[str, Any]) -> dict[str, Any]:
    base = {"collector:cpu": {"kind": "collector", "status": "ok", "message": "",
                              "since": "2026-11-23T09:39:30Z", "last_error": None}}
    base.update(checks)
    return {"status": status, "instance": "sp-0042-totem-03",
            "labels": {"store": "sp-0042", "region": "sudeste"}, "version": "0.1.0",
            "started_at": "2026-11-23T09:39:30Z", "uptime_seconds": 3725.1,
            "time": "2026-11-23T10:41:35Z", "checks": base}


PAPER_OUT = {"kind": "peripheral", "status": "failing", "message": "Receipt printer: paper out",
             "since": "2026-11-23T10:02:11Z", "last_error": "paper out",
             "last_error_at": "2026-11-23T10:41:30Z"}
HWMON = {"kind": "collector", "status": "degraded", "message": "",
         "since": "2026-11-23T10:30:00Z",
         "last_error": "[Errno 5] Input/output error: '/sys/class/hwmon/hwmon0/temp1_input'",
         "last_error_at": "2026-11-23T10:41:30Z"}


def degraded() -> dict[str, Any]:
    return report("degraded", **{"printer:front": PAPER_OUT, "collector:hwmon": HWMON})


# -- pure mapping -------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "state"), [
    (report("ok"), "ok"), (report("degraded"), "degraded"), (report("failing"), "failing"),
    (None, "unreachable"), ({"status": "nonsense"}, "unreachable"), ({}, "unreachable")])
def test_state_from_health(given: dict[str, Any] | None, state: str) -> None:
    assert tray_model.tray_state(given) == state


def test_colours_are_green_amber_red_grey() -> None:
    r, g, b = tray_model.COLOURS["ok"]
    assert g > r and g > b
    r, g, b = tray_model.COLOURS["degraded"]
    assert r > b and g > b and r >= g  # amber: red and green, no blue
    r, g, b = tray_model.COLOURS["failing"]
    assert r > 2 * g and r > 2 * b
    r, g, b = tray_model.COLOURS["unreachable"]
    assert r == g == b


def test_icon_image_is_the_state_colour_with_a_mark() -> None:
    for state in tray_model.STATES:
        image = tray_model.icon_image(state).convert("RGB")
        assert image.getpixel((12, 32)) == tray_model.COLOURS[state]  # the disc
        colours = {image.getpixel((x, y)) for x in range(16, 48) for y in range(12, 54)}
        assert (255, 255, 255) in colours  # the mark: the state is not colour alone


def test_tooltip() -> None:
    url = "http://127.0.0.1:10084"
    assert tray_model.tooltip(report(), url) == "Kiosk sp-0042-totem-03: OK"
    text = tray_model.tooltip(degraded(), url)
    assert text == ("Kiosk sp-0042-totem-03: needs attention - printer:front: Receipt printer: "
                    "paper out (+1 more)")
    assert tray_model.tooltip(None, url) == f"Kiosk monitor: agent not reachable at {url}"
    long = report("degraded", **{"collector:x": {**HWMON, "message": "y" * 500}})
    assert len(tray_model.tooltip(long, url)) == tray_model.TOOLTIP_MAX


def test_menu_lines_one_per_problem_failing_first() -> None:
    lines = tray_model.menu_lines(degraded(), "http://x")
    assert lines == ["Kiosk sp-0042-totem-03: needs attention",
                     "Failing: printer:front: Receipt printer: paper out",
                     "Degraded: collector:hwmon: [Errno 5] Input/output error: "
                     "'/sys/class/hwmon/hwmon0/temp1..."]  # cut: menus stay narrow
    assert len(lines[2]) == tray_model.MENU_LINE_MAX
    assert tray_model.menu_lines(report(), "http://x") == ["Kiosk sp-0042-totem-03: OK"]
    assert tray_model.menu_lines(None, "http://x") == ["Agent not reachable at http://x"]


def test_notification_only_when_worse() -> None:
    url = "http://x"
    assert tray_model.notification("ok", "degraded", degraded(), url) == (
        "Kiosk monitor: needs attention",
        "printer:front: Receipt printer: paper out (and 1 more)")
    assert tray_model.notification("degraded", "unreachable", None, url) == (
        "Kiosk monitor: agent not reachable",
        "The totem-agent service does not answer at http://x.")
    assert tray_model.notification("failing", "degraded", degraded(), url) is None
    assert tray_model.notification("degraded", "degraded", degraded(), url) is None
    assert tray_model.notification(None, "ok", report(), url) is None


def test_diagnostics_text() -> None:
    text = tray_model.diagnostics_text(degraded(), "http://127.0.0.1:10084", now=NOW)
    assert text == """\
totem-agent diagnostics
taken at: 2026-11-23T10:41:35Z
agent address: http://127.0.0.1:10084
instance: sp-0042-totem-03
store: sp-0042
label region: sudeste
version: 0.1.0
uptime: 1h 2m (started 2026-11-23T09:39:30Z)
kiosk clock: 2026-11-23T10:41:35Z
status: DEGRADED
checks not OK (2 of 3):
  - printer:front: Failing since 2026-11-23T10:02:11Z: Receipt printer: paper out
    last error at 2026-11-23T10:41:30Z: paper out
  - collector:hwmon: Degraded since 2026-11-23T10:30:00Z
    last error at 2026-11-23T10:41:30Z: [Errno 5] Input/output error: \
'/sys/class/hwmon/hwmon0/temp1_input'
"""
    assert "checks: all 1 OK" in tray_model.diagnostics_text(report(), "http://x", now=NOW)
    gone = tray_model.diagnostics_text(None, "http://x", now=NOW, error="Connection refused")
    assert gone.endswith("status: UNREACHABLE (the agent did not answer: Connection refused)\n")


# -- the Tray against a real HTTP server -----------------------------------------------------

class FakeAgent:
    """A loopback HTTP server answering /health with whatever report is set (503 if failing)."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = report()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(outer.report).encode()
                self.send_response(503 if outer.report["status"] == "failing" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    server = FakeAgent()
    yield server
    server.stop()


class RecordingIcon:
    """The few attributes of a pystray icon the tray sets (no display in unit tests)."""

    HAS_MENU = True
    HAS_NOTIFICATION = True

    def __init__(self, fail_notify: bool = False) -> None:
        self.title = ""
        self.icon: Any = None
        self.notes: list[tuple[str, str]] = []
        self.menu_updates = 0
        self.fail_notify = fail_notify
        self.stopped = False

    def update_menu(self) -> None:
        self.menu_updates += 1

    def notify(self, message: str, title: str) -> None:
        if self.fail_notify:
            raise RuntimeError("org.freedesktop.Notifications was not provided")
        self.notes.append((title, message))

    def stop(self) -> None:
        self.stopped = True


def test_tray_follows_health_and_notifies_once_per_worse_change(agent: FakeAgent) -> None:
    tray = Tray(agent.url, timeout=2)
    tray.icon = icon = RecordingIcon()
    assert tray.poll() == "ok"
    assert icon.title == "Kiosk sp-0042-totem-03: OK" and icon.notes == []
    agent.report = degraded()
    assert tray.poll() == "degraded"
    assert tray.poll() == "degraded"  # no second notification for the same state
    assert icon.notes == [("Kiosk monitor: needs attention",
                           "printer:front: Receipt printer: paper out (and 1 more)")]
    assert icon.icon.convert("RGB").getpixel((12, 32)) == tray_model.COLOURS["degraded"]
    agent.report = report("failing", collectors={"kind": "agent", "status": "failing",
                                                 "message": "every collector is failing"})
    assert tray.poll() == "failing"  # a 503 still carries the report
    agent.report = report()
    assert tray.poll() == "ok"
    agent.stop()
    assert tray.poll() == "unreachable"
    assert icon.icon.convert("RGB").getpixel((12, 32)) == tray_model.COLOURS["unreachable"]
    assert [title for title, _ in icon.notes] == [
        "Kiosk monitor: needs attention", "Kiosk monitor: FAILING",
        "Kiosk monitor: agent not reachable"]
    assert tray.menu_entries()[0].text.startswith("Agent not reachable at http://127.0.0.1:")


def test_notification_failure_never_raises(agent: FakeAgent) -> None:
    tray = Tray(agent.url, timeout=2)
    tray.icon = RecordingIcon(fail_notify=True)
    tray.poll()
    agent.report = degraded()
    assert tray.poll() == "degraded"


def test_menu_and_its_actions(agent: FakeAgent, tmp_path: Path) -> None:
    opened: list[str] = []
    agent.report = degraded()
    tray = Tray(agent.url + "/", timeout=2, open_url=opened.append,
                copy=lambda text: copy_text(text, {}, fallback_dir=tmp_path, platform="linux"))
    tray.icon = icon = RecordingIcon()
    tray.poll()
    entries = tray.menu_entries()
    texts = [e.text for e in entries]
    assert texts == ["Kiosk sp-0042-totem-03: needs attention",
                     "Failing: printer:front: Receipt printer: paper out",
                     texts[2], "Open status page", "Copy diagnostics", "Quit tray"]
    assert [e.action is None for e in entries] == [True, True, True, False, False, False]
    assert [e.default for e in entries] == [False, False, False, True, False, False]
    entries[3].action()  # type: ignore[misc]
    assert opened == [agent.url + "/"]
    said = entries[4].action()  # type: ignore[misc]
    saved = list(tmp_path.glob("totem-agent-diagnostics-*.txt"))
    assert said == f"No clipboard tool found: diagnostics saved to {saved[0]}"
    content = saved[0].read_text()
    assert "instance: sp-0042-totem-03" in content
    assert "printer:front: Failing since 2026-11-23T10:02:11Z: Receipt printer: paper out" \
        in content
    assert icon.notes[-1] == ("Kiosk monitor", said)
    entries[5].action()  # type: ignore[misc]
    assert tray.stopped.is_set() and icon.stopped


def test_clipboard_tool_per_platform() -> None:
    everything = {"xclip": "/usr/bin/xclip", "xsel": "/usr/bin/xsel",
                  "wl-copy": "/usr/bin/wl-copy", "clip": "C:/Windows/System32/clip.exe",
                  "clip.exe": "/mnt/c/Windows/System32/clip.exe", "pbcopy": "/usr/bin/pbcopy"}
    which = everything.get
    assert clipboard_commands({"WAYLAND_DISPLAY": "wayland-0"}, "linux", which)[0] == (
        ["/usr/bin/wl-copy"], "utf-8")
    assert [argv[0] for argv, _ in clipboard_commands({"DISPLAY": ":0"}, "linux", which)] == [
        "/usr/bin/xclip", "/usr/bin/xsel", "/mnt/c/Windows/System32/clip.exe"]
    assert clipboard_commands({}, "win32", which) == [(["C:/Windows/System32/clip.exe"],
                                                       "utf-16")]
    assert clipboard_commands({"DISPLAY": ":0"}, "linux", lambda name: None) == []


def test_tray_target_from_config_or_the_default(tmp_path: Path) -> None:
    import argparse
    import io

    from totem_agent.tray import tray_target

    def args(config: Path, **given: str) -> argparse.Namespace:
        flags = {"url": None, "user": None, "password_file": None, "ca_file": None,
                 "cert_file": None, "key_file": None, **given}
        return argparse.Namespace(config=str(config), **flags)

    good = tmp_path / "good.toml"
    good.write_text('[agent]\nlisten = "127.0.0.1:19999"\n')
    target = tray_target(args(good), {}, io.StringIO())
    assert target is not None and target.url == "http://127.0.0.1:19999"
    # The credentials come from the environment, which the config loader must not see.
    target = tray_target(args(good), {"TOTEM_AGENT_USER": "tech",
                                      "TOTEM_AGENT_PASSWORD": "pw"}, io.StringIO())
    assert target is not None and (target.user, target.password) == ("tech", "pw")
    assert "pw" not in repr(target)
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent]\nlisten = 12\n")
    said = io.StringIO()
    target = tray_target(args(bad), {}, said)
    assert target is not None and target.url == "http://127.0.0.1:10084"
    assert "cannot read the config" in said.getvalue() and "bad.toml" in said.getvalue()
    said = io.StringIO()
    assert tray_target(args(good), {"TOTEM_AGENT_USER": "tech"}, said) is None
    assert "no password" in said.getvalue() and "TOTEM_AGENT_PASSWORD" in said.getvalue()


def test_desktop_entry_starts_the_tray() -> None:
    import configparser

    entry = Path(__file__).resolve().parents[2] / "service_units" / "totem-agent-tray.desktop"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(entry)
    desktop = parser["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"] == "/usr/bin/totem-agent-tray"  # the tray binary (installer/)
    assert desktop["Terminal"] == "false"


def test_the_agent_never_imports_pystray() -> None:
    import subprocess
    import sys

    code = ("import sys, totem_agent.runtime, totem_agent.cli, totem_agent.tray, "
            "totem_agent.status_page\n"
            "print(sorted(m for m in ('pystray', 'PIL', 'Xlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
