"""The `[[remote_write]]` tables of the config file: schema and validation.

Zero or more destinations, each an array-of-tables entry:

    [[remote_write]]
    name = "central"
    url = "https://vm.example/api/v1/write"

Problems are reported as `FILE: remote_write[0].url: message` (the index is
the table's position in the file), every one at once, like the rest of the
config. The tables are file-only: environment variables cannot describe a
list of destinations (docs/remote_write.md).

This module imports nothing of the package but `options`, so config.py can
import it without a cycle.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from totem_agent.options import Option, OptionError, check_readable_file

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Headers of the protocol itself: a configured header may not change them.
RESERVED_HEADERS = frozenset({"content-encoding", "content-type", "content-length", "host",
                              "x-prometheus-remote-write-version"})
FILE_KEYS = ("password_file", "bearer_token_file", "ca_file", "cert_file", "key_file")
TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")
MAX_PARALLEL_REQUESTS = 16


def _at_most(limit: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value > limit:
            raise OptionError(f"must be at most {limit}, got {value}")
    return check


REMOTE_WRITE_OPTIONS: dict[str, Option] = {
    "name": Option("str", "", "The destination's name in metrics (`destination` label), "
                   "/health (`remote_write:NAME`) and the buffer's cursor: letters, digits, "
                   "`_`, `.`, `-`. Default: the URL's host name. Renaming a destination "
                   "starts a new cursor from the oldest buffered sample."),
    "url": Option("str", "", "The receiver's remote_write URL (required), e.g. "
                  "http://prometheus:9090/api/v1/write or http://vm:8428/api/v1/write."),
    "timeout": Option("duration", 30.0, "Deadline of one request (connect, send, answer).",
                      minimum=0.1),
    "username": Option("str", "", "Basic auth user name (empty: no basic auth)."),
    "password": Option("str", "", "Basic auth password.", secret=True),
    "password_file": Option("str", "", "File holding the basic auth password (read at each "
                            "request, so it can be renewed in place).",
                            check=check_readable_file),
    "bearer_token": Option("str", "", "Sent as `Authorization: Bearer ...`.", secret=True),
    "bearer_token_file": Option("str", "", "File holding the bearer token (read at each "
                                "request).", check=check_readable_file),
    "ca_file": Option("str", "", "PEM file of the CA(s) that sign the receiver's certificate "
                      "(https:// URL); only these are then trusted. Empty: the system's "
                      "certificate store.", check=check_readable_file),
    "cert_file": Option("str", "", "PEM client certificate (mutual TLS); needs key_file.",
                        check=check_readable_file),
    "key_file": Option("str", "", "PEM private key of cert_file.", check=check_readable_file),
    "insecure_skip_verify": Option("bool", False, "Do not verify the receiver's certificate "
                                   "nor its host name (logged as a warning). For testing "
                                   "only."),
    "headers": Option("str_map", {}, "Extra HTTP headers, e.g. `{ \"X-Scope-OrgID\" = "
                      "\"stores\" }`. The protocol's own headers cannot be replaced."),
    "max_samples_per_send": Option("int", 50_000, "Most samples in one request (whole "
                                   "collection cycles; one cycle larger than this still "
                                   "goes out whole).", minimum=1),
    "parallel_requests": Option("int", 4, "Requests in flight at once while a backlog "
                                "drains (batches of 10,000 samples or more are split, a "
                                "series always on the same connection, so its samples "
                                "arrive in order). A kill can make at most the batch "
                                "in flight arrive twice, whatever this is.",
                                minimum=1, check=_at_most(MAX_PARALLEL_REQUESTS)),
    "max_prepared_size": Option("size", 8 * 1024 * 1024, "Most memory for requests "
                                "encoded ahead of those in flight (compressed bodies), e.g. "
                                "while the receiver is down, so that a backlog drains "
                                "faster when it answers again. 0: only the batch in flight.",
                                minimum=0),
    "min_backoff": Option("duration", 0.25, "First wait before resending a failed request; "
                          "doubled after each failure.", minimum=0.001),
    "max_backoff": Option("duration", 5.0, "Longest wait between retries (a Retry-After "
                          "from the receiver is honoured up to 5 minutes).", minimum=0.001),
    "backlog_warning": Option("duration", 900.0, "/health turns degraded when the oldest "
                              "sample not yet sent is older than this.", minimum=1),
    "clock_skew_warning": Option("duration", 300.0, "/health turns degraded when the kiosk's "
                                 "clock differs from the receiver's (HTTP Date) by more "
                                 "than this.", minimum=1),
}

Problem = Callable[[str, str], None]  # (dotted key, message)


def default_name(url: str) -> str:
    """The name a destination gets from its URL: the host, made label-safe."""
    host = urllib.parse.urlsplit(url).hostname or "remote_write"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", host)[:64] or "remote_write"


def load_remote_write(raw: Any, problem: Problem) -> list[dict[str, Any]]:
    """The validated destinations of the file's `remote_write` value; each problem is
    reported through `problem(dotted_key, message)`."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        problem("[remote_write]", "write [[remote_write]] (double brackets): each "
                "destination is one [[remote_write]] table")
        return []
    if not isinstance(raw, list):
        problem("remote_write", f"must be [[remote_write]] tables, got {type(raw).__name__}")
        return []
    destinations: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    for index, table in enumerate(raw):
        where = f"remote_write[{index}]"
        if not isinstance(table, dict):
            problem(where, f"must be a table, got {type(table).__name__}")
            continue
        values = _options(table, where, problem)
        _check_destination(values, where, problem)
        name = values["name"]
        if name in names:
            how = "" if table.get("name") else " (both named after their URL's host: set name)"
            problem(f"{where}.name", f"{name!r} is already the name of "
                    f"remote_write[{names[name]}]{how}")
        names.setdefault(name, index)
        destinations.append(values)
    return destinations


