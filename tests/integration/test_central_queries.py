"""Every PromQL expression of central/ run against a real Prometheus fed by a real agent.

The agent watches this machine, a fake receipt printer behind a pty (paper near its
end, cover open), a PIN pad whose port node is there but whose USB ids are not plugged in, a USB
scanner that is missing and a process that runs; it ships over remote_write to a
second Prometheus (so the buffer and remote_write series exist), and gets the kiosk
application's events in two rounds (so counters have a rate). The central Prometheus runs
central/prometheus/prometheus.scrape.yml (the kiosk in a file_sd target file with its
store, instance relabelled) and loads every rule file of central/.

Then: every rule is healthy and every recording rule has a result; every panel query
(variables at "All") is accepted and returns a result, except panels build.py marks
as possibly empty (MAY_BE_EMPTY, with the reason in the panel's description); every
template variable resolves to the test's store and kiosk; every metric name central/
reads is on the agent's /metrics, or (names that only exist on hardware this machine
lacks) documented in docs/metrics.md and produced by a module of the agent.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import central
from tests.central import (
    EXTERNAL_NAMES,
    LABEL_VALUES,
    PROMETHEUS_DIR,
    load_rules,
    panel_queries,
    referenced_names,
    rule_files,
    substitute,
    variable_queries,
)
from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    agent_config,
    http_get,
    parse_metrics,
    require_binary,
)
from tests.support import collect, free_port, linux_paths, wait_until
from totem_agent.collectors import builtin_collectors

pytestmark = pytest.mark.integration

STORE = "test-store"
INSTANCE = "kiosk-test-01"
# Collectors of hardware this machine may lack (no screen, no temperature sensor in a
# VM): their names are checked by running the collector over a fixture tree.
HARDWARE_COLLECTORS = {"totem_display_": "display", "node_hwmon_": "hwmon"}


@dataclass
class Stack:
    agent: AgentProcess
    prometheus: ServerProcess
    receiver: ServerProcess

    def query(self, expr: str) -> dict[str, Any]:
        url = (f"{self.prometheus.url}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        return dict(http_get(url).json())

    def query_range(self, expr: str, seconds: int = 60) -> dict[str, Any]:
        now = float(self.query("time()")["data"]["result"][0])
        url = (f"{self.prometheus.url}/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": now - seconds, "end": now, "step": "2"}))
        return dict(http_get(url).json())

    def has(self, expr: str) -> bool:
        answer = self.query(expr)
        return answer["status"] == "success" and bool(answer["data"]["result"])


def _post_events(agent: AgentProcess, events: list[dict[str, Any]]) -> None:
    assert agent.url is not None
    request = urllib.request.Request(agent.url + "/api/v1/events", method="POST",
                                     data=json.dumps(events).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200, answer.read()


def _events(round_: int) -> list[dict[str, Any]]:
    return [
        {"type": "ticket_created", "service": "caixa"},
        {"type": "ticket_created", "service": "segunda_via"},
        {"type": "ticket_completed", "service": "caixa", "wait_seconds": 45 + 60 * round_},
        {"type": "ticket_completed", "service": "segunda_via", "wait_seconds": 200},
        {"type": "queue_length", "service": "caixa", "length": 4 + round_},
        {"type": "payment", "status": "approved", "method": "pix", "amount": 59.9},
        {"type": "payment", "status": "declined", "method": "credit", "amount": 12.5},
        {"type": "service_usage", "service": "segunda_via", "status": "ok"},
        {"type": "service_usage", "service": "caixa", "status": "ok"},
        {"type": "error", "error_type": "printer_paper_low"},
    ]


def _peripherals_toml(printer_port: str | None, pinpad_port: str | None) -> str:
    """Peripheral collectors that are registered, configured to have something to show."""
    registered = builtin_collectors()
    parts = []
    if "printer" in registered and printer_port is not None:
        parts.append(f'[[collectors.printer.printers]]\nname = "receipt"\nsource = "escpos"\n'
                     f'port = "{printer_port}"\ndialect = "epson"\n')
    if "payment" in registered and pinpad_port is not None:
        # USB ids of a PIN pad that is not plugged in ("missing"), and a port node that
        # exists and is held open by the test (as the TEF client holds the real one).
        parts.append('[[collectors.payment.devices]]\nname = "pinpad"\nvid = "079b"\n'
                     f'pid = "0028"\nport = "{pinpad_port}"\n')
    if "usb" in registered:
        parts.append('[[collectors.usb.devices]]\nrole = "scanner"\nvid = "05e0"\n'
                     'pid = "1200"\n')
    if "process" in registered:
        parts.append('[[collectors.process.processes]]\nname = "prometheus"\n'
                     'comm = "prometheus"\n')
    return "\n".join(parts)


def _central_prometheus(workdir: Path, agent_address: str) -> ServerProcess:
    """central/prometheus/prometheus.scrape.yml with the test's targets and timings."""
    binary = require_binary("prometheus")
    port = free_port()
    targets = workdir / "targets.yml"
    targets.write_text(yaml.safe_dump([{"targets": [agent_address],
                                        "labels": {"store": STORE}}]))
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.scrape.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s",
                        "evaluation_interval": "1s"}
    config["rule_files"] = [str(p) for p in rule_files()]
    del config["alerting"]
    job = config["scrape_configs"][0]
    job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "1s"}]
    # The kiosk is known by its [agent] instance name, as a DNS name would give it.
    job["relabel_configs"].append({"target_label": "instance", "replacement": INSTANCE})
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    argv = [binary, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return ServerProcess("prometheus", argv, workdir, f"http://127.0.0.1:{port}",
                         "/-/ready").start()


def _receiver(workdir: Path) -> ServerProcess:
    """A second Prometheus taking remote_write (central/prometheus/prometheus.remote-write.yml's
    storage settings)."""
    binary = require_binary("prometheus")
    port = free_port()
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.remote-write.yml").read_text())
    config.pop("alerting", None)
    config.pop("rule_files", None)
    path = workdir / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    argv = [binary, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'rw-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
            "--log.level=warn"]
    return ServerProcess("receiver", argv, workdir, f"http://127.0.0.1:{port}",
                         "/-/ready").start()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("central")
    printer = None
    try:
        from tests.fakes.escpos_printer import FakeEscposPrinter
        printer = FakeEscposPrinter("epson", paper_near_end=True, cover_open=True)
    except ImportError:
        pass
    pinpad_master, pinpad_slave = os.openpty()
    receiver = prometheus = agent = None
    try:
        receiver = _receiver(workdir)
        config = workdir / "agent.toml"
        config.write_text(agent_config(
            workdir / "state", interval="1s", agent={"instance": INSTANCE},
            extra=(f'\n[labels]\nstore = "{STORE}"\n\n[[remote_write]]\nname = "central"\n'
                   f'url = "{receiver.url}/api/v1/write"\n\n'
                   + _peripherals_toml(printer.port if printer else None,
                                       os.ttyname(pinpad_slave)))))
        agent = AgentProcess(config).start()
        assert agent.url is not None
        prometheus = _central_prometheus(workdir, agent.url.split("//", 1)[1].rstrip("/"))
        built = Stack(agent, prometheus, receiver)
        wait_until(lambda: built.has('up{job="totem"} == 1'), timeout=20,
                   message="Prometheus scraping the agent")
        # Two rounds of events, each seen by a scrape, so counters and histograms rise
        # between two samples and rate() has something to say.
        _post_events(agent, _events(0))
        wait_until(lambda: built.has('totem_ticket_wait_time_seconds_count{job="totem"}'),
                   timeout=20, message="the first round of events scraped")
        _post_events(agent, _events(1))
        wait_until(lambda: built.has(
            'rate(totem_ticket_wait_time_seconds_count{job="totem"}[1m]) > 0'
            ' and on() rate(http_request_duration_seconds_count{job="totem",'
            'handler="/api/v1/events"}[1m]) > 0'),
            timeout=20, message="the second round of events scraped")
        wait_until(lambda: built.has("totem_agent_remote_write_requests_total"),
                   timeout=20, message="a remote_write request of the agent scraped")
        yield built
    finally:
        for server in (prometheus, agent, receiver):
            if server is not None:
                server.stop()
        if printer is not None:
            printer.close()
        os.close(pinpad_slave)
        os.close(pinpad_master)


def _problem(answer: dict[str, Any]) -> str | None:
    if answer.get("status") != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}"
    return None


