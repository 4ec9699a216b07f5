"""Where totem-agent's time and memory go: the profile half of the benchmark.

Used by bench_node_exporter.py; also runnable alone:

    .venv/bin/python tests/bench/profile_agent.py [--cycles 100]

Time: the enabled collectors' collect() called in this thread for N cycles (so
cProfile sees them; the scheduler runs them on its lane thread, which cProfile
does not follow), timed per collector, then profiled; Scheduler.run_once() for
the same N cycles to show what the threads add; an uncached /metrics render
and a cached one.

Memory: a fresh interpreter imports what `totem-agent run` imports, step by
step, printing its RSS after each step, then builds and starts the Agent; a
second one does the same under tracemalloc to attribute Python allocations to
packages; a third prints `-X importtime`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
                     "application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


# -- time ----------------------------------------------------------------------------
def _where(filename: str) -> str:
    """A short name for the code a profiled function lives in."""
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.rsplit("/site-packages/", 1)[1]
    if path.startswith(f"{REPO}/"):
        return path[len(str(REPO)) + 1:]   # agent/..., collectors/...
    stdlib = sysconfig.get_paths()["stdlib"]
    if path.startswith(f"{stdlib}/"):
        return "stdlib:" + path[len(stdlib) + 1:]
    return path


def _area(filename: str) -> str:
    """Group a function's own time by package or module: collectors by module."""
    where = _where(filename)
    if where.startswith("collectors/"):
        return where.removesuffix(".py")
    if where.startswith("agent/"):
        return "totem_agent." + where.removeprefix("agent/").removesuffix(".py")
    if where.startswith("tests/"):
        return "the profiling loop itself"
    if where == "<string>":
        return "generated code (dataclass __init__, namedtuple _replace)"
    if where.startswith("stdlib:"):
        return "stdlib " + where.removeprefix("stdlib:").split("/")[0].removesuffix(".py")
    if where in ("~", ""):
        return "builtins (C: open, read, str, re match ...)"
    return where.split("/")[0].removesuffix(".py")


def profile_cycles(cycles: int = 100, top: int = 25) -> dict[str, Any]:
    from totem_agent.collectors.base import NoDataError
    from totem_agent.config import load_config
    from totem_agent.exposition import Exposition, SelfMetrics
    from totem_agent.runtime import collector_context
    from totem_agent.scheduler import Scheduler, add_labels

    config = load_config(None, env={})
    scheduler = Scheduler(config.enabled_collectors(), collector_context(config),
                          labels=config.labels)
    states = [s for s in scheduler.states.values() if s.collector is not None]
    outcome: dict[str, str] = {}

    def run(state: Any) -> None:
        try:
            state.families = add_labels(list(state.collector.collect()), scheduler.labels)
            outcome[state.name] = "ok"
        except NoDataError:
            outcome[state.name] = "no data"
        except Exception as err:  # shown in the table, as the scheduler would report it
            outcome[state.name] = f"error: {type(err).__name__}: {err}"

    def cycle() -> None:
        for state in states:
            run(state)

    cycle()  # first run: file handles, caches, first-time imports inside collectors
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for _ in range(cycles):
        for state in states:
            w0, c0 = time.perf_counter(), time.thread_time()
            run(state)
            per[state.name][0] += time.perf_counter() - w0
            per[state.name][1] += time.thread_time() - c0
    collectors: list[dict[str, Any]] = sorted(({"name": name, "outcome": outcome.get(name, "?"),
                          "wall_ms": w / cycles * 1000, "cpu_ms": c / cycles * 1000}
                         for name, (w, c) in per.items()), key=lambda r: -r["cpu_ms"])

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(cycles):
        cycle()
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    functions: list[dict[str, Any]] = []
    areas: dict[str, float] = defaultdict(float)
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        areas[_area(filename)] += tottime
        if func in ("cycle", "run") and filename == __file__:
            continue
        functions.append({"function": f"{_where(filename)}:{line}({func})"
                          if filename != "~" else func,
                          "calls_per_cycle": ncalls / cycles,
                          "cum_ms": cumtime / cycles * 1000, "own_ms": tottime / cycles * 1000})
    functions.sort(key=lambda f: -f["cum_ms"])
    total_own = sum(areas.values()) or 1.0
    area_rows: list[dict[str, Any]] = sorted(
        ({"area": k, "share": v / total_own, "own_ms": v / cycles * 1000}
         for k, v in areas.items()), key=lambda r: -r["share"])

    # The same cycles through the scheduler's threads: what they and the locks add.
    scheduler.run_once()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(cycles):
        scheduler.run_once()
    sched_cpu = (time.process_time() - c0) / cycles * 1000
    sched_wall = (time.perf_counter() - w0) / cycles * 1000

    exposition = Exposition(scheduler, SelfMetrics(scheduler, config.labels))
    renders = []
    for _ in range(cycles):
        exposition.invalidate()
        c0 = time.process_time()
        body, _, _ = exposition.render(PROMETHEUS_ACCEPT, None)
        renders.append(time.process_time() - c0)
    cached_n = cycles * 10
    c0 = time.process_time()
    for _ in range(cached_n):
        exposition.render(PROMETHEUS_ACCEPT, None)
    cached = (time.process_time() - c0) / cached_n
    render_profile = cProfile.Profile()
    render_profile.enable()
    for _ in range(cycles):
        exposition.invalidate()
        exposition.render(PROMETHEUS_ACCEPT, None)
    render_profile.disable()
    render_raw: dict[Any, Any] = pstats.Stats(render_profile).stats  # type: ignore[attr-defined]
    render_top = sorted(({"function": f"{_where(f)}:{ln}({fn})" if f != "~" else fn,
                          "cum_ms": ct / cycles * 1000, "own_ms": tt / cycles * 1000}
                         for (f, ln, fn), (_c, _n, tt, ct, _) in render_raw.items()),
                        key=lambda r: -r["cum_ms"])
    scheduler.stop(wait=0)
    return {
        "cycles": cycles, "collectors": collectors,
        "collect_cpu_ms": sum(r["cpu_ms"] for r in collectors),
        "collect_wall_ms": sum(r["wall_ms"] for r in collectors),
        "scheduler_cpu_ms": sched_cpu, "scheduler_wall_ms": sched_wall,
        "top": functions[:top], "areas": area_rows[:15],
        "render_ms": sum(renders) / len(renders) * 1000, "render_bytes": len(body),
        "render_cached_us": cached * 1e6, "render_top": render_top[:12],
    }