def _options(table: Mapping[str, Any], where: str, problem: Problem) -> dict[str, Any]:
    values = {key: opt.default for key, opt in REMOTE_WRITE_OPTIONS.items()}
    for key, value in table.items():
        if key not in REMOTE_WRITE_OPTIONS:
            known = ", ".join(sorted(REMOTE_WRITE_OPTIONS))
            problem(f"{where}.{key}", f"unknown key (known keys: {known})")
            continue
        try:
            values[key] = REMOTE_WRITE_OPTIONS[key].parse(value)
        except OptionError as err:
            problem(f"{where}.{key}", str(err))
    return values


def _check_destination(values: dict[str, Any], where: str, problem: Problem) -> None:
    url = str(values["url"])
    parts = urllib.parse.urlsplit(url)
    if not url:
        problem(f"{where}.url", "missing: every [[remote_write]] needs the receiver's url")
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problem(f"{where}.url", f"expected an http:// or https:// URL, got {url!r}")
    if values["name"]:
        if not NAME_RE.match(values["name"]):
            problem(f"{where}.name", f"{values['name']!r}: use letters, digits, _ . - "
                    "(at most 64, starting with a letter or digit)")
    else:
        values["name"] = default_name(url)
    pairs = (("password", "password_file"), ("bearer_token", "bearer_token_file"))
    for one, other in pairs:
        if values[one] and values[other]:
            problem(f"{where}.{other}", f"set {one} or {other}, not both")
    if values["username"] and (values["bearer_token"] or values["bearer_token_file"]):
        problem(f"{where}.username", "set basic auth (username) or a bearer token, not both")
    if (values["password"] or values["password_file"]) and not values["username"]:
        problem(f"{where}.username", "a password is set but no username")
    if bool(values["cert_file"]) != bool(values["key_file"]):
        given, missing = (("cert_file", "key_file") if values["cert_file"]
                          else ("key_file", "cert_file"))
        problem(f"{where}.{missing}", f"{given} is set but {missing} is not: a client "
                "certificate needs both")
    tls_set = [key for key in TLS_KEYS if values[key]]
    if url and tls_set and parts.scheme == "http":
        problem(f"{where}.{tls_set[0]}", f"TLS settings need an https:// url, the url is "
                f"{url!r}")
    if values["min_backoff"] > values["max_backoff"]:
        problem(f"{where}.min_backoff", f"{values['min_backoff']:g}s is longer than "
                f"max_backoff ({values['max_backoff']:g}s)")
    for header in values["headers"]:
        lowered = header.lower()
        if lowered in RESERVED_HEADERS or lowered == "user-agent":
            problem(f"{where}.headers", f"{header!r} is set by the agent itself (remote_write "
                    "protocol)")
        elif lowered == "authorization" and (values["username"] or values["bearer_token"]
                                             or values["bearer_token_file"]):
            problem(f"{where}.headers", "Authorization is already set by username or "
                    "bearer_token")
