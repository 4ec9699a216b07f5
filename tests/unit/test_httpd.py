"""The server's HTTP/1.1 protocol edges, over real loopback sockets: what a strict
server answers to malformed, oversized, pipelined, slow and old-fashioned requests."""

from __future__ import annotations

import email.utils
import io
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import wait_until
from totem_agent.httpd import (
    MAX_HEADERS,
    MAX_LINE,
    ClientGone,
    Headers,
    ProtocolError,
    body_length,
    http_date,
    keep_alive,
    parse_request_line,
    read_headers,
)
from totem_agent.server import AgentHTTPServer, RequestHandler, Response


def hello(request: RequestHandler) -> Response:
    return Response(200, f"hello {request.headers.get('x-name', 'you')}\n".encode(),
                    "text/plain; charset=utf-8")


def echo(request: RequestHandler) -> Response:
    length = int(request.headers.get("Content-Length") or 0)
    return Response(200, request.rfile.read(length), "application/octet-stream")


def refuse(request: RequestHandler) -> Response:
    return Response(413, b"too large\n", "text/plain")  # without reading the body


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Client:
    """A raw connection: sends bytes as given, reads responses one by one."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, head_only: bool = False) -> Answer:
        status_line = self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        return Answer(int(status_line.split()[1]), headers, self.reader.read(length))

    def closed(self) -> bool:
        """True when the server closed the connection (reads at EOF)."""
        return self.reader.read(1) == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[AgentHTTPServer]:
    httpd = AgentHTTPServer(("127.0.0.1", 0), {("GET", "/hello"): hello,
                                               ("POST", "/echo"): echo,
                                               ("POST", "/refuse"): refuse})
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def client(server: AgentHTTPServer) -> Iterator[Client]:
    host, port = server.server_address[:2]
    connection = Client((str(host), int(port)))
    yield connection
    connection.close()


def refused(client: Client, request: bytes, status: int, error: str) -> Answer:
    client.send(request)
    answer = client.answer()
    assert answer.status == status, answer
    assert error in answer.body.decode() and answer.headers["connection"] == "close"
    assert client.closed()
    return answer


# -- over the wire ---------------------------------------------------------------------

def test_keep_alive_by_default_with_server_and_date(client: Client) -> None:
    for name in ("a", "b"):
        client.send(f"GET /hello HTTP/1.1\r\nHost: x\r\nX-Name: {name}\r\n\r\n".encode())
        answer = client.answer()
        assert answer.status == 200 and answer.body == f"hello {name}\n".encode()
        assert "connection" not in answer.headers
    assert answer.headers["server"].startswith("totem-agent/")
    assert email.utils.parsedate_to_datetime(answer.headers["date"]).tzname() == "UTC"


def test_connection_close_is_honoured(client: Client) -> None:
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = client.answer()
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert client.closed()


def test_http_1_0_closes_unless_keep_alive_is_asked(client: Client,
                                                    server: AgentHTTPServer) -> None:
    client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    answer = client.answer()
    assert answer.status == 200 and answer.headers["connection"] == "keep-alive"
    client.send(b"GET /hello HTTP/1.0\r\n\r\n")
    answer = client.answer()
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert client.closed()


def test_pipelined_requests_are_answered_in_order(client: Client) -> None:
    client.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Name: one\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Name: three\r\n\r\n")
    assert client.answer().body == b"hello one\n"
    assert client.answer().body == b"abc"
    assert client.answer().body == b"hello three\n"


def test_head_has_gets_headers_and_no_body(client: Client) -> None:
    client.send(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    head = client.answer(head_only=True)
    assert head.status == 200 and head.headers["content-length"] == str(len(b"hello you\n"))
    assert client.answer().body == b"hello you\n"  # nothing was sent between the two


def test_unknown_path_method_and_not_implemented_method(client: Client) -> None:
    client.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.answer().status == 404
    client.send(b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = client.answer()
    assert answer.status == 405 and answer.headers["allow"] == "GET"
    refused(client, b"BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n", 501, "BREW is not served")


@pytest.mark.parametrize("line", [b"GET /hello\r\n", b"GET  /hello HTTP/1.1\r\n",
                                  b"GET /hello HTTP/1.1 extra\r\n", b"G\x00T / HTTP/1.1\r\n",
                                  b"GET hello HTTP/1.1\r\n", b"GET /he llo HTTP/1.1\r\n"])
def test_malformed_request_line_is_400(client: Client, line: bytes) -> None:
    refused(client, line + b"Host: x\r\n\r\n", 400, "malformed request")


def test_http_2_request_line_is_505(client: Client) -> None:
    refused(client, b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1")


def test_request_line_too_long_is_414(client: Client) -> None:
    refused(client, b"GET /" + b"a" * MAX_LINE + b" HTTP/1.1\r\n\r\n", 414, "too long")


def test_header_line_too_long_is_431(client: Client) -> None:
    refused(client, b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * MAX_LINE + b"\r\n\r\n", 431,
            "header line too long")


def test_too_many_headers_is_431(client: Client, server: AgentHTTPServer) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    refused(client, b"GET /hello HTTP/1.1\r\n" + many + b"\r\n", 431, "too many headers")
    # Counted like any answer, under the route its request line named.
    wait_until(lambda: server.http_metrics._requests.get(("/hello", "431")) == 1,
               message="the 431 counted")


@pytest.mark.parametrize("header", [b"X-Bad : v", b" X-Folded: v", b"X-Nul: a\x00b",
                                    b"X-Cr: a\rb", b"NoColon"])
def test_malformed_header_line_is_400(client: Client, header: bytes) -> None:
    refused(client, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n", 400,
            "malformed header line")


def test_expect_100_continue_is_answered_when_the_body_is_read(client: Client) -> None:
    client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n")
    interim = client.reader.readline()
    assert interim == b"HTTP/1.1 100 Continue\r\n" and client.reader.readline() == b"\r\n"
    client.send(b"hello")
    answer = client.answer()
    assert answer.status == 200 and answer.body == b"hello"


def test_expect_100_continue_refused_before_the_body_closes(client: Client) -> None:
    client.send(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n")
    answer = client.answer()  # no 100 Continue first: the body is not wanted
    assert answer.status == 413 and answer.headers["connection"] == "close"
    assert client.closed()


def test_unknown_expectation_is_417(client: Client) -> None:
    refused(client, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            b"Expect: coffee\r\n\r\nx", 417, "cannot meet the expectation")


def test_chunked_body_is_refused_with_411(client: Client) -> None:
    refused(client, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n", 411, "Content-Length")


def test_other_transfer_coding_is_501_and_smuggling_shapes_are_400(client: Client,
                                                                   server: AgentHTTPServer
                                                                   ) -> None:
    refused(client, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"\r\n", 501, "not supported")
    host, port = server.server_address[:2]
    for request in (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Length: 3\r\n\r\nabc",
                    b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                    b"POST /echo HTTP/1.1\r\nContent-Length: -3\r\n\r\n"):
        other = Client((str(host), int(port)))
        try:
            assert refused(other, request, 400, "").status == 400
        finally:
            other.close()


def test_unread_body_closes_the_connection(client: Client) -> None:
    # 405 answered without reading the body: it cannot be taken for the next request.
    client.send(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n"
                b"GET /hello HTTP/1.1\r\n\r\n")
    answer = client.answer()
    assert answer.status == 405 and answer.headers["connection"] == "close"
    assert client.closed()


def test_a_stalled_request_times_out_with_408(server: AgentHTTPServer) -> None:
    server.idle_timeout = 0.2
    host, port = server.server_address[:2]
    stalled = Client((str(host), int(port)))
    try:
        stalled.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finished
        answer = stalled.answer()  # the socket's own 5 s timeout is the test's deadline
        assert answer.status == 408 and stalled.closed()
    finally:
        stalled.close()


def test_an_idle_connection_is_closed_silently(server: AgentHTTPServer) -> None:
    server.idle_timeout = 0.2
    host, port = server.server_address[:2]
    idle = Client((str(host), int(port)))
    try:
        idle.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.answer().status == 200
        assert idle.closed()  # after idle_timeout, without a response
        wait_until(lambda: server._open == 0, message="the connection's slot released")
    finally:
        idle.close()


# -- the parser, without a socket ------------------------------------------------------

def test_request_line_forms() -> None:
    assert parse_request_line(b"GET /a?b=c HTTP/1.1\r\n") == ("GET", "/a?b=c", (1, 1))
    assert parse_request_line(b"GET /a HTTP/1.0\n") == ("GET", "/a", (1, 0))
    assert parse_request_line(b"GET http://kiosk:10084/metrics?x HTTP/1.1\r\n") == \
        ("GET", "/metrics?x", (1, 1))
    with pytest.raises(ProtocolError) as err:
        parse_request_line(b"GET ftp://kiosk/ HTTP/1.1\r\n")
    assert err.value.status == 400


def test_headers_any_case_and_repeated_joined() -> None:
    headers = read_headers(io.BytesIO(b"Accept: a\r\naccept: b\r\nX-Empty:\r\n"
                                      b"Content-Length:  7 \r\n\r\n"))
    assert headers.get("ACCEPT") == "a, b" and headers["accept"] == "a, b"
    assert headers.get("x-empty") == "" and "X-EMPTY" in headers
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert body_length(headers) == 7


def test_headers_cut_short_are_not_a_request() -> None:
    with pytest.raises(ClientGone):
        read_headers(io.BytesIO(b"Host: x\r\nAcc"))


def test_content_length_that_reads_two_ways_is_refused() -> None:
    for value in ("1, 2", "+1", "1e3", "\u00b2", "9" * 19):
        headers = Headers()
        headers.add("Content-Length", value)
        with pytest.raises(ProtocolError):
            body_length(headers)
    same = Headers()
    same.add("Content-Length", "4")
    same.add("Content-Length", "4")
    assert body_length(same) == 4


@pytest.mark.parametrize("when", [0, 784111777, 1700000000.9, 1772323200, 4102444799])
def test_http_date_is_rfc_format(when: float) -> None:
    assert http_date(when) == email.utils.formatdate(int(when), usegmt=True)


# -- fuzzed: any bytes give a request or a ProtocolError, never another exception ------

VALID_HEADS = [
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*;q=0.1\r\n\r\n",
    b"POST /api/v1/events HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD http://k/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
]
EXAMPLES = int(os.environ.get("TOTEM_FUZZ_EXAMPLES", "300"))


@st.composite
def mutated_heads(draw: st.DrawFn) -> bytes:
    head = bytearray(draw(st.sampled_from(VALID_HEADS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(head)))
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        if kind == "flip" and at < len(head):
            head[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            head[at:at] = draw(st.sampled_from([b"\r", b"\n", b" ", b"\t", b":", b",", b"\x00",
                                                b"\xff", b"HTTP/9.9", b"Content-Length: 9\r\n"]))
        else:
            del head[at:at + draw(st.integers(1, 8))]
    return bytes(head)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_heads(), st.binary(max_size=200)))
def test_fuzzed_request_heads_parse_or_are_refused(data: bytes) -> None:
    reader = io.BufferedReader(io.BytesIO(data))
    try:
        method, path, version = parse_request_line(reader.readline(MAX_LINE + 1))
        headers = read_headers(reader)
        length = body_length(headers)
        keep_alive(version, headers)
    except ProtocolError as err:
        assert 400 <= err.status < 600 and err.message
        return
    except ClientGone:
        return
    assert method.isascii() and path.startswith("/") and version[0] == 1 and length >= 0
