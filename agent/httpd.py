"""HTTP/1.1 request heads, read strictly; response heads, written in one piece.

The protocol half of the agent's server (agent/server.py holds the routes and the
connections). The standard library's http.server parses headers with the email
package and imports http.client and ssl on the way: about 3 MB of the agent's RSS,
and tens of microseconds of GIL per request on a kiosk whose collectors want it
too. The agent serves a handful of routes to Prometheus and to its own tools, so
this module does only what they need, by the RFC 9112 rules and with http.server's
limits: a request line or header line over 64 KiB, more than 100 header lines, a
malformed line, a body framed by anything but Content-Length: each is answered
with its status (ProtocolError) and the connection is closed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import IO, TypeVar, overload

MAX_LINE = 65536  # http.server's limit on the request line and on each header line
MAX_HEADERS = 100  # http.client's limit on header lines

_T = TypeVar("_T")
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# method SP request-target SP HTTP-version; the target is visible ASCII only.
_REQUEST_LINE = re.compile(b"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])\r?\n")
# name ":" OWS value OWS; no whitespace before the colon (RFC 9112 5.1), no control
# characters in the value but tab (a bare CR or a NUL is how requests get smuggled).
_HEADER_LINE = re.compile(b"(" + _TOKEN + rb"):([^\x00-\x08\x0a-\x1f\x7f]*)\r?\n")
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache: tuple[int, str] = (-1, "")


class ProtocolError(Exception):
    """A request answered with `status` and `message`, then the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client stopped sending (timeout) or went away in the middle of its body."""


class Headers:
    """A request's headers; names in any case. A repeated header's values are joined
    with ", " (RFC 9110 5.3), so `get` sees them all."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        old = self._values.get(key)
        self._values[key] = value if old is None else f"{old}, {value}"

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: _T) -> str | _T: ...

    def get(self, name: str, default: object = None) -> object:
        return self._values.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> Iterator[tuple[str, str]]:
        """(lower-case name, value) pairs."""
        return iter(self._values.items())

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of a header (Connection, ...), lower case."""
        value = self._values.get(name.lower())
        if not value:
            return set()
        return {token.strip().lower() for token in value.split(",")}


class Body:
    """The request's body as a route sees it (`request.rfile`): reads stop at its
    Content-Length, so a route cannot read into the next request on the connection.
    `on_first_read` answers `Expect: 100-continue` when the route does read: a
    request refused before its body is read never asks the client for it."""

    __slots__ = ("_on_first_read", "_reader", "remaining")

    def __init__(self, reader: IO[bytes] | None, length: int,
                 on_first_read: Callable[[], None] | None = None) -> None:
        self._reader = reader
        self.remaining = length
        self._on_first_read = on_first_read

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.remaining:
            size = self.remaining
        if size == 0 or self._reader is None:
            return b""
        if self._on_first_read is not None:
            on_first_read, self._on_first_read = self._on_first_read, None
            on_first_read()
        try:
            data = self._reader.read(size)
        except OSError as err:  # a timeout or a reset: there is no one to answer
            raise ClientGone(str(err)) from err
        self.remaining -= len(data)
        if len(data) < size:
            raise ClientGone(f"the body ended {self.remaining} bytes short of its "
                             "Content-Length")
        return data


NO_BODY = Body(None, 0)


def parse_request_line(line: bytes) -> tuple[str, str, tuple[int, int]]:
    """(method, request-target as a path, (major, minor)) of a request line."""
    if len(line) > MAX_LINE:
        raise ProtocolError(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, major, minor = match.groups()
    if major != b"1":
        raise ProtocolError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                            "only HTTP/1.0 and HTTP/1.1 are served")
    path = target.decode("ascii")
    if path[0] != "/":
        # absolute-form (RFC 9112 3.2.2) is served by its path; nothing else is a path here.
        scheme, sep, rest = path.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise ProtocolError(HTTPStatus.BAD_REQUEST, "malformed request target")
        path = "/" + rest.partition("/")[2]
    return method.decode("ascii"), path, (1, int(minor))


def read_headers(reader: IO[bytes]) -> Headers:
    """The header lines up to the empty line that ends them."""
    headers = Headers()
    count = 0
    while True:
        line = reader.readline(MAX_LINE + 1)
        if line == b"\r\n" or line == b"\n":
            return headers
        if len(line) > MAX_LINE:
            raise ProtocolError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                "header line too long")
        count += 1
        if count > MAX_HEADERS:
            raise ProtocolError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            if not line.endswith(b"\n"):
                raise ClientGone("the connection closed in the middle of the headers")
            # Folded lines (obsolete) are refused too, as RFC 9112 5.2 allows.
            raise ProtocolError(HTTPStatus.BAD_REQUEST, "malformed header line")
        name, value = match.groups()
        headers.add(name.decode("ascii"), value.strip(b" \t").decode("latin-1"))


def body_length(headers: Headers) -> int:
    """The Content-Length of the request's body (0 without one); bodies framed any
    other way are refused, as is a length that could be read two ways."""
    coding = headers.get("Transfer-Encoding")
    length = headers.get("Content-Length")
    if coding is not None:
        if length is not None:
            raise ProtocolError(HTTPStatus.BAD_REQUEST,
                                "both Transfer-Encoding and Content-Length")
        if [c.strip().lower() for c in coding.split(",")] == ["chunked"]:
            raise ProtocolError(HTTPStatus.LENGTH_REQUIRED, "chunked request bodies are not "
                                "accepted: send the body with a Content-Length")
        raise ProtocolError(HTTPStatus.NOT_IMPLEMENTED,
                            f"Transfer-Encoding {coding!r} is not supported")
    if length is None:
        return 0
    values = {value.strip() for value in length.split(",")}
    text = values.pop()
    if values or not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ProtocolError(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
    return int(text)


def keep_alive(version: tuple[int, int], headers: Headers) -> bool:
    """Whether the client lets the connection carry another request."""
    tokens = headers.tokens("Connection")
    if version >= (1, 1):
        return "close" not in tokens
    return "keep-alive" in tokens


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def http_date(now: float | None = None) -> str:
    """RFC 9110's IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), English whatever the
    locale; the current second's is cached (one per second, not per request)."""
    global _date_cache
    second = int(time.time() if now is None else now)
    cached = _date_cache
    if cached[0] == second:
        return cached[1]
    t = time.gmtime(second)
    text = (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
    _date_cache = (second, text)
    return text
