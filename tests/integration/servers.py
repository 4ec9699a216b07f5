"""Real servers for the integration tests, each on 127.0.0.1 with its data in a temp dir.

node_exporter and Prometheus come from Debian packages (`prometheus-node-exporter`,
`prometheus`, which ships promtool); the agent is this checkout's own
`totem-agent run`, started as a subprocess the way a service manager would.
Every process is started here and stopped here (terminate, then wait), with
readiness polled against a deadline; the log of each is kept for failure
messages. Never the packages' defaults: they listen on 0.0.0.0 and write to
/var/lib (../shared/research/components.md).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, wait_until
from totem_agent.collectors import builtin_collectors, runs_here

# The agent of the interpreter running the tests (.venv/bin/totem-agent on CI and here).
AGENT_EXE = Path(sys.executable).parent / "totem-agent"

DEBIAN_PACKAGE = {
    "prometheus-node-exporter": "prometheus-node-exporter",
    "node_exporter": "prometheus-node-exporter",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "pushgateway": "prometheus-pushgateway",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}
STOP_TIMEOUT = 15.0

# Debian patches two of node_exporter's defaults (see `prometheus-node-exporter --help`):
# it hides `lo` from netdev and adds run|mnt|media to the filesystem mount-point
# exclusions. The agent follows upstream node_exporter 1.5, so the reference runs
# with upstream's values, spelled out.
UPSTREAM_DEFAULTS = (
    "--collector.netdev.device-exclude=",
    "--collector.filesystem.mount-points-exclude="
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
)


def require_binary(*names: str) -> str:
    """Path of the first installed binary of `names`, or skip naming the Debian package."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    package = DEBIAN_PACKAGE.get(names[0], names[0])
    pytest.skip(f"{names[0]} is not installed: these tests need the Debian package "
                f"{package!r} (sudo apt-get install --no-install-recommends {package}; "
                "./run-tests installs it when run as root)")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without TOTEM_AGENT_* (the agent refuses unknown ones,
    and a developer's own settings must not leak into a test)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TOTEM_AGENT_") and k != "PROMETHEUS_PUSH_GATEWAY"}
    env.update(extra or {})
    return env


def terminate(proc: subprocess.Popen[Any]) -> int:
    """terminate(), wait (kill after STOP_TIMEOUT); the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@dataclass
class HttpResult:
    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None,
             context: ssl.SSLContext | None = None) -> HttpResult:
    """GET; an HTTP error status is a result (a 503 /health carries its report), a
    refused connection raises. `context`: for an https:// URL."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return HttpResult(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return HttpResult(error.code, error.read(), dict(error.headers))


def parse_metrics(text: str) -> dict[str, Metric]:
    """Families by name, as prometheus_client's text parser names them (a counter
    family without its `_total`)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A server binary on loopback; stdout and stderr go to a log file in its temp dir."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, url: str,
                 ready_path: str, context: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.context = context  # of an https:// server, for every request the test makes
        self.argv = list(argv)
        self.workdir = workdir
        self.url = url  # http://127.0.0.1:PORT
        self.ready_url = url + ready_path
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir,
                                         env=clean_env())
        try:
            state = wait_until(self._ready, timeout=timeout,
                               message=f"{self.name} to answer {self.ready_url}")
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"{err}\n{self.describe()}") from None
        if state == "exited":
            raise AssertionError(f"{self.name} exited at start-up\n{self.describe()}")
        return self

    def _ready(self) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return "exited"
        return "ready" if http_get(self.ready_url, timeout=2,
                                   context=self.context).status == 200 else None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        code = None if self.proc is None else self.proc.poll()
        return (f"--- {self.name}: {' '.join(self.argv)} (exit code {code}); log tail:\n"
                f"{_tail(self.log_text())}")

    def stop(self) -> int | None:
        return None if self.proc is None else terminate(self.proc)


def start_node_exporter(workdir: Path, textfile_dir: Path) -> ServerProcess:
    binary = require_binary("prometheus-node-exporter", "node_exporter")
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            f"--collector.textfile.directory={textfile_dir}", *UPSTREAM_DEFAULTS]
    return ServerProcess("node_exporter", argv, workdir, f"http://127.0.0.1:{port}",
                         "/metrics").start()


def start_prometheus(workdir: Path, targets: Mapping[str, str],
                     scrape_interval: str = "1s",
                     honor_labels: Iterable[str] = (),
                     job_options: Mapping[str, Mapping[str, Any]] | None = None
                     ) -> ServerProcess:
    """Prometheus scraping each job's host:port; config and TSDB in `workdir`.
    Jobs in `honor_labels` keep the scraped job/instance (as for a Pushgateway);
    `job_options`: more scrape-config keys of a job (scheme, tls_config, basic_auth)."""
    honoured = set(honor_labels)
    options = job_options or {}
    binary = require_binary("prometheus")
    port = free_port()
    jobs = "\n".join(
        f"  - job_name: {json.dumps(job)}\n"
        f"    static_configs: [{{targets: [{json.dumps(target)}]}}]"
        + ("\n    honor_labels: true" if job in honoured else "")
        + "".join(f"\n    {key}: {json.dumps(value)}"
                  for key, value in options.get(job, {}).items())
        for job, target in targets.items())
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {scrape_interval}, scrape_timeout: {scrape_interval}, "
        f"evaluation_interval: {scrape_interval}}}\n"
        f"scrape_configs:\n{jobs}\n")
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
            "--log.level=warn"]
    return ServerProcess("prometheus", argv, workdir, f"http://127.0.0.1:{port}",
                         "/-/ready").start()


def start_pushgateway(workdir: Path, tls: TlsFiles | None = None) -> ServerProcess:
    """Pushgateway on loopback, nothing persisted (Debian's default writes to /var/lib).
    With `tls`: https only, and a client certificate signed by tls.ca required
    (exporter-toolkit's --web.config.file); readiness is polled with the test's CA and
    client certificate."""
    binary = require_binary("prometheus-pushgateway", "pushgateway")
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",
            "--log.level=warn"]
    if tls is None:
        return ServerProcess("pushgateway", argv, workdir, f"http://127.0.0.1:{port}",
                             "/-/ready").start()
    web_config = workdir / "web.yml"
    web_config.write_text(
        "tls_server_config:\n"
        f"  cert_file: {json.dumps(str(tls.server_cert))}\n"
        f"  key_file: {json.dumps(str(tls.server_key))}\n"
        f"  client_ca_file: {json.dumps(str(tls.ca))}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n")
    return ServerProcess("pushgateway", [*argv, f"--web.config.file={web_config}"], workdir,
                         f"https://127.0.0.1:{port}", "/-/ready",
                         context=tls.client_context()).start()


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the certificates with the openssl command (skip if it is missing);
    EC P-256 keys, valid one day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: the TLS tests generate their certificates "
                    "with it (sudo apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, cwd=directory,
                              timeout=30, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"openssl {' '.join(args)} failed:\n{done.stderr}"

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=totem-agent test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, extensions in (
            ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
            ("client", "extendedKeyUsage=clientAuth\n")):
        (directory / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            + extensions)
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=totem-agent test {name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
            "-extfile", f"{name}.ext")
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key",
                    directory / "client.crt", directory / "client.key")


# -- the agent --------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def linux_collector_names() -> list[str]:
    return [name for name, cls in builtin_collectors().items() if runs_here(cls)]


def agent_config(state_dir: Path, *, interval: str = "2s", timeout: str | None = None,
                 only: Iterable[str] | None = None,
                 collectors: Mapping[str, Mapping[str, Any]] | None = None,
                 agent: Mapping[str, Any] | None = None,
                 extra: str = "") -> str:
    """TOML for a test agent. `only`: enable exactly these collectors (every other
    registered one is disabled); `collectors`: per-collector keys."""
    agent_keys: dict[str, Any] = {"interval": interval, "collector_timeout": timeout or interval,
                                  "state_dir": str(state_dir)}
    agent_keys.update(agent or {})
    tables: dict[str, dict[str, Any]] = {}
    if only is not None:
        wanted = set(only)
        for name in linux_collector_names():
            tables[name] = {"enabled": name in wanted}
    for name, keys in (collectors or {}).items():
        tables.setdefault(name, {}).update(keys)
    lines = ["[agent]"] + [f"{k} = {_toml_value(v)}" for k, v in agent_keys.items()]
    for name, keys in tables.items():
        lines.append(f"\n[collectors.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n" + extra


class AgentProcess:
    """`totem-agent run --listen 127.0.0.1:0 --config FILE` as a subprocess.

    Its stderr (JSON log lines) is read by a thread: the "totem-agent started"
    line gives the URL, and the whole log is kept for failure messages.
    """

    def __init__(self, config_path: Path, listen: str = "127.0.0.1:0",
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.argv = [str(AGENT_EXE), "run", "--listen", listen, "--config", str(config_path),
                     *args]
        self.env = clean_env(env)
        self.config_path = config_path
        self.lines: list[str] = []
        self.url: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------
    def start(self, timeout: float = 30.0, wait_collectors: bool = True) -> AgentProcess:
        if not AGENT_EXE.exists():
            raise AssertionError(f"{AGENT_EXE} does not exist: install the package into the "
                                 "venv (scripts/bootstrap-venv test)")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", errors="replace", env=self.env)
        self._reader = threading.Thread(target=self._read_stderr, name="agent-stderr",
                                        daemon=True)
        self._reader.start()
        try:
            wait_until(lambda: self.url or self.proc is None or self.proc.poll() is not None,
                       timeout=timeout, message="the agent's 'totem-agent started' log line")
            if self.url is None:
                raise AssertionError("the agent exited at start-up")
            if wait_collectors:
                state = wait_until(self._collectors_settled, timeout=timeout,
                                   message="every collector check to leave 'pending' in /health")
                if state == "exited":
                    raise AssertionError("the agent exited while starting its collectors")
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"{err}\n{self.describe()}") from None
        return self

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
            if self.url is None:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("msg") == "totem-agent started":
                    self.url = str(record["url"])

    def _collectors_settled(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return "exited"
        _, report = self.health()
        checks = report["checks"].values()
        settled = all(c["status"] != "pending" for c in checks if c["kind"] == "collector")
        return "settled" if settled else None

    def stop(self) -> int | None:
        """terminate(), wait; the exit code (0 after a clean SIGTERM shutdown)."""
        if self.proc is None:
            return None
        terminate(self.proc)
        if self._reader is not None:
            self._reader.join(5)
        return self.proc.returncode

    # -- talking to it -----------------------------------------------------------
    def get(self, path: str, **kwargs: Any) -> HttpResult:
        assert self.url is not None, "agent not started"
        return http_get(self.url + path, **kwargs)

    def health(self) -> tuple[int, dict[str, Any]]:
        result = self.get("/health")
        return result.status, dict(result.json())

    def metrics_text(self) -> str:
        result = self.get("/metrics")
        assert result.status == 200, f"/metrics answered {result.status}\n{self.describe()}"
        return result.text

    def metrics(self) -> dict[str, Metric]:
        return parse_metrics(self.metrics_text())

    # -- its log -----------------------------------------------------------------
    def log_lines(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def log_records(self) -> list[dict[str, Any]]:
        """Every stderr line as a JSON object; fails naming the first line that is not."""
        records = []
        for line in self.log_lines():
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"agent log line is not JSON: {line!r}") from None
            assert isinstance(record, dict), f"agent log line is not a JSON object: {line!r}"
            records.append(record)
        return records

    def describe(self) -> str:
        code = None if self.proc is None else self.proc.poll()
        return (f"--- agent: {' '.join(self.argv)} (url {self.url}, exit code {code})\n"
                f"--- config {self.config_path}:\n{self.config_path.read_text()}"
                f"--- agent log tail:\n{_tail(chr(10).join(self.log_lines()))}")


def run_cli(*args: str, timeout: float = 30.0, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The real `totem-agent` command, to completion."""
    return subprocess.run([str(AGENT_EXE), *args], capture_output=True, text=True,
                          timeout=timeout, env=clean_env(env), stdin=subprocess.DEVNULL)


def wait_fresh_cycle(agent: AgentProcess, max_age: float = 0.5, timeout: float = 20.0
                     ) -> str:
    """The agent's /metrics text right after a collection cycle: every successful
    collector's last run ended at most `max_age` seconds ago. Lets a parity test
    compare counters with node_exporter, which reads at scrape time."""
    last: dict[str, float] = {}

    def fresh() -> str | None:
        text = agent.metrics_text()
        now = time.time()
        families = parse_metrics(text)
        stamps = families.get("totem_agent_collector_last_success_timestamp_seconds")
        success = families.get("totem_agent_collector_success")
        if stamps is None or success is None:
            return None
        ok = {s.labels["collector"] for s in success.samples if s.value == 1}
        ages = {s.labels["collector"]: now - s.value for s in stamps.samples
                if s.labels["collector"] in ok}
        last.clear()
        last.update(ages)
        return text if ages and max(ages.values()) <= max_age else None

    try:
        text = wait_until(fresh, timeout=timeout, interval=0.02,
                          message=f"a collection cycle younger than {max_age}s")
    except AssertionError as err:
        ages = ", ".join(f"{k}={v:.2f}s" for k, v in sorted(last.items()))
        raise AssertionError(f"{err}; last ages: {ages}\n{agent.describe()}") from None
    assert text is not None  # wait_until returns only a truthy result
    return text


# -- remote_write receivers ------------------------------------------------------------

def start_prometheus_receiver(workdir: Path, port: int | None = None,
                              out_of_order_window: str | None = "30m") -> ServerProcess:
    """Prometheus as a remote_write receiver (`--web.enable-remote-write-receiver`),
    scraping nothing; `out_of_order_window` goes to storage.tsdb.out_of_order_time_window
    (None: no window). Write URL: `.url + "/api/v1/write"`. `port`: to come back on the
    same address after an outage."""
    binary = require_binary("prometheus")
    port = port or free_port()
    config = workdir / "prometheus-receiver.yml"
    storage = ("" if out_of_order_window is None else
               f"storage:\n  tsdb:\n    out_of_order_time_window: {out_of_order_window}\n")
    config.write_text("global: {scrape_interval: 15s}\n" + storage + "scrape_configs: []\n")
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle", "--log.level=warn"]
    return ServerProcess("prometheus-receiver", argv, workdir, f"http://127.0.0.1:{port}",
                         "/-/ready").start()


def start_victoria_metrics(workdir: Path, port: int | None = None) -> ServerProcess:
    """VictoriaMetrics single node (Debian's `victoria-metrics`). Write URL:
    `.url + "/api/v1/write"`; GET `/internal/force_flush` before querying (it keeps
    new rows in memory for about a second); `-search.latencyOffset=0s` so the newest
    points are visible at once."""
    binary = require_binary("victoria-metrics")
    port = port or free_port()
    argv = [binary, f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={workdir / 'vm-data'}", "-retentionPeriod=10y",
            "-search.latencyOffset=0s", "-loggerLevel=WARN"]
    return ServerProcess("victoria-metrics", argv, workdir, f"http://127.0.0.1:{port}",
                         "/health").start()
