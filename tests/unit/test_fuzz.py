"""Bounded fuzzing (hypothesis) of everything that parses outside input: the events
parser, the config loader, the textfile parser and the web-config loader.

The property is the same for each: a clear refusal (EventError, ConfigError,
ValueError, WebConfigError) or a result, never another exception (which would be a
500, a crash at start-up or a collector failure without a message). Each test is
bounded by max_examples, so the whole module stays well under a minute; the number
of inputs tried is printed at the end (`pytest tests/unit/test_fuzz.py -s`) and
recorded in docs/security.md. Crashes found became the regression tests at the end.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from totem_agent.collectors import builtin_collectors
from totem_agent.collectors.textfile import parse_textfile
from totem_agent.config import (
    AGENT_OPTIONS,
    EVENTS_OPTIONS,
    LOG_OPTIONS,
    PUSHGATEWAY_OPTIONS,
    TABLES,
    ConfigError,
    env_name,
    load_config,
)
from totem_agent.events import EventError, Limits, parse_events
from totem_agent.webconfig import WebConfigError, load_web_config

TRIED: Counter[str] = Counter()
# TOTEM_FUZZ_EXAMPLES=20000 for a longer hunt; the suite's default keeps it short.
EXAMPLES = int(os.environ.get("TOTEM_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print("\nfuzz inputs tried: " + ", ".join(f"{k}={v}" for k, v in sorted(TRIED.items())))


# -- TOML documents ------------------------------------------------------------------

def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_document(doc: dict[str, Any]) -> str:
    lines = []
    for table, keys in doc.items():
        if isinstance(keys, dict):
            lines.append(f"[{_toml_key(table)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in keys.items()]
        else:
            lines.insert(0, f"{_toml_key(table)} = {_toml_value(keys)}")
    return "\n".join(lines) + "\n"


KNOWN_KEYS = sorted({*AGENT_OPTIONS, *EVENTS_OPTIONS, *LOG_OPTIONS, *PUSHGATEWAY_OPTIONS,
                     "enabled", "interval", "timeout", "directory", "store"})
scalars = st.one_of(st.text(max_size=20), st.integers(-2**63, 2**63 - 1), st.booleans(),
                    st.floats(allow_nan=True),
                    st.sampled_from(["15s", "0", "-1s", "10MB", "127.0.0.1:0", ":80", "[::1]:1",
                                     "1e400", "full", "json", "/dev/null", "/proc", "\x00", ""]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=10))
tables = st.one_of(st.sampled_from([*TABLES, "collectors"]), st.text(max_size=10))
collector_tables = st.dictionaries(st.sampled_from(sorted(builtin_collectors())),
                                   st.dictionaries(keys, values, max_size=4), max_size=3)
SCHEMAS = {"agent": AGENT_OPTIONS, "events": EVENTS_OPTIONS, "log": LOG_OPTIONS,
           "pushgateway": PUSHGATEWAY_OPTIONS}
# Mostly known tables with their own keys (reaching every option's parser and check),
# sometimes anything at all.
known_tables = st.one_of(*[st.dictionaries(st.sampled_from(sorted(schema)), values, max_size=5)
                           .map(lambda keys, t=table: (t, keys))
                           for table, schema in SCHEMAS.items()])
documents = st.one_of(
    st.lists(known_tables, max_size=4).map(dict),
    st.dictionaries(tables, st.one_of(st.dictionaries(keys, values, max_size=5), values),
                    max_size=5))


def _load(text: str, env: dict[str, str] | None = None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "config.toml")
        path.write_text(text, encoding="utf-8")
        try:
            config = load_config(path, env=env or {})
        except ConfigError as err:
            assert err.problems and all(isinstance(p, str) and p for p in err.problems)
            return
    # Accepted: every number is finite (a nan interval would pass every minimum).
    for table in (config.agent, config.events, config.log, config.pushgateway):
        for key, value in table.items():
            assert not isinstance(value, float) or math.isfinite(value), (key, value)


@FUZZ
@given(documents, collector_tables)
def test_config_loader_any_toml_document(doc: dict[str, Any], collectors: dict[str, Any]
                                         ) -> None:
    TRIED["config TOML documents"] += 1
    if collectors:
        doc = {**doc, "collectors": collectors}
    _load(toml_document(doc))


@FUZZ
@given(st.text(max_size=300))
def test_config_loader_any_text(text: str) -> None:
    TRIED["config raw texts"] += 1
    _load(text)


env_vars = st.dictionaries(
    st.one_of(st.sampled_from([env_name("agent", k) for k in AGENT_OPTIONS]
                              + [env_name("events", k) for k in EVENTS_OPTIONS]
                              + [env_name("pushgateway", k) for k in PUSHGATEWAY_OPTIONS]
                              + ["TOTEM_AGENT_LABELS_STORE", "TOTEM_AGENT_LABELS_"]),
              st.text(min_size=1, max_size=12).map(lambda s: "TOTEM_AGENT_" + s)),
    st.text(max_size=20).filter(lambda s: "\x00" not in s), max_size=4)


@FUZZ
@given(env_vars)
def test_config_loader_any_environment(env: dict[str, str]) -> None:
    TRIED["config environments"] += 1
    _load("", env)


# -- the events parser: bytes around valid documents ----------------------------------

LIMITS = Limits(max_batch=20, max_future_skew=60.0, max_age=86400.0)
seed_docs = [b'{"type": "payment", "status": "approved", "method": "pix", "amount": 1}',
             b'[{"type": "ticket_created", "service": "a", "id": "x"}]',
             b'{"type": "queue_length", "length": 3, "timestamp": 1795000000}']


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(seed_docs)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.sampled_from([b"1e999", b"-0", b"null", b'"\\ud800"', b"[]",
                                                b"{}", b'"' + b"a" * 300 + b'"', b"NaN",
                                                b"[" * 50]))
    return bytes(data)


@FUZZ
@given(st.one_of(mutated(), st.binary(max_size=200)))
def test_events_parser_any_bytes(body: bytes) -> None:
    TRIED["events bodies"] += 1
    try:
        parse_events(body, 1_795_000_000.0, LIMITS)
    except EventError as err:
        assert 400 <= err.status < 500


# -- the textfile parser --------------------------------------------------------------

prom_lines = st.one_of(
    st.sampled_from(["# HELP m help", "# TYPE m counter", "# TYPE m gauge",
                     "# TYPE m histogram", "# TYPE m summary", "# TYPE m untyped",
                     'm{a="b"} 1', "m 1 1700000000000", "m_bucket{le=\"+Inf\"} 1", "m_sum 2",
                     "m_count 1", 'm{a="\\n"} NaN', "m +Inf", "m{} 1", "m{a=\"b\",} 2", "",
                     "m{quantile=\"0.5\"} 1", "m_total 3", "# EOF", "m{a=b} 1", "{} 1"]),
    st.text(max_size=40))


@FUZZ
@given(st.lists(prom_lines, max_size=12))
def test_textfile_parser_any_text(lines: list[str]) -> None:
    TRIED["textfile documents"] += 1
    try:
        families = parse_textfile("\n".join(lines) + "\n")
    except ValueError as err:
        assert str(err)
        return
    assert isinstance(families, list)


# -- the web-config loader --------------------------------------------------------------

WEB_KEYS = ["tls_server_config", "http_server_config", "basic_auth_users", "rate_limit",
            "cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version", "cipher_suites", "client_allowed_sans", "headers", "http2",
            "prefer_server_cipher_suites", "curve_preferences", "X-Frame-Options"]
web_scalars = st.one_of(st.text(max_size=15), st.integers(), st.booleans(), st.none(),
                        st.floats(allow_nan=True),
                        st.sampled_from(["RequireAndVerifyClientCert", "TLS13", "TLS10",
                                         "deny", "/etc/passwd", "/nonexistent", "\x00",
                                         "$2y$10$" + "a" * 53]))
web_values = st.recursive(web_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(WEB_KEYS), st.text(max_size=8)), inner,
                    max_size=4)), max_leaves=10)


@FUZZ
@given(st.one_of(web_values.map(json.dumps), st.text(max_size=200)))
def test_web_config_loader_any_yaml(text: str) -> None:
    TRIED["web-config documents"] += 1
    fd, name = tempfile.mkstemp(suffix=".yml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(text)
        try:
            load_web_config(name)
        except WebConfigError as err:
            assert err.problems and all(p.startswith(name) for p in err.problems)
    finally:
        os.unlink(name)


# -- regression tests: the crashes the fuzzing found ---------------------------------

@pytest.mark.parametrize(("text", "key"), [
    # A NUL in a path: ValueError from the OS layer, not a config problem (found in
    # the web-config key; the other path keys were already safe).
    ('[agent]\nweb_config = "\\u0000"\n', "agent.web_config"),
    # A size whose float overflows: OverflowError converting inf to int.
    ('[events]\nmax_body_bytes = "' + "9" * 400 + 'GB"\n', "events.max_body_bytes"),
    # nan and inf durations and numbers passed every minimum (nan < x is false) and
    # would have stalled the scheduler's timers.
    ("[agent]\ninterval = nan\n", "agent.interval"),
    ("[agent]\ninterval = inf\n", "agent.interval"),
    ("[agent]\ncollector_timeout = 1e400\n", "agent.collector_timeout"),
    ("[pushgateway]\ntimeout = -nan\n", "pushgateway.timeout"),
])
def test_fuzz_findings_are_config_errors(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert any(p.startswith(f"{path}: {key}: ") for p in caught.value.problems), \
        caught.value.problems
