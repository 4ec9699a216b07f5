"""Entry point of the `totem-agent-tray` binary (installer/totem-agent.spec): the tray
icon alone, `totem-agent tray` with the same options. A separate binary so that the
service binary carries no GUI toolkit (docs/install.md)."""

import sys

from totem_agent.cli import tray_main

if __name__ == "__main__":
    sys.exit(tray_main())
