"""`totem-agent event` and `totem-agent push`: the events API and the Pushgateway from a shell.

Messages are for a store technician; exit codes are cli.ExitStatus: 0 done,
3 the agent (or gateway) cannot be reached, 4 it failed on its side, 64 the
event was refused (the message names the field and why), 77 the agent wants the
events token (or refused it), 78 bad config.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Mapping
from typing import Any, TextIO

from totem_agent.agent_client import (
    AUTH,
    UNREACHABLE,
    USAGE,
    AgentTarget,
    ClientError,
    build_target,
    read_secret_file,
    request,
)
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


def post_event(target: AgentTarget | str, doc: dict[str, Any], token: str, timeout: float,
               out: TextIO, err: TextIO) -> int:
    from totem_agent.cli import ExitStatus

    if isinstance(target, str):
        target = AgentTarget(target.rstrip("/"))
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        # The events API has its own rule (loopback or its token), never basic auth.
        answer = request(target, "POST", "/api/v1/events", timeout,
                         body=json.dumps(doc).encode(), headers=headers, basic_auth=False)
    except ClientError as error:
        if error.kind == AUTH:
            print(f"totem-agent: {error}", file=err)
            return ExitStatus.NO_PERMISSION
        if error.kind == UNREACHABLE:
            print(f"totem-agent: cannot reach the agent at {target.url}: {error}. "
                  "Is it running?", file=err)
            return ExitStatus.UNREACHABLE
        print(f"totem-agent: {error}", file=err)
        return ExitStatus.USAGE if error.kind == USAGE else ExitStatus.UNREACHABLE
    if answer.status != 200:
        try:
            body = answer.json()
            field = f" ({body['field']})" if body.get("field") else ""
            why = f"{body.get('error', answer.status)}{field}: {body.get('reason', '')}"
        except (ValueError, AttributeError, TypeError):
            why = f"HTTP {answer.status}"
        if answer.status >= 500:
            print(f"totem-agent: the agent could not record the event: {why}", file=err)
            return ExitStatus.ERROR
        print(f"totem-agent: the agent refused the event: {why}", file=err)
        return ExitStatus.USAGE
    try:
        result = answer.json()
    except ValueError:
        result = None
    if not isinstance(result, dict):
        print(f"totem-agent: {target.url} answered the event with something else than the "
              "events API's JSON: is another program on that address?", file=err)
        return ExitStatus.ERROR
    if result.get("duplicate"):
        print(f"already recorded: an event with id {doc.get('id')!r} was seen before", file=out)
    else:
        print(f"recorded: {doc['type']}", file=out)
    return ExitStatus.OK


def event_command(args: Any, config: Any, env: Mapping[str, str], out: TextIO,
                  err: TextIO) -> int:
    """`totem-agent event` with its flags (cli.py). The token: --token-file, else the
    config's [events] token (TOTEM_AGENT_EVENTS_TOKEN)."""
    from totem_agent.cli import ExitStatus

    given = {k.removeprefix("field_"): v for k, v in vars(args).items()
             if k.startswith("field_")}
    try:
        target = build_target(args.url, config, env, ca_file=args.ca_file,
                              cert_file=args.cert_file, key_file=args.key_file,
                              basic_auth=False)
        token = (read_secret_file(args.token_file, "token") if args.token_file
                 else str(config.events["token"] or ""))
    except ClientError as error:
        print(f"totem-agent: {error}", file=err)
        return ExitStatus.USAGE
    return post_event(target, event_document(args.type, given), token, args.timeout, out, err)


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
