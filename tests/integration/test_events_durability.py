"""Events API end to end: the real agent process, killed with SIGKILL right after its 2xx.

Every acknowledged event must be counted exactly once after the restart: the
answer is sent only after the SQLite commit, and a retried id is not counted
again. No sleeps: each kill follows an observed 2xx (or happens while a request
is in flight), each restart waits for the agent's start-up log line.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import AgentProcess, agent_config, parse_metrics
from tests.support import wait_until

pytestmark = pytest.mark.integration

EVENTS = "/api/v1/events"


def post(agent: AgentProcess, doc: Any, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    assert agent.url is not None
    request = urllib.request.Request(agent.url + EVENTS, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def kill9(agent: AgentProcess) -> None:
    assert agent.proc is not None
    agent.proc.kill()  # SIGKILL: no shutdown code runs
    agent.proc.wait(10)


def event(n: int) -> list[dict[str, Any]]:
    """Request n: a ticket and a payment of n units, both with ids."""
    return [{"type": "ticket_created", "service": "caixa", "id": f"t-{n}"},
            {"type": "payment", "status": "approved", "method": "pix", "amount": float(n),
             "id": f"p-{n}"}]


def business(agent: AgentProcess) -> tuple[float, float, float]:
    families = parse_metrics(agent.metrics_text())
    tickets = {s.name: s.value for s in families["totem_ticket_created"].samples}
    amounts = {s.name: s.value for s in families["totem_payment_amount"].samples
               if not s.name.endswith("_bucket")}
    return (tickets["totem_ticket_created_total"], amounts["totem_payment_amount_count"],
            amounts["totem_payment_amount_sum"])


def test_kill9_after_each_ack_counts_every_event_once(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    config = agent_config(tmp_path / "state", only=["loadavg"])
    acked: list[int] = []
    for n in range(1, 7):
        agent = start_agent(config, wait_collectors=False)
        if acked:
            # What was acknowledged before the kill is there, exactly once.
            assert business(agent) == (len(acked), len(acked), float(sum(acked))), \
                agent.describe()
            # A kiosk app retrying the last request after its timeout: acknowledged, not
            # counted again.
            status, answer = post(agent, event(acked[-1]))
            assert status == 200 and answer == {"accepted": 0, "duplicates": [0, 1]}
        status, answer = post(agent, event(n))
        assert status == 200 and answer["accepted"] == 2, answer
        acked.append(n)
        kill9(agent)
    agent = start_agent(config, wait_collectors=False)
    assert business(agent) == (6, 6, 21.0)


def test_kill9_during_a_stream_then_retry_unknown(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    """A poster sends requests back to back; the agent is killed mid-stream. Acked
    requests are counted; the one in flight (outcome unknown) is retried after the
    restart, and is then counted exactly once whether or not it got in before the kill."""
    config = agent_config(tmp_path / "state", only=["loadavg"])
    acked: set[int] = set()
    next_n = 1
    for _ in range(3):
        agent = start_agent(config, wait_collectors=False)
        unknown: list[int] = []
        stop = threading.Event()

        def poster(agent: AgentProcess = agent, unknown: list[int] = unknown,
                   stop: threading.Event = stop) -> None:
            nonlocal next_n
            while not stop.is_set():
                n = next_n
                try:
                    status, _ = post(agent, event(n), timeout=10)
                except OSError:
                    unknown.append(n)  # killed while in flight
                    return
                assert status == 200
                acked.add(n)
                next_n += 1

        thread = threading.Thread(target=poster, daemon=True)
        target = len(acked) + 20
        thread.start()
        wait_until(lambda t=target: len(acked) >= t, timeout=30, interval=0.001,
                   message="20 acknowledged requests")
        kill9(agent)
        stop.set()
        thread.join(15)
        assert not thread.is_alive()
        agent = start_agent(config, wait_collectors=False)
        for n in unknown:
            status, _ = post(agent, event(n))
            assert status == 200
            acked.add(n)
            next_n = n + 1
        assert business(agent) == (len(acked), len(acked), float(sum(acked))), agent.describe()
        kill9(agent)