def test_every_rule_loads_and_evaluates_cleanly(stack: Stack) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups = http_get(stack.prometheus.url + "/api/v1/rules").json()["data"]["groups"]
        rules: list[dict[str, Any]] = [r for g in groups for r in g["rules"]]
        # A rule not evaluated yet shows the zero time, 0001-01-01T00:00:00Z.
        return rules if all(not r["lastEvaluation"].startswith("0001") for r in rules) else []

    rules = wait_until(evaluated, timeout=20, message="every rule evaluated once")
    assert len(rules) == len(load_rules())
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"]
    assert not broken, broken


def test_every_recording_rule_has_a_result(stack: Stack) -> None:
    recorded = sorted({r.name for r in load_rules() if r.kind == "record"})
    missing: list[str] = []

    def all_there() -> bool:
        missing[:] = [name for name in recorded if not stack.has(name)]
        return not missing

    try:
        wait_until(all_there, timeout=20, message="a series for every recording rule")
    except AssertionError as err:
        raise AssertionError(f"{err}: {missing}") from None


def test_every_alert_expression_runs(stack: Stack) -> None:
    problems = []
    for rule in load_rules():
        problem = _problem(stack.query(rule.expr))
        if problem:
            problems.append(f"{rule.where()}: {problem}")
    assert not problems, "\n".join(problems)


