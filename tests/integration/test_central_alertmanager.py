"""A real Prometheus evaluating central's KioskDown and StoreDown rules sends to a real
Alertmanager running central/alertmanager/alertmanager.yml, which notifies webhook
receivers on loopback: critical pages, warning goes to chat, grouped by store and
alert name, and the kiosk alerts of a store that is down as a whole are inhibited.

The copies differ from central/ only where a test must: webhook URLs on 127.0.0.1,
group waits of a second, `for:` of seconds, and targets on loopback. Kiosks are
scrape targets: three closed ports (two make store "s-down", whose every kiosk is
down; one is in store "s-mixed"), and Prometheus' own /metrics as the live kiosk of
"s-mixed".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.central import ALERTMANAGER_CONFIG, PROMETHEUS_DIR, RULES_DIR
from tests.integration.servers import ServerProcess, http_get, require_binary
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


class Webhooks:
    """An HTTP server on loopback keeping every notification posted to it, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.lock:
                    owner.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert (with the notification's receiver and group labels) posted to path."""
        with self.lock:
            return [{**alert, "receiver": body["receiver"], "groupLabels": body["groupLabels"]}
                    for got, body in self.received if got == path
                    for alert in body["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()
    yield hooks
    hooks.close()


def alertmanager_config(hooks: Webhooks) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        receiver.pop("email_configs", None)
        receiver["webhook_configs"] = [{"url": f"{hooks.url}/{receiver['name']}",
                                        "send_resolved": True}]
    config["global"] = {"resolve_timeout": "5m"}
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="1s")
    return config


def test_rule_to_alertmanager_to_webhook(tmp_path: Path, webhooks: Webhooks) -> None:
    alertmanager_bin = require_binary("prometheus-alertmanager", "alertmanager")
    prometheus_bin = require_binary("prometheus")

    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(alertmanager_config(webhooks)))
    am_port = free_port()
    alertmanager = ServerProcess(
        "alertmanager",
        [alertmanager_bin, f"--config.file={am_config}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
         "--log.level=warn"],
        tmp_path, f"http://127.0.0.1:{am_port}", "/-/ready")

    # central's two scrape-based rules, with `for:` short enough for a test; StoreDown
    # before KioskDown, so the inhibiting alert is at the Alertmanager first.
    rules = yaml.safe_load((RULES_DIR / "kiosk.rules.yml").read_text())
    picked = [dict(rule, **{"for": {"StoreDown": "0s", "KioskDown": "3s"}[rule["alert"]]})
              for group in rules["groups"] for rule in group["rules"]
              if rule.get("alert") in ("KioskDown", "StoreDown")
              and rule["labels"].get("via") == "scrape"]
    assert len(picked) == 2
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "test", "rules": picked}]}))

    # central's scrape example, pointed at loopback targets.
    prom_port = free_port()
    closed = [free_port() for _ in range(3)]
    targets = tmp_path / "targets.yml"
    targets.write_text(yaml.safe_dump([
        {"targets": [f"127.0.0.11:{closed[0]}", f"127.0.0.12:{closed[1]}"],
         "labels": {"store": "s-down"}},
        {"targets": [f"127.0.0.13:{closed[2]}", f"127.0.0.1:{prom_port}"],
         "labels": {"store": "s-mixed"}},
    ]))
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.scrape.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s",
                        "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules_file)]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{am_port}"]}]
    job = config["scrape_configs"][0]
    job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "1s"}]
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(yaml.safe_dump(config))
    prometheus = ServerProcess(
        "prometheus",
        [prometheus_bin, f"--config.file={prom_config}",
         f"--storage.tsdb.path={tmp_path / 'prom'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        tmp_path, f"http://127.0.0.1:{prom_port}", "/-/ready")

    try:
        alertmanager.start()
        prometheus.start()

        def paged() -> list[dict[str, Any]]:
            return [a for a in webhooks.alerts("/pager")
                    if a["labels"]["alertname"] == "StoreDown"]

        pages = wait_until(paged, timeout=20, message="StoreDown at the pager webhook")
        assert {a["labels"]["store"] for a in pages} == {"s-down"}
        page = pages[0]
        assert page["status"] == "firing" and page["receiver"] == "pager"
        assert page["labels"]["severity"] == "critical"
        assert page["groupLabels"] == {"store": "s-down", "alertname": "StoreDown"}
        assert page["annotations"]["runbook_url"].endswith("/docs/runbooks/StoreDown.md")

        def chatted() -> list[dict[str, Any]]:
            return [a for a in webhooks.alerts("/chat")
                    if a["labels"]["alertname"] == "KioskDown"]

        kiosk = wait_until(chatted, timeout=20, message="KioskDown at the chat webhook")[0]
        assert kiosk["receiver"] == "chat" and kiosk["labels"]["severity"] == "warning"
        assert kiosk["labels"]["store"] == "s-mixed"
        assert kiosk["labels"]["instance"] == "127.0.0.13"  # relabelled: host, no port
        assert kiosk["groupLabels"] == {"store": "s-mixed", "alertname": "KioskDown"}

        # The two kiosks of s-down reached the Alertmanager too, and it holds them back.
        def inhibited() -> list[dict[str, Any]]:
            found = http_get(f"{alertmanager.url}/api/v2/alerts?filter=alertname%3D%22"
                             "KioskDown%22&filter=store%3D%22s-down%22").json()
            return found if len(found) == 2 and all(
                a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
                for a in found) else []

        wait_until(inhibited, timeout=20, message="s-down's KioskDown alerts inhibited")
        leaked = [a for path in ("/pager", "/chat", "/email-digest")
                  for a in webhooks.alerts(path)
                  if a["labels"]["alertname"] == "KioskDown"
                  and a["labels"]["store"] == "s-down"]
        assert not leaked, f"inhibited alerts were notified: {leaked}"
        assert webhooks.alerts("/email-digest") == []
    finally:
        prometheus.stop()
        alertmanager.stop()
