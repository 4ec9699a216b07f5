"""`totem-agent service install|uninstall|run`: the installer of the current platform.

Linux: runs install.sh / uninstall.sh found next to the program (a release folder
or dist/ of installer/build-binary.sh) or in the source checkout's installer/;
Windows: registers the service through agent/winservice.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

# Exit code when no installer can be found (the CLI's ExitStatus.ERROR).
NOT_FOUND = 4


def find_script(name: str, places: Sequence[Path]) -> Path | None:
    for place in places:
        if (place / name).is_file():
            return place / name
    return None


def script_places() -> list[Path]:
    """Where install.sh may be: beside the binary (frozen), beside the command, or the
    source checkout's installer/ (an editable install)."""
    places = [Path(sys.executable).resolve().parent] if getattr(sys, "frozen", False) else []
    places.append(Path(sys.argv[0]).resolve().parent)
    places.append(Path(__file__).resolve().parent.parent / "installer")
    return places


def linux_service(action: str, root: str | None, purge: bool, out: TextIO, err: TextIO,
                  places: Sequence[Path] | None = None) -> int:
    script = find_script(f"{action}.sh", script_places() if places is None else places)
    if script is None:
        print(f"totem-agent: {action}.sh was not found next to this program. Run it from the "
              f"release folder instead: sudo ./{action}.sh (docs/install.md)", file=err)
        return NOT_FOUND
    argv = ["sh", str(script)]
    if root:
        argv += ["--root", root]
    if action == "install" and getattr(sys, "frozen", False):
        argv += ["--binary", sys.executable]  # install this very binary
    if purge:
        argv.append("--purge")
    out.flush()
    return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode


def service_command(action: str, root: str | None, purge: bool, config: str | None,
                    env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    if sys.platform == "win32":
        from totem_agent import winservice
        from totem_agent._win32 import PyWin32

        layer = PyWin32()
        if action == "install":
            example = find_script("config.example.toml", script_places())
            return winservice.install(layer, sys.executable, example, out)
        if action == "uninstall":
            return winservice.uninstall(layer, purge, out)
        return winservice.run_service(layer, config, env)
    if action == "run":
        print("totem-agent: `service run` is what Windows' service manager starts; on "
              "Linux systemd runs `totem-agent run` (service_units/totem-agent.service)",
              file=err)
        return 64
    return linux_service(action, root, purge, out, err)
