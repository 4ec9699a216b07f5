"""A default `totem-agent run` does not import what it does not use.

Every module imported stays mapped for the life of the process: prometheus_client's
__init__ (http.server, urllib.request, wsgiref, inspect), hashlib (OpenSSL's
libcrypto) and ssl cost ~10 MB of RSS that a kiosk agent without TLS, a
Pushgateway or remote_write never uses (docs/benchmarks.md, "Where the memory
goes"; agent/_prometheus_client_lazy.py). An import added at the top of some module
brings them back without any other test noticing: this one does.

The agent runs in a fresh interpreter through cli.main(["run", ...]), as the
`totem-agent run` entry point does, with no config file: one collection cycle
completes and is appended to the buffer, one /metrics scrape is served (through
a raw socket, so the test's own client imports nothing), then the process stops
itself with SIGTERM and prints sys.modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.servers import clean_env
from tests.support import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Never imported by a default `totem-agent run`.
NOT_IMPORTED = [
    "hashlib", "_hashlib",            # OpenSSL's libcrypto, ~3.6 MB (hmac, hashlib.blake2b)
    "ssl", "_ssl",                    # libssl: only for TLS (web-config, outputs' https)
    "urllib.request",                 # the Pushgateway's client, imported when configured
    "wsgiref",                        # prometheus_client.exposition's servers
    "prometheus_client.exposition",   # http.server, urllib.request, ssl, wsgiref
    "prometheus_client.metrics",      # the instrumentation API (Counter, Gauge ...)
    "prometheus_client.decorator",    # inspect
    "http.server", "http.client",     # the agent's server is its own (agent/httpd.py)
    "email",                          # http.client's headers
]
# Not listed: `inspect`. CPython's dataclasses imports it (3.11 to 3.13), and the
# agent's config and collectors are dataclasses.

CHILD = r"""
import json, os, signal, socket, sys, threading

import totem_agent.runtime as runtime
from totem_agent import cli

cycle, appended, report = threading.Event(), threading.Event(), {}
start = runtime.Agent.start


def start_and_watch(agent):
    # The agent's own hooks, chained: the first completed cycle, its first append.
    on_idle = agent.scheduler.on_idle
    agent.scheduler.on_idle = lambda: (on_idle(), cycle.set())
    if agent.recorder is not None:
        on_appended = agent.recorder.on_appended
        agent.recorder.on_appended = lambda *a: (on_appended(*a), appended.set())
    else:
        appended.set()
    start(agent)


runtime.Agent.start = start_and_watch


def scrape(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     b"Accept: application/openmetrics-text;version=1.0.0,"
                     b"text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def drive(port):
    try:
        report["cycle"] = cycle.wait(90) and appended.wait(30)
        answer = scrape(port)
        report["status"] = answer.split(b"\r\n", 1)[0].decode()
        report["served_build_info"] = b"totem_agent_build_info" in answer
    except Exception as err:
        report["error"] = repr(err)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # what stops `totem-agent run`


port = int(sys.argv[1])
threading.Thread(target=drive, args=(port,), daemon=True).start()
report["exit"] = cli.main(["run", "--listen", f"127.0.0.1:{port}"],
                          env={"TOTEM_AGENT_STATE_DIR": sys.argv[2]})
report["modules"] = sorted(sys.modules)
print(json.dumps(report))
"""


def test_a_default_run_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", CHILD, str(free_port()), str(tmp_path)],
                            capture_output=True, text=True, timeout=180, cwd=REPO,
                            env=clean_env(), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report.get("cycle") is True, report.get("error") or result.stderr[-3000:]
    assert report.get("status", "").endswith(" 200 OK"), report
    assert report["served_build_info"] and report["exit"] == 0
    modules = set(report["modules"])
    assert "totem_agent.runtime" in modules and "prometheus_client.metrics_core" in modules
    imported = [name for name in NOT_IMPORTED if name in modules]
    assert imported == [], (
        f"a default `totem-agent run` imported {imported}: find the importer with "
        "`python -X importtime` and import it where it is used")


def test_the_lazy_package_still_gives_everything_when_asked() -> None:
    """prometheus_client's own API, for code that wants it: the whole __init__ runs on
    the first attribute the lazy package does not have, into the same module."""
    code = ("import sys, totem_agent, prometheus_client.metrics_core as core\n"
            "assert 'prometheus_client.exposition' not in sys.modules\n"
            "import prometheus_client.core\n"  # metrics: `from . import values`
            "assert 'prometheus_client.exposition' not in sys.modules\n"
            "import prometheus_client\n"
            "assert prometheus_client.exposition.generate_latest\n"
            "from prometheus_client import Counter, generate_latest, REGISTRY\n"
            "assert sys.modules['prometheus_client'] is prometheus_client\n"
            "assert prometheus_client.metrics_core is core\n"
            "Counter('lazy_checks', 'Checks.').inc()\n"
            "print(generate_latest(REGISTRY).decode())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=REPO, env=clean_env(), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "lazy_checks_total 1.0" in result.stdout
