"""A fault-injecting remote_write receiver for the tests, and protobuf's own WriteRequest.

Real receivers (Prometheus, VictoriaMetrics) are used wherever they can show a
behaviour (tests/integration/test_remote_write.py). What they will not do on
demand comes from here, the thinnest layer that can: a real HTTP server on
127.0.0.1 that decodes each request with protobuf's runtime (not with the
agent's encoder), then answers by script (429 with Retry-After, 503, 400 with a
message, a connection that hangs) or by a per-sample rule (a whole batch
refused with 500 "too old sample" when any of its samples is too old, as
Prometheus 2.42 does).

The message classes are built at run time from a descriptor of prompb's
remote.proto/types.proto (the fields remote_write 1.0 uses), so no protoc run
and no generated code are needed.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _write_request_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="totem_test/prompb_remote.proto",
                                               package="prometheus", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            added = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                added.type_name = type_name

    optional, repeated = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("Label", ("name", 1, _F.TYPE_STRING, optional, ""),
            ("value", 2, _F.TYPE_STRING, optional, ""))
    message("Sample", ("value", 1, _F.TYPE_DOUBLE, optional, ""),
            ("timestamp", 2, _F.TYPE_INT64, optional, ""))
    message("TimeSeries", ("labels", 1, _F.TYPE_MESSAGE, repeated, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, repeated, ".prometheus.Sample"))
    message("WriteRequest",
            ("timeseries", 1, _F.TYPE_MESSAGE, repeated, ".prometheus.TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _write_request_class()

Labels = tuple[tuple[str, str], ...]  # every label, __name__ included, as sent


@dataclass(frozen=True)
class StoredSample:
    labels: Labels
    timestamp: int
    value: float

    @property
    def name(self) -> str:
        return dict(self.labels)["__name__"]


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: Mapping[str, str]
    body: bytes
    series: list[tuple[Labels, list[tuple[int, float]]]]
    at: float  # time.monotonic()

    @property
    def samples(self) -> int:
        return sum(len(samples) for _, samples in self.series)


def decode(body: bytes) -> list[tuple[Labels, list[tuple[int, float]]]]:
    """Snappy block + protobuf, with protobuf's runtime."""
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return [(tuple((label.name, label.value) for label in ts.labels),
             [(sample.timestamp, sample.value) for sample in ts.samples])
            for ts in request.timeseries]


# A scripted answer: (status, body, headers), or HANG (hold the connection, answer nothing).
Answer = tuple[int, str, Mapping[str, str]]
HANG = "hang"
# A per-sample rule: None to accept the sample, else (status, message) refusing the batch.
Rule = Callable[[Labels, int, float], tuple[int, str] | None]


@dataclass
class FakeReceiver:
    """POST /api/v1/write on 127.0.0.1; see the module docstring."""

    rule: Rule | None = None
    clock_offset: float = 0.0  # seconds added to the Date header (the far end's clock)
    script: list[Answer | str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    stored: list[StoredSample] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # status per request; 0 = hung
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    https: bool = False

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.https else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}/api/v1/write"

    def answer(self, body: bytes, headers: Mapping[str, str]) -> Answer | str:
        series = decode(body)
        with self.lock:
            self.received.append(Received(dict(headers), body, series, time.monotonic()))
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            return scripted
        refusal = None
        for labels, samples in series:
            for timestamp, value in samples:
                refusal = refusal or (self.rule(labels, timestamp, value) if self.rule else None)
        if refusal is not None:  # the whole batch is rolled back, as Prometheus does
            return refusal[0], refusal[1], {}
        with self.lock:
            self.stored += [StoredSample(labels, t, v) for labels, samples in series
                            for t, v in samples]
        return 204, "", {}

    def stored_by_series(self) -> dict[Labels, list[tuple[int, float]]]:
        out: dict[Labels, list[tuple[int, float]]] = {}
        with self.lock:
            for sample in self.stored:
                out.setdefault(sample.labels, []).append((sample.timestamp, sample.value))
        return out


def _handler(receiver: FakeReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            outcome = receiver.answer(body, {k: v for k, v in self.headers.items()})
            if outcome == HANG:
                with receiver.lock:
                    receiver.answers.append(0)
                receiver.release.wait(60)  # until the test ends: the client must time out
                self.close_connection = True
                return
            assert not isinstance(outcome, str)
            status, text, headers = outcome
            with receiver.lock:
                receiver.answers.append(status)
            data = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate((timestamp or time.time()) + receiver.clock_offset, usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the test asserts on `received`

    return Handler


@contextmanager
def fake_receiver(tls: ssl.SSLContext | None = None, **kwargs: Any) -> Iterator[FakeReceiver]:
    """A FakeReceiver serving on a free loopback port for the `with` block; with `tls`
    (a server-side context), https."""
    receiver = FakeReceiver(https=tls is not None, **kwargs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="fake-remote-write", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
