"""The built-in collectors, registered explicitly (no folder scanning).

Add a collector: write its module, then list its class in `builtin_collectors`.
"""

from __future__ import annotations

import sys

from totem_agent.collectors.base import Collector


def builtin_collectors() -> dict[str, type[Collector]]:
    """Every built-in collector class by name, in a stable order."""
    from totem_agent.collectors import loadavg

    classes: list[type[Collector]] = [
        loadavg.LoadavgCollector,
    ]
    return {cls.name: cls for cls in classes}


def runs_here(cls: type[Collector], platform: str = sys.platform) -> bool:
    """Whether a collector class supports this platform ("linux" covers linux2 etc.)."""
    return any(platform.startswith(p) for p in cls.platforms)
