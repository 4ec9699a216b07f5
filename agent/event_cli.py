"""`totem-agent event` and `totem-agent push`: the events API and the Pushgateway from a shell.

Messages are for a store technician; exit codes are cli.ExitStatus: 0 done,
3 the agent (or gateway) cannot be reached, 4 it failed on its side, 64 the
event was refused (the message names the field and why), 78 bad config.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, TextIO

from totem_agent.events import SCHEMA

# Every field some event type has, as a command-line option (--wait-seconds).
EVENT_FIELDS: dict[str, str] = {}
for _fields in SCHEMA.values():
    for _name, _spec in _fields.items():
        EVENT_FIELDS[_name] = _spec.kind


def event_document(kind: str, given: dict[str, str | None]) -> dict[str, Any]:
    """The JSON event from the command line's strings: numbers where the schema
    wants numbers (left as text when not numeric, for the agent to refuse by name)."""
    doc: dict[str, Any] = {"type": kind}
    for name, value in given.items():
        if value is None:
            continue
        kind_of = EVENT_FIELDS.get(name, "label")
        if name == "timestamp" or kind_of in ("number", "count"):
            try:
                number = float(value)
                doc[name] = int(number) if kind_of == "count" and number.is_integer() \
                    else number
                continue
            except ValueError:
                pass
        doc[name] = value
    return doc


def post_event(url: str, doc: dict[str, Any], token: str, timeout: float,
               out: TextIO, err: TextIO) -> int:
    from totem_agent.cli import ExitStatus

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url.rstrip("/") + "/api/v1/events", method="POST",
                                     data=json.dumps(doc).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read())
            field = f" ({body['field']})" if body.get("field") else ""
            why = f"{body.get('error', error.reason)}{field}: {body.get('reason', '')}"
        except (ValueError, AttributeError):
            why = str(error.reason)
        if error.code >= 500:
            print(f"totem-agent: the agent could not record the event: {why}", file=err)
            return ExitStatus.ERROR
        print(f"totem-agent: the agent refused the event: {why}", file=err)
        return ExitStatus.USAGE
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(f"totem-agent: cannot reach the agent at {url}: {reason}. Is it running?",
              file=err)
        return ExitStatus.UNREACHABLE
    if answer.get("duplicate"):
        print(f"already recorded: an event with id {doc.get('id')!r} was seen before", file=out)
    else:
        print(f"recorded: {doc['type']}", file=out)
    return ExitStatus.OK


def push_once(config: Any, out: TextIO, err: TextIO) -> int:
    """Collect once, then one PUT to the configured Pushgateway; say what happened."""
    from totem_agent.cli import ExitStatus
    from totem_agent.runtime import Agent

    if not config.pushgateway["url"]:
        print("totem-agent: no Pushgateway configured: set [pushgateway] url or "
              "PROMETHEUS_PUSH_GATEWAY", file=err)
        return ExitStatus.BAD_CONFIG
    agent = Agent(config)
    try:
        agent.scheduler.run_once()
        assert agent.pusher is not None
        try:
            agent.pusher.push_once()
        except Exception as error:
            print(f"totem-agent: push to {agent.pusher.url} failed: {error}", file=err)
            unreachable = isinstance(error, urllib.error.URLError) \
                and not isinstance(error, urllib.error.HTTPError)
            return ExitStatus.UNREACHABLE if unreachable else ExitStatus.ERROR
        group = "/".join(f"{k}/{v}" for k, v in agent.pusher.grouping.items())
        print(f"pushed to {agent.pusher.url}/metrics/job/{agent.pusher.job}/{group} "
              f"in {agent.pusher.last_duration:.3f}s", file=out)
        return ExitStatus.OK
    finally:
        agent.scheduler.stop(wait=0)
        if agent.business is not None:
            agent.business.store.close()
