"""`totem-agent status`: the running agent's /health, printed for a person."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TextIO

from totem_agent.agent_client import (
    ANSWER,
    UNREACHABLE,
    USAGE,
    AgentTarget,
    ClientError,
    build_target,
    request,
)
from totem_agent.cli import ExitStatus

_EXIT_BY_STATUS = {"ok": ExitStatus.OK, "degraded": ExitStatus.DEGRADED,
                   "failing": ExitStatus.FAILING}
_WORDS = {"ok": "OK", "degraded": "DEGRADED", "failing": "FAILING", "pending": "starting",
          "not_applicable": "n/a"}


def fetch_health(target: AgentTarget | str, timeout: float) -> dict[str, Any]:
    """GET /health; a 503 (failing) still carries the report. Raises ClientError."""
    if isinstance(target, str):
        target = AgentTarget(target.rstrip("/"))
    answer = request(target, "GET", "/health", timeout, headers={"Accept": "application/json"})
    if answer.status not in (200, 503):
        raise ClientError(ANSWER, f"the agent at {target.url} answered HTTP "
                          f"{answer.status} to /health")
    try:
        report = answer.json()
    except ValueError:
        report = None
    if not isinstance(report, dict) or "status" not in report:
        raise ClientError(ANSWER, f"{target.url}/health is not a totem-agent health "
                          "report: is another program on that address?")
    return report


def duration_words(seconds: float) -> str:
    """An uptime for a person: `2d 3h 4m`, `3h 4m`, `4m 5s`."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def format_report(report: dict[str, Any]) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in report.get("labels", {}).items())
    head = f"totem-agent on {report.get('instance', '?')}" + (f" ({labels})" if labels else "")
    lines = [f"{head}: {_WORDS.get(report['status'], report['status'])}",
             f"version {report.get('version', '?')}, "
             f"up {duration_words(report.get('uptime_seconds', 0))}"]
    checks = report.get("checks", {})
    # Problems first, so the technician reads what matters without scrolling.
    order = {"failing": 0, "degraded": 1, "pending": 2, "ok": 3, "not_applicable": 4}
    for name, check in sorted(checks.items(), key=lambda kv: (order.get(kv[1]["status"], 9),
                                                               kv[0])):
        word = _WORDS.get(check["status"], check["status"])
        line = f"  {word:<9} {name}"
        if check["status"] in ("failing", "degraded"):
            since = f" since {check['since']}" if check.get("since") else ""
            line += f"{since}: {check.get('message') or check.get('last_error') or ''}"
        lines.append(line)
    return "\n".join(lines)


def show_status(target: AgentTarget | str, as_json: bool, timeout: float, out: TextIO,
                err: TextIO) -> int:
    if isinstance(target, str):
        target = AgentTarget(target.rstrip("/"))
    try:
        report = fetch_health(target, timeout)
    except ClientError as error:
        if error.kind == UNREACHABLE:
            print(f"totem-agent is not reachable at {target.url}: {error}. Is the service "
                  "running? (Linux: systemctl status totem-agent)", file=err)
        else:
            print(f"totem-agent: {error}", file=err)
        if as_json:
            print(json.dumps({"status": "unreachable", "url": target.url, "problem": error.kind,
                              "error": str(error)}), file=out)
        return ExitStatus.USAGE if error.kind == USAGE else ExitStatus.UNREACHABLE
    if as_json:
        print(json.dumps(report, indent=2), file=out)
    else:
        print(format_report(report), file=out)
    return _EXIT_BY_STATUS.get(str(report.get("status")), ExitStatus.UNREACHABLE)


def status_command(args: Any, config: Any, env: Mapping[str, str], out: TextIO,
                   err: TextIO) -> int:
    """`totem-agent status` with its flags (cli.py): 0-3 as the health, 3 also when the
    agent wants credentials it was not given, 64 for a flag or file of ours."""
    try:
        target = build_target(args.url, config, env, user=args.user,
                              password_file=args.password_file, ca_file=args.ca_file,
                              cert_file=args.cert_file, key_file=args.key_file)
    except ClientError as error:
        print(f"totem-agent: {error}", file=err)
        return ExitStatus.USAGE
    return show_status(target, as_json=args.json, timeout=args.timeout, out=out, err=err)
