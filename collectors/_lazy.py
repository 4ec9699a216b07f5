"""Modules imported on first use, for what only some kiosks need.

pyserial costs the agent 1.2 MB of RSS, paid at start-up by every kiosk whether or
not a serial printer or PIN pad is configured (the collector modules are imported
to validate the config). `lazy_module("serial")` returns the module object at once
and runs its code on the first attribute access (importlib's LazyLoader).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """`name`, imported now if it already is, else on first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