# -- memory --------------------------------------------------------------------------
# Run in a fresh interpreter: each step's RSS is read after its code runs. The stdlib
# steps come first so that each later step shows only what it adds.
_STEPS = [
    ("interpreter + site (baseline)", "pass"),
    ("stdlib the CLI needs: argparse, json, platform, signal, threading",
     "import argparse, json, platform, signal, threading"),
    ("totem_agent.cli (registers prometheus_client without running its __init__)",
     "import totem_agent.cli"),
    ("stdlib the server needs: socketserver, logging", "import socketserver, logging"),
    ("prometheus_client's submodules the agent uses: metrics_core, registry, "
     "process_collector, openmetrics.exposition",
     "import prometheus_client.metrics_core, prometheus_client.registry, "
     "prometheus_client.process_collector, prometheus_client.openmetrics.exposition"),
    ("sqlite3 (the business store)", "import sqlite3"),
    ("totem_agent.config (tomllib, options, collectors.base)", "import totem_agent.config"),
    ("collector modules (builtin_collectors())",
     "from totem_agent.collectors import builtin_collectors; builtin_collectors()"),
    ("the rest of the agent: totem_agent.runtime and what it imports",
     "import totem_agent.runtime, totem_agent.logs"),
    ("config loaded, Agent built (collectors constructed, buffer opened)",
     "from totem_agent.config import load_config\n"
     "from totem_agent.runtime import Agent\n"
     "agent = Agent(load_config(None, env={'TOTEM_AGENT_LISTEN': '127.0.0.1:0', "
     "'TOTEM_AGENT_INTERVAL': '0.5s', 'TOTEM_AGENT_STATE_DIR': STATE_DIR}))"),
    # Scraped over a raw socket: urllib or http.client would import ssl and email into
    # the process being measured, which the running agent never does.
    ("Agent started, 3 cycles, 20 scrapes",
     "import socket, time\n"
     "agent.start()\n"
     "time.sleep(1.6)\n"
     "port = agent.server.server_address[1]\n"
     "for _ in range(20):\n"
     "    s = socket.create_connection(('127.0.0.1', port))\n"
     "    s.sendall(b'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
     "    while s.recv(65536): pass\n"
     "    s.close()\n"),
]

_CHILD = r'''
import json, sys
MODE = sys.argv[1]
if MODE == "tracemalloc":
    import tracemalloc
    tracemalloc.start()
def rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    if MODE == "tracemalloc":
        out["traced"] = tracemalloc.get_traced_memory()[0] // 1024
    return out
steps = json.loads(sys.argv[2])
STATE_DIR = sys.argv[3]
for label, code in steps:
    exec(code)
    print(json.dumps({"step": label, **rss()}), flush=True)
agent.stop()
'''


def memory_steps() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("rss", "tracemalloc"):
        with tempfile.TemporaryDirectory(prefix="totem-profile-") as state_dir:
            proc = subprocess.run([str(PYTHON), "-c", _CHILD, mode, json.dumps(_STEPS),
                                   state_dir], capture_output=True, text=True, timeout=120,
                                  cwd="/")
        if proc.returncode != 0:
            raise RuntimeError(f"memory child ({mode}) failed:\n{proc.stderr[-2000:]}")
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if mode == "rss":
            out["steps"] = lines
        else:  # the Python heap each step left allocated (tracemalloc's own cost excluded)
            traced = {line["step"]: line["traced"] for line in lines}
            for step in out["steps"]:
                step["traced"] = traced.get(step["step"])
    proc = subprocess.run([str(PYTHON), "-X", "importtime", "-c",
                           "import totem_agent.cli, totem_agent.config, totem_agent.runtime, "
                           "totem_agent.logs\n"
                           "from totem_agent.collectors import builtin_collectors\n"
                           "builtin_collectors()"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    rows: list[dict[str, Any]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append({"module": name.strip(), "depth": depth, "self_ms": int(self_us) / 1000,
                     "cum_ms": int(cum_us) / 1000})
    out["import_total_ms"] = sum(r["self_ms"] for r in rows)
    out["imports_top"] = sorted((r for r in rows if r["depth"] <= 1),
                                key=lambda r: -r["cum_ms"])[:15]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args(argv)
    print(json.dumps({"time": profile_cycles(args.cycles), "memory": memory_steps()}, indent=1))
    return 0


if __name__ == "__main__":
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    sys.exit(main())
