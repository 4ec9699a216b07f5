"""The payment collector's optional ABECS probe against a fake PIN pad on a real pty."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.abecs_pinpad import FakePinPad
from tests.support import samples
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.payment import PaymentCollector
from totem_agent.health import DEGRADED, OK

pytestmark = pytest.mark.integration

PAD = (("device", "pinpad"),)


@pytest.fixture
def pad() -> Iterator[FakePinPad]:
    fake = FakePinPad()
    yield fake
    fake.close()


def make(port: str, **keys: Any) -> PaymentCollector:
    return PaymentCollector(CollectorContext(), {"devices": (
        {"name": "pinpad", "port": port, **keys},)})


def scrape(collector: PaymentCollector) -> tuple[dict[Any, float], str, str]:
    series = samples(collector.collect())
    check = collector.health_checks()[0]
    return series, check.status, check.message


def failures(series: dict[Any, float], reason: str) -> float:
    return series[("totem_payment_device_probe_failures_total",
                   (("device", "pinpad"), ("reason", reason)))]


def test_probe_is_off_by_default(pad: FakePinPad) -> None:
    series, status, message = scrape(make(pad.port))
    assert (status, message) == (OK, "PIN pad: connected")
    assert series[("totem_payment_device_port_present", PAD)] == 1.0
    assert series[("totem_payment_device_port_held", PAD)] == 0.0
    assert not any(k[0].startswith("totem_payment_device_probe") for k in series)
    assert pad.received == b"", "the agent touched a pad it was not asked to probe"


def test_probe_reads_identity_once_per_interval(pad: FakePinPad) -> None:
    pad.strict_open = True   # GIN only after OPN, as ABECS 1.x pads insist
    collector = make(pad.port, probe=True, probe_every="1h", timeout="2s")
    series, status, message = scrape(collector)
    assert pad.commands == ["OPN", "GIN", "CLO"]
    assert series[("totem_payment_device_probe_success", PAD)] == 1.0
    assert series[("totem_payment_device_info", (
        ("device", "pinpad"), ("firmware", "0077_0071_0080_0106"), ("manufacturer", "GERTEC"),
        ("model", "PPC930"), ("spec_version", "1.08")))] == 1.0
    assert (status, message) == (OK, "PIN pad: connected")
    scrape(collector)
    assert pad.commands == ["OPN", "GIN", "CLO"], "probed again before probe_every"


@pytest.mark.parametrize(("setup", "reason", "message"), [
    ({"mode": "mute"}, "timeout", "PIN pad: not answering (no answer to OPN)"),
    ({"stat": "040"}, "stat_nonzero", "PIN pad: reports an error (OPN answered status 040)"),
    ({"mode": "corrupt_crc"}, "bad_crc",
     "PIN pad: communication errors (response to OPN has a bad CRC)"),
])
def test_probe_failures(pad: FakePinPad, setup: dict[str, Any], reason: str,
                        message: str) -> None:
    for key, value in setup.items():
        setattr(pad, key, value)
    started = time.monotonic()
    series, status, got = scrape(make(pad.port, probe=True, timeout="0.3s"))
    assert time.monotonic() - started < 2.0
    assert series[("totem_payment_device_probe_success", PAD)] == 0.0
    assert failures(series, reason) == 1.0
    assert not any(k[0] == "totem_payment_device_info" for k in series)
    assert (status, got) == (DEGRADED, message)


def test_no_probe_while_the_tef_client_holds_the_port(pad: FakePinPad) -> None:
    with open(pad.port, "rb", buffering=0) as held:
        tef = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=held)
    try:
        series, status, message = scrape(make(pad.port, probe=True))
        assert series[("totem_payment_device_port_held", PAD)] == 1.0
        assert ("totem_payment_device_probe_success", PAD) not in series
        assert pad.received == b""
        assert status == OK and message.startswith("PIN pad: connected (in use by ")
        assert f"(pid {tef.pid})" in message
    finally:
        tef.kill()
        tef.wait()
