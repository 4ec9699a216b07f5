"""Pushing over TLS to a real Pushgateway that requires a client certificate.

The gateway (Debian's prometheus-pushgateway 1.5, exporter-toolkit's
--web.config.file) serves https only with a throwaway CA's certificate for
127.0.0.1 and refuses clients without a certificate from that CA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    TlsFiles,
    agent_config,
    http_get,
    make_tls_files,
    parse_metrics,
    run_cli,
    start_pushgateway,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

GROUP = {"job": "totem", "instance": "kiosk-tls"}


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def gateway(tmp_path: Path, tls: TlsFiles) -> Iterator[ServerProcess]:
    workdir = tmp_path / "pushgateway"
    workdir.mkdir()
    server = start_pushgateway(workdir, tls)
    try:
        yield server
    finally:
        server.stop()


def config_text(tmp_path: Path, url: str, **tls_keys: Any) -> str:
    keys = "".join(f"{key} = {value!r}\n".replace("'", '"') if isinstance(value, str)
                   else f"{key} = {'true' if value else 'false'}\n"
                   for key, value in tls_keys.items())
    return agent_config(tmp_path / "state", only=["loadavg"], interval="1s",
                        agent={"instance": "kiosk-tls"},
                        extra=f'[pushgateway]\nurl = "{url}"\ninterval = "1s"\n'
                              f'timeout = "5s"\n{keys}')


def write_config(tmp_path: Path, url: str, **tls_keys: Any) -> Path:
    path = tmp_path / "push.toml"
    path.write_text(config_text(tmp_path, url, **tls_keys))
    return path


def pushed_load(gateway: ServerProcess) -> float | None:
    families = parse_metrics(http_get(gateway.url + "/metrics", context=gateway.context).text)
    if "node_load1" not in families:
        return None
    for sample in families["node_load1"].samples:
        if all(sample.labels.get(k) == v for k, v in GROUP.items()):
            return float(sample.value)
    return None


def client_cert(tls: TlsFiles) -> dict[str, str]:
    return {"cert_file": str(tls.client_cert), "key_file": str(tls.client_key)}


def test_push_with_the_ca_and_a_client_certificate(tmp_path: Path, tls: TlsFiles,
                                                   gateway: ServerProcess) -> None:
    assert gateway.url.startswith("https://")
    path = write_config(tmp_path, gateway.url, ca_file=str(tls.ca), **client_cert(tls))
    done = run_cli("push", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert f"pushed to {gateway.url}/metrics/job/totem/instance/kiosk-tls" in done.stdout
    assert pushed_load(gateway) is not None


def test_without_the_ca_the_gateway_certificate_is_refused_and_counted(
        tmp_path: Path, tls: TlsFiles, gateway: ServerProcess,
        start_agent: Callable[..., AgentProcess]) -> None:
    path = write_config(tmp_path, gateway.url, **client_cert(tls))
    done = run_cli("push", "--config", str(path))
    assert done.returncode != 0
    assert "TLS certificate is not trusted" in done.stderr, done.stderr
    assert "ca_file" in done.stderr, done.stderr

    agent = start_agent(config_text(tmp_path, gateway.url, **client_cert(tls)))
    check = wait_until(
        lambda: (c := agent.health()[1]["checks"]["output:pushgateway"])["status"]
        == "degraded" and c, timeout=20, message="/health to show the push degraded")
    assert "TLS certificate is not trusted" in check["last_error"]
    pushes = {s.labels["result"]: s.value
              for s in agent.metrics()["totem_agent_push_requests"].samples}
    assert pushes["failure"] >= 1 and pushes["success"] == 0
    assert pushed_load(gateway) is None


def test_without_a_client_certificate_the_gateway_refuses(
        tmp_path: Path, tls: TlsFiles, gateway: ServerProcess) -> None:
    path = write_config(tmp_path, gateway.url, ca_file=str(tls.ca))
    done = run_cli("push", "--config", str(path))
    assert done.returncode != 0, done.stdout
    assert "failed" in done.stderr, done.stderr
    assert "if it requires a client certificate, set [pushgateway] cert_file" in done.stderr, \
        done.stderr
    assert pushed_load(gateway) is None


def test_insecure_skip_verify_pushes_without_the_ca(
        tmp_path: Path, tls: TlsFiles, gateway: ServerProcess) -> None:
    path = write_config(tmp_path, gateway.url, insecure_skip_verify=True, **client_cert(tls))
    done = run_cli("push", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert pushed_load(gateway) is not None
