"""[[remote_write]] tables: defaults, validation with file and index, docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from totem_agent.config import ConfigError, load_config
from totem_agent.outputs.remote_write_client import Destination
from totem_agent.outputs.remote_write_config import default_name


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n' + text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return caught.value.problems


def test_no_tables_no_destinations(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), env={}).remote_write == ()


def test_two_destinations_with_defaults(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    config = load_config(write(tmp_path, f"""
[[remote_write]]
url = "http://prometheus.store-12.local:9090/api/v1/write"

[[remote_write]]
name = "central"
url = "https://vm.example.com/insert/0/prometheus/api/v1/write"
bearer_token = "abc"
ca_file = "{ca}"
timeout = "10s"
max_backoff = "1m"
headers = {{ "X-Scope-OrgID" = "stores" }}
"""), env={})
    first, second = config.remote_write
    assert first["name"] == "prometheus.store-12.local"
    assert first["timeout"] == 30.0 and first["max_samples_per_send"] == 50_000
    assert second["name"] == "central" and second["timeout"] == 10.0
    assert second["max_backoff"] == 60.0 and second["headers"] == {"X-Scope-OrgID": "stores"}
    dest = Destination.from_settings(second)
    assert dest.bearer_token == "abc" and dest.ca_file == str(ca)


def test_every_problem_names_the_file_and_the_table(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[remote_write]]
name = "central"
url = "ftp://example.com/write"
password = "x"
cert_file = "/nonexistent/client.pem"
colour = "blue"

[[remote_write]]
name = "central"
url = "http://a.example/api/v1/write"
ca_file = "/nonexistent/ca.pem"
min_backoff = "10s"
max_backoff = "1s"
headers = { "Content-Type" = "text/plain" }

[[remote_write]]
name = "bad name!"

[[remote_write]]
url = "http://vm:8428/api/v1/write"
bearer_token = "a"
bearer_token_file = "/etc/hostname"
""")
    problems = problems_of(path)
    text = "\n".join(problems)
    src = str(path)
    for expected in (
        f"{src}: remote_write[0].url: expected an http:// or https:// URL, got 'ftp://",
        f"{src}: remote_write[0].username: a password is set but no username",
        f"{src}: remote_write[0].cert_file: /nonexistent/client.pem: no such file",
        f"{src}: remote_write[0].colour: unknown key",
        f"{src}: remote_write[1].name: 'central' is already the name of remote_write[0]",
        f"{src}: remote_write[1].ca_file: /nonexistent/ca.pem: no such file",
        f"{src}: remote_write[1].min_backoff: 10s is longer than max_backoff (1s)",
        f"{src}: remote_write[1].headers: 'Content-Type' is set by the agent itself",
        f"{src}: remote_write[2].url: missing",
        f"{src}: remote_write[2].name: 'bad name!': use letters, digits",
        f"{src}: remote_write[3].bearer_token_file: set bearer_token or bearer_token_file",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_names_derived_from_the_same_host_collide_with_a_hint(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, """
[[remote_write]]
url = "http://127.0.0.1:9090/api/v1/write"
[[remote_write]]
url = "http://127.0.0.1:8428/api/v1/write"
"""))
    assert any("remote_write[1].name: '127.0.0.1' is already the name of remote_write[0] "
               "(both named after their URL's host: set name)" in p for p in problems), problems


def test_single_brackets_are_explained(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, '[remote_write]\nurl = "http://x/api/v1/write"\n'))
    assert any("[remote_write]: write [[remote_write]] (double brackets)" in p
               for p in problems), problems


def test_tls_needs_https_and_a_key_with_the_certificate(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    problems = problems_of(write(tmp_path, f"""
[[remote_write]]
url = "http://vm:8428/api/v1/write"
cert_file = "{cert}"
"""))
    text = "\n".join(problems)
    assert "remote_write[0].key_file: cert_file is set but key_file is not" in text
    assert "remote_write[0].ca_file" not in text
    assert "remote_write[0].cert_file: TLS settings need an https:// url" in text


def test_remote_write_needs_the_buffer(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, """
[buffer]
enabled = false
[[remote_write]]
url = "http://vm:8428/api/v1/write"
"""))
    assert any("buffer.enabled: [[remote_write]] sends from the buffer" in p for p in problems)


def test_secrets_are_not_echoed(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, """
[[remote_write]]
url = "http://vm:8428/api/v1/write"
username = "u"
password = 123456789
"""))
    assert not any("123456789" in p for p in problems), problems


def test_default_name_is_label_safe() -> None:
    assert default_name("http://[::1]:8428/api/v1/write") == "__1"
    assert default_name("https://vm.example.com/write") == "vm.example.com"
