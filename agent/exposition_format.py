"""Content negotiation and the text format, as prometheus_client 0.26 has them.

prometheus_client.exposition holds `choose_encoder` and the text format's
`generate_latest`, but importing it imports http.server, urllib.request (and with
it hashlib and OpenSSL's libcrypto), wsgiref and ssl for its HTTP servers and
Pushgateway client: several MB of RSS the running agent would carry for two
functions. They are copied here from prometheus_client 0.26.0's exposition.py
("Prometheus instrumentation library for Python applications, Copyright 2015 The
Prometheus Authors", Apache License 2.0, as this project) with their behaviour
unchanged: the same encoder and content type for every Accept header and the same
bytes (tests/unit/test_exposition_encoding.py compares both with prometheus_client's).
The OpenMetrics encoder stays prometheus_client.openmetrics.exposition, which
imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString, parse_version

CONTENT_TYPE_PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_PLAIN_1_0_0 = "text/plain; version=1.0.0; charset=utf-8"
CONTENT_TYPE_LATEST = CONTENT_TYPE_PLAIN_1_0_0

Encoder = Callable[[Any], bytes]  # takes anything with collect() -> Iterable[Metric]


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def generate_latest(registry: Any, escaping: str = openmetrics.UNDERSCORES) -> bytes:
    """The text format (0.0.4, or 1.0.0 with `escaping`) of registry.collect()."""

    def sample_line(sample: Any) -> str:
        if sample.labels:
            # Label values always support UTF-8: only backslash, newline and quote are
            # escaped (what openmetrics._escape(v, ALLOWUTF8, ...) does).
            labelstr = ",".join(
                f'{openmetrics.escape_label_name(k, escaping)}="{_escape_value(v)}"'
                for k, v in sorted(sample.labels.items()))
        else:
            labelstr = ""
        timestamp = ""
        if sample.timestamp is not None:
            timestamp = f" {int(float(sample.timestamp) * 1000):d}"  # milliseconds
        name = openmetrics.escape_metric_name(sample.name, escaping)
        value = floatToGoString(sample.value)
        if escaping != openmetrics.ALLOWUTF8 or \
                openmetrics._is_valid_legacy_metric_name(sample.name):
            if labelstr:
                labelstr = f"{{{labelstr}}}"
            return f"{name}{labelstr} {value}{timestamp}\n"
        maybe_comma = "," if labelstr else ""
        return f"{{{name}{maybe_comma}{labelstr}}} {value}{timestamp}\n"

    output = []
    for metric in registry.collect():
        try:
            mname = metric.name
            mtype = metric.type
            # Munging from OpenMetrics into Prometheus format.
            if mtype == "counter":
                mname = mname + "_total"
            elif mtype == "info":
                mname = mname + "_info"
                mtype = "gauge"
            elif mtype == "stateset":
                mtype = "gauge"
            elif mtype == "gaugehistogram":
                # A gauge histogram is really a gauge, but this captures the structure better.
                mtype = "histogram"
            elif mtype == "unknown":
                mtype = "untyped"
            escaped = openmetrics.escape_metric_name(mname, escaping)
            output.append(f"# HELP {escaped} {_escape_help(metric.documentation)}\n")
            output.append(f"# TYPE {escaped} {mtype}\n")
            om_samples: dict[str, list[str]] = {}
            for s in metric.samples:
                for suffix in ["_created", "_gsum", "_gcount"]:
                    if s.name == metric.name + suffix:
                        # OpenMetrics specific sample, put in a gauge at the end.
                        om_samples.setdefault(suffix, []).append(sample_line(s))
                        break
                else:
                    output.append(sample_line(s))
        except Exception as exception:
            exception.args = (exception.args or ("",)) + (metric,)
            raise
        for suffix, lines in sorted(om_samples.items()):
            escaped = openmetrics.escape_metric_name(metric.name + suffix, escaping)
            output.append(f"# HELP {escaped} {_escape_help(metric.documentation)}\n")
            output.append(f"# TYPE {escaped} gauge\n")
            output.extend(lines)
    return "".join(output).encode("utf-8")


def choose_encoder(accept_header: str) -> tuple[Encoder, str]:
    """(encoder, content type) for a scrape's Accept header. Like prometheus_client,
    this accepts a narrower range of content types than Prometheus does."""
    accept_header = accept_header or ""
    escaping = openmetrics.UNDERSCORES
    for accepted in accept_header.split(","):
        if accepted.split(";")[0].strip() == "application/openmetrics-text":
            toks = accepted.split(";")
            version = _get_version(toks)
            escaping = _get_escaping(toks)
            # Only return an escaping header with a good version and media type.
            if not version:
                return (partial(openmetrics.generate_latest, escaping=openmetrics.UNDERSCORES,
                                version="1.0.0"), openmetrics.CONTENT_TYPE_LATEST)
            if version and parse_version(version) >= (1, 0, 0):
                return (partial(openmetrics.generate_latest, escaping=escaping, version=version),
                        f"application/openmetrics-text; version={version}; charset=utf-8; "
                        f"escaping={escaping}")
        elif accepted.split(";")[0].strip() == "text/plain":
            toks = accepted.split(";")
            version = _get_version(toks)
            escaping = _get_escaping(toks)
            if version and parse_version(version) >= (1, 0, 0):
                return (partial(generate_latest, escaping=escaping),
                        f"{CONTENT_TYPE_LATEST}; escaping={escaping}")
    return generate_latest, CONTENT_TYPE_PLAIN_0_0_4


def _get_version(tokens: list[str]) -> str:
    """The version parameter of one Accept entry, or ""."""
    for tok in tokens:
        if "=" not in tok:
            continue
        key, value = tok.strip().split("=", 1)
        if key == "version":
            return value
    return ""


_ESCAPINGS = (openmetrics.ALLOWUTF8, openmetrics.UNDERSCORES, openmetrics.DOTS,
              openmetrics.VALUES)


def _get_escaping(tokens: list[str]) -> str:
    """The escaping parameter of one Accept entry; UNDERSCORES when absent or unknown
    (the first escaping parameter decides, as in prometheus_client)."""
    for tok in tokens:
        if "=" not in tok:
            continue
        key, value = tok.strip().split("=", 1)
        if key != "escaping":
            continue
        return value if value in _ESCAPINGS else openmetrics.UNDERSCORES
    return openmetrics.UNDERSCORES