def test_every_panel_query_returns_data(stack: Stack, integration_report: list[str]) -> None:
    build = central.load_build_module()
    build.build_all()  # fills MAY_BE_EMPTY
    allowed: dict[tuple[str, str], str] = build.MAY_BE_EMPTY
    problems, empty_allowed = [], []
    queries = panel_queries()
    for query in queries:
        expr = substitute(query.expr)
        answer = stack.query(expr) if query.instant else stack.query_range(expr)
        problem = _problem(answer)
        if problem:
            problems.append(f"{query.where()}: {problem}\n    {expr}")
        elif not answer["data"]["result"]:
            reason = allowed.get((query.dashboard, query.panel))
            if reason is None:
                problems.append(f"{query.where()}: no data\n    {expr}")
            else:
                empty_allowed.append(f"{query.where()} (empty when {reason})")
    integration_report.append(f"central dashboards: {len(queries)} panel queries run, "
                              f"{len(empty_allowed)} empty where allowed:")
    integration_report.extend("  " + line for line in empty_allowed)
    assert not problems, "\n".join(problems)


def test_template_variables_resolve(stack: Stack) -> None:
    for board, name, query in variable_queries():
        match = LABEL_VALUES.match(query)
        assert match, f"dashboard {board}, variable {name}: not label_values(): {query}"
        url = (f"{stack.prometheus.url}/api/v1/label/{match['label']}/values?"
               + urllib.parse.urlencode({"match[]": substitute(match["match"])}))
        values = http_get(url).json()["data"]
        expected = {"store": STORE, "instance": INSTANCE}[name]
        assert values == [expected], f"dashboard {board}, variable {name}: {values}"


def _hardware_names(workdir: Path) -> set[str]:
    """Sample names of the hardware collectors run over fixture trees: node_exporter's
    sysfs fixture (hwmon chips) and a DRM connector with a screen."""
    drm = workdir / "sys" / "class" / "drm" / "card0-HDMI-A-1"
    drm.mkdir(parents=True)
    (drm / "status").write_text("connected\n")
    (drm / "enabled").write_text("enabled\n")
    registered = builtin_collectors()
    names = set()
    for paths, collector in ((linux_paths(), "hwmon"),
                             (linux_paths(workdir), "display")):
        families = collect(registered[collector], paths).values()
        names |= {sample.name for family in families for sample in family.samples}
    return names


def test_every_metric_central_reads_is_produced(stack: Stack, tmp_path: Path,
                                                integration_report: list[str]) -> None:
    """No rule or panel reads a name nobody produces: each is on the running agent's
    /metrics, comes from Prometheus or the Pushgateway (EXTERNAL_NAMES), or, for
    hardware this machine may lack, comes out of its collector run over a fixture tree.
    (tests/unit/test_central.py checks each is documented in docs/metrics.md.)"""
    exposed = {sample.name for family in parse_metrics(stack.agent.metrics_text()).values()
               for sample in family.samples}
    hardware = _hardware_names(tmp_path)
    how: dict[str, list[str]] = {"the running agent's /metrics": [], "Prometheus/Pushgateway": [],
                                 "a hardware collector over a fixture tree": []}
    problems = []
    for name, where in sorted(referenced_names().items()):
        if name in exposed:
            how["the running agent's /metrics"].append(name)
        elif name in EXTERNAL_NAMES:
            how["Prometheus/Pushgateway"].append(f"{name} ({EXTERNAL_NAMES[name]})")
        elif name.startswith(tuple(HARDWARE_COLLECTORS)) and name in hardware:
            how["a hardware collector over a fixture tree"].append(name)
        else:
            problems.append(f"{name}: not on the agent's /metrics (read by {where[0]})")
    for kind, names in how.items():
        integration_report.append(f"central metric names via {kind}: {len(names)}: "
                                  + ", ".join(names))
    assert not problems, "\n".join(problems)
