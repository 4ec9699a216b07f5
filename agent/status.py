"""`totem-agent status`: the running agent's /health, printed for a person."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, TextIO

from totem_agent.cli import ExitStatus

_EXIT_BY_STATUS = {"ok": ExitStatus.OK, "degraded": ExitStatus.DEGRADED,
                   "failing": ExitStatus.FAILING}
_WORDS = {"ok": "OK", "degraded": "DEGRADED", "failing": "FAILING", "pending": "starting",
          "not_applicable": "n/a"}


def fetch_health(url: str, timeout: float) -> dict[str, Any]:
    """GET {url}/health; a 503 (failing) still carries the report."""
    request = urllib.request.Request(url.rstrip("/") + "/health",
                                     headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        if error.code == 503:
            return dict(json.load(error))
        raise


def _duration(seconds: float) -> str:
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
             f"up {_duration(report.get('uptime_seconds', 0))}"]
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


def show_status(url: str, as_json: bool, timeout: float, out: TextIO, err: TextIO) -> int:
    try:
        report = fetch_health(url, timeout)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        print(f"totem-agent is not reachable at {url}: {reason}. Is the service running? "
              "(Linux: systemctl status totem-agent)", file=err)
        if as_json:
            print(json.dumps({"status": "unreachable", "url": url, "error": str(reason)}),
                  file=out)
        return ExitStatus.UNREACHABLE
    if as_json:
        print(json.dumps(report, indent=2), file=out)
    else:
        print(format_report(report), file=out)
    return _EXIT_BY_STATUS.get(str(report.get("status")), ExitStatus.UNREACHABLE)
