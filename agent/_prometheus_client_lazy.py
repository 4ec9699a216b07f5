"""Import prometheus_client's submodules without running its package __init__.

The agent uses a few light submodules of prometheus_client (metrics_core,
samples, validation, registry, process_collector, utils, parser,
openmetrics.exposition). But `import prometheus_client.metrics_core` first runs
prometheus_client/__init__.py, which imports every submodule: exposition
(http.server, urllib.request -> hashlib -> libcrypto, wsgiref, ssl), metrics
(context_managers -> decorator -> inspect), gc and platform collectors. That was
+10.6 MB of RSS in a running agent whose RSS target is 1.5 x node_exporter's,
for code the agent never runs (docs/benchmarks.md, "Where the memory goes").

`install()` (called from totem_agent/__init__.py, so before anything of the agent
imports prometheus_client) puts an empty package module for `prometheus_client`
in sys.modules: its spec and __path__ are the real package's, so Python imports
submodules from it as usual, but __init__ has not run. The first attribute the
package itself does not have (`from prometheus_client import Counter`,
`prometheus_client.REGISTRY`) runs the real __init__ into that same module
object (PEP 562 module __getattr__), so any code that wants the whole package
still gets it, and pays its memory only then.

Nothing is done when prometheus_client is already imported (a test runner, a
program embedding the agent) or when its spec is not an ordinary package (an
unusual importer): the normal import then happens, as before. PyInstaller's
frozen importer (6.x) gives an ordinary spec and loader, so the binary is lazy too.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

NAME = "prometheus_client"
# Dunder names other code probes for (copy, pickle, typing, doctest...): answering
# them must not load the whole package. __all__ is the exception: `import *` needs it.
_PROBES_LOAD = frozenset({"__all__"})


def install() -> ModuleType | None:
    """Register the lazy package; the module, or None when the normal import applies."""
    if NAME in sys.modules:
        return None
    try:
        spec = importlib.util.find_spec(NAME)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.loader is None or not spec.submodule_search_locations \
            or not hasattr(spec.loader, "exec_module"):
        return None
    module = importlib.util.module_from_spec(spec)  # sets __spec__, __path__, __file__
    loader = spec.loader
    lock = threading.RLock()
    state = {"loading": False}

    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in _PROBES_LOAD:
            raise AttributeError(f"module {NAME!r} has no attribute {name!r}")
        # A submodule (`from . import values` in prometheus_client.metrics, or
        # `prometheus_client.exposition` after `import prometheus_client`) is just
        # imported: the package's __init__ is not needed for it, and running that
        # __init__ from inside a half-imported submodule would be a circular import.
        try:
            submodule = importlib.util.find_spec(f"{NAME}.{name}")
        except (ImportError, ValueError):
            submodule = None
        if submodule is not None:
            return importlib.import_module(f"{NAME}.{name}")
        with lock:
            # Once only. Reentrant: a name asked for while __init__ runs in this thread
            # (not defined yet) gets AttributeError rather than a second __init__;
            # another thread waits here until __init__ is done.
            if not state["loading"]:
                state["loading"] = True
                try:
                    loader.exec_module(module)
                finally:
                    # Whatever happened, later misses are plain AttributeErrors.
                    module.__dict__.pop("__getattr__", None)
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {NAME!r} has no attribute {name!r}") from None

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[NAME] = module
    return module
