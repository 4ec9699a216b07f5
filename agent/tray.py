"""`totem-agent tray`: an icon in the user's session that follows the agent's /health.

The agent runs as a service; the tray is a separate process that polls it over
HTTP (docs/status-page.md). pystray is imported only here, lazily, so the agent
never needs a display or the `tray` extra. What is shown is decided by the pure
functions of `tray_model`; this module polls, draws, and runs the menu actions:
"Open status page", "Copy diagnostics", "Quit tray".

pystray picks its backend itself (PYSTRAY_BACKEND=xorg|gtk|appindicator forces
one). The xorg backend has no menu and no notifications: a click opens the status
page (the default item). Every state change is logged on stderr, one line each.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from totem_agent import tray_model
from totem_agent.agent_client import CLIENT_ENV, AgentTarget, ClientError, build_target
from totem_agent.status import fetch_health

log = logging.getLogger("totem_agent.tray")

DEFAULT_INTERVAL = 5.0


@dataclass(frozen=True)
class MenuEntry:
    """One menu line: a disabled text line when `action` is None."""

    text: str
    action: Callable[[], Any] | None = None
    default: bool = False


# -- clipboard ----------------------------------------------------------------------

def clipboard_commands(env: Mapping[str, str], platform: str = sys.platform,
                       which: Callable[[str], str | None] = shutil.which
                       ) -> list[tuple[list[str], str]]:
    """Clipboard tools to try, in order, each (argv, text encoding), installed ones only."""
    candidates: list[tuple[list[str], str]] = []
    if platform == "win32":
        candidates.append((["clip"], "utf-16"))  # clip.exe reads UTF-16 with a BOM
    elif platform == "darwin":
        candidates.append((["pbcopy"], "utf-8"))
    else:
        if env.get("WAYLAND_DISPLAY"):
            candidates.append((["wl-copy"], "utf-8"))
        if env.get("DISPLAY"):
            candidates += [(["xclip", "-selection", "clipboard"], "utf-8"),
                           (["xsel", "--clipboard", "--input"], "utf-8")]
        candidates.append((["clip.exe"], "utf-16"))  # Linux under WSL
    found = []
    for argv, encoding in candidates:
        path = which(argv[0])
        if path:
            found.append(([path, *argv[1:]], encoding))
    return found


def copy_text(text: str, env: Mapping[str, str], fallback_dir: Path | None = None,
              platform: str = sys.platform,
              which: Callable[[str], str | None] = shutil.which) -> str:
    """Put `text` on the clipboard, or write it to a file; says which, for a person."""
    for argv, encoding in clipboard_commands(env, platform, which):
        try:
            # The tool may stay in the background to own the selection (xclip): its
            # output must not be a pipe we wait on.
            done = subprocess.run(argv, input=text.encode(encoding), timeout=5,
                                  env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.warning("tray: %s could not copy: %s", argv[0], err)
            continue
        if done.returncode == 0:
            return f"Diagnostics copied to the clipboard ({Path(argv[0]).name})."
        log.warning("tray: %s exited with %s", argv[0], done.returncode)
    path = save_text(text, fallback_dir)
    return f"No clipboard tool found: diagnostics saved to {path}"


def save_text(text: str, directory: Path | None = None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for folder in [directory] if directory else [Path.home(), Path(tempfile.gettempdir())]:
        target = folder / f"totem-agent-diagnostics-{stamp}.txt"
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as err:
            log.warning("tray: cannot write %s: %s", target, err)
            continue
        return target
    raise OSError("could not save the diagnostics anywhere")


# -- the tray -------------------------------------------------------------------------

class Tray:
    """Polls /health and keeps an icon, its tooltip and its menu in step."""

    def __init__(self, target: AgentTarget | str, interval: float = DEFAULT_INTERVAL,
                 timeout: float = 3.0, env: Mapping[str, str] | None = None,
                 fetch: Callable[[AgentTarget, float], dict[str, Any]] = fetch_health,
                 open_url: Callable[[str], Any] = webbrowser.open,
                 copy: Callable[[str], str] | None = None) -> None:
        # A URL alone: plain http or https with the system's CAs, no credentials.
        self.target = AgentTarget(target.rstrip("/")) if isinstance(target, str) else target
        self.url = self.target.url
        self.interval = interval
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)
        self._fetch = fetch
        self._open_url = open_url
        self._copy = copy or (lambda text: copy_text(text, self.env))
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self.state: str | None = None
        self.icon: Any = None  # pystray.Icon once run() started
        self.stopped = threading.Event()

    # -- polling ------------------------------------------------------------------------
    def poll(self) -> str:
        """Ask the agent once; returns the new state (and updates the icon if shown)."""
        try:
            self.report, self.error = self._fetch(self.target, self.timeout), None
        except (ClientError, OSError, ValueError) as err:
            self.report, self.error = None, str(getattr(err, "reason", err))
        before, after = self.state, tray_model.tray_state(self.report)
        self.state = after
        if after != before:
            log.info("tray: state %s -> %s: %s", before or "start", after,
                     tray_model.tooltip(self.report, self.url, self.error))
        self._show(before, after)
        return after

    def _show(self, before: str | None, after: str) -> None:
        icon = self.icon
        if icon is None:
            return
        title = tray_model.tooltip(self.report, self.url, self.error)
        if type(icon).__module__.endswith("_xorg"):
            # The xorg backend writes WM_NAME as Latin-1 and raises on anything else.
            title = title.encode("latin-1", "replace").decode("latin-1")
        if before != after or title != icon.title:
            icon.title = title
            icon.icon = tray_model.icon_image(after)
            # pystray's xorg backend queues the new title (WM_NAME) without flushing
            # it while its loop waits for events; a round trip from here sends it.
            display = getattr(icon, "_display", None)
            if display is not None and hasattr(display, "sync"):
                display.sync()
        if getattr(icon, "HAS_MENU", False):
            icon.update_menu()
        message = tray_model.notification(before, after, self.report, self.url)
        if message is not None and before is not None:
            self.notify(*message)

    def notify(self, title: str, message: str) -> None:
        """A desktop notification if the backend has them; never raises."""
        icon = self.icon
        if icon is None or not getattr(icon, "HAS_NOTIFICATION", False):
            return
        try:
            icon.notify(message, title)
        except Exception as err:  # no notification daemon, a D-Bus hiccup: not fatal
            log.warning("tray: could not show a notification: %s", err)

    # -- menu -----------------------------------------------------------------------------
    def menu_entries(self) -> list[MenuEntry]:
        lines = [MenuEntry(text)
                 for text in tray_model.menu_lines(self.report, self.url, self.error)]
        return [*lines,
                MenuEntry("Open status page", self.open_status_page, default=True),
                MenuEntry("Copy diagnostics", self.copy_diagnostics),
                MenuEntry("Quit tray", self.quit)]

    def open_status_page(self) -> None:
        self._open_url(self.url + "/")

    def diagnostics(self) -> str:
        return tray_model.diagnostics_text(self.report, self.url, error=self.error)

    def copy_diagnostics(self) -> str:
        try:
            said = self._copy(self.diagnostics())
        except OSError as err:
            said = f"Could not copy the diagnostics: {err}"
        log.info("tray: %s", said)
        self.notify("Kiosk monitor", said)
        return said

    def quit(self) -> None:
        self.stopped.set()
        if self.icon is not None:
            self.icon.stop()

    # -- running --------------------------------------------------------------------------
    def run(self) -> None:
        """Show the icon and poll until "Quit tray" (blocks; pystray wants the main thread)."""
        import pystray  # lazily: needs a display and the `tray` extra

        def items() -> list[Any]:
            return [pystray.MenuItem(e.text, _action(e.action), default=e.default,
                                     enabled=e.action is not None)
                    for e in self.menu_entries()]

        self.icon = pystray.Icon("totem-agent", icon=tray_model.icon_image(
            tray_model.UNREACHABLE), title="Kiosk monitor: starting",
            menu=pystray.Menu(items))
        self.icon.run(setup=self._loop)

    def _loop(self, icon: Any) -> None:
        icon.visible = True
        _enable_xorg_click(icon)
        while not self.stopped.is_set():
            try:
                self.poll()
            except Exception:  # keep the icon alive whatever one poll did
                log.exception("tray: poll failed")
            self.stopped.wait(self.interval)


def _enable_xorg_click(icon: Any) -> None:
    """pystray 0.19's xorg backend handles a left click (the default item: open the
    status page) but never asks the X server for button events; ask for them here.
    Without it the click does nothing, which is what the backend did anyway."""
    if not type(icon).__module__.endswith("_xorg"):
        return
    try:
        from Xlib import X

        icon._window.change_attributes(
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
        icon._display.sync()
    except Exception as err:  # a different pystray: keep the icon without clicks
        log.warning("tray: left click not available on this X backend: %s", err)


def _action(action: Callable[[], Any] | None) -> Callable[[Any, Any], None] | None:
    if action is None:
        return None

    def run(icon: Any, item: Any) -> None:
        action()
    return run


def tray_target(args: Any, env: Mapping[str, str], err: Any) -> AgentTarget | None:
    """The agent to follow: --url, else the config's listen and web-config; the default
    address when the config cannot be read (the tray runs as the desktop user, the
    config may be readable by the service only). None (said on `err`) when a flag or
    the password file is wrong."""
    from totem_agent.config import ConfigError, load_config

    config = None
    if not args.url:
        try:
            config = load_config(args.config, env={k: v for k, v in env.items()
                                                   if k not in CLIENT_ENV})
        except (ConfigError, OSError) as problem:
            print(f"totem-agent tray: cannot read the config ({problem}); asking the "
                  "default address (give --url to choose)", file=err)
    try:
        return build_target(args.url, config, env, user=args.user,
                            password_file=args.password_file, ca_file=args.ca_file,
                            cert_file=args.cert_file, key_file=args.key_file)
    except ClientError as problem:
        print(f"totem-agent tray: {problem}", file=err)
        return None


def run_tray(target: AgentTarget, interval: float, err: Any) -> int:
    """`totem-agent tray`: exit code 0 after "Quit tray", 4 when no tray can be shown."""
    logging.basicConfig(level=logging.INFO, stream=err,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        Tray(target, interval=max(interval, 0.2)).run()
    except ImportError as error:
        print(f"totem-agent tray: the tray needs pystray and pillow "
              f"(pip install 'totem-agent[tray]'): {error}", file=err)
        return 4
    except Exception as error:  # no display, no tray host: say so in words
        print(f"totem-agent tray: cannot show the tray icon: {error}. Is there a desktop "
              "session (DISPLAY / WAYLAND_DISPLAY)?", file=err)
        return 4
    return 0
