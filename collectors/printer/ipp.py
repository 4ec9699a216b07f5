"""A small IPP/1.1 (RFC 8010) encoder and decoder: enough for Get-Printer-Attributes.

IPP is a binary body in an HTTP POST with content-type application/ipp:
version, operation or status code, request id, then attribute groups, each
attribute `value-tag, name-length, name, value-length, value`; a name length of
0 adds a value to the previous attribute (a 1setOf). Written here rather than
depending on pycups (a C extension needing libcups headers).
"""

from __future__ import annotations

import itertools
import struct
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client

GET_PRINTER_ATTRIBUTES = 0x000B

# Delimiter tags.
OPERATION_ATTRIBUTES = 0x01
END_OF_ATTRIBUTES = 0x03
# Value tags.
TAG_UNSUPPORTED = 0x10
TAG_UNKNOWN = 0x12
TAG_NO_VALUE = 0x13
TAG_INTEGER = 0x21
TAG_BOOLEAN = 0x22
TAG_ENUM = 0x23
TAG_OCTET_STRING = 0x30
TAG_DATETIME = 0x31
TAG_RESOLUTION = 0x32
TAG_RANGE = 0x33
TAG_BEG_COLLECTION = 0x34
TAG_TEXT_WITH_LANGUAGE = 0x35
TAG_NAME_WITH_LANGUAGE = 0x36
TAG_END_COLLECTION = 0x37
TAG_TEXT = 0x41
TAG_NAME = 0x42
TAG_KEYWORD = 0x44
TAG_URI = 0x45
TAG_CHARSET = 0x47
TAG_LANGUAGE = 0x48
TAG_MIME = 0x49
TAG_MEMBER_NAME = 0x4A

STATUS_OK_MAX = 0x00FF           # successful-ok .. successful-ok-*
STATUS_NOT_FOUND = 0x0406        # client-error-not-found

_request_ids = itertools.count(1)


class IppError(ValueError):
    """A body that is not a well-formed IPP response."""


def _attribute(tag: int, name: str, value: bytes) -> bytes:
    encoded = name.encode("utf-8")
    return struct.pack(">BH", tag, len(encoded)) + encoded + struct.pack(">H", len(value)) + value


def encode_get_printer_attributes(printer_uri: str, requested: Sequence[str],
                                  request_id: int | None = None) -> bytes:
    """The body of a Get-Printer-Attributes request for `printer_uri`."""
    rid = next(_request_ids) if request_id is None else request_id
    out = bytearray(struct.pack(">BBHI", 2, 0, GET_PRINTER_ATTRIBUTES, rid))
    out.append(OPERATION_ATTRIBUTES)
    out += _attribute(TAG_CHARSET, "attributes-charset", b"utf-8")
    out += _attribute(TAG_LANGUAGE, "attributes-natural-language", b"en")
    out += _attribute(TAG_URI, "printer-uri", printer_uri.encode("utf-8"))
    for index, keyword in enumerate(requested):
        out += _attribute(TAG_KEYWORD, "requested-attributes" if index == 0 else "",
                          keyword.encode("ascii"))
    out.append(END_OF_ATTRIBUTES)
    return bytes(out)


def _value(tag: int, raw: bytes) -> Any:
    if tag in (TAG_INTEGER, TAG_ENUM):
        if len(raw) != 4:
            raise IppError(f"integer of {len(raw)} bytes")
        return struct.unpack(">i", raw)[0]
    if tag == TAG_BOOLEAN:
        if len(raw) != 1:
            raise IppError(f"boolean of {len(raw)} bytes")
        return raw != b"\x00"
    if tag in (TAG_TEXT_WITH_LANGUAGE, TAG_NAME_WITH_LANGUAGE):
        if len(raw) < 4:
            raise IppError("truncated text with language")
        lang_len = struct.unpack(">H", raw[:2])[0]
        rest = raw[2 + lang_len:]
        text_len = struct.unpack(">H", rest[:2])[0]
        return rest[2:2 + text_len].decode("utf-8", "replace")
    if 0x40 <= tag <= 0x5F:
        return raw.decode("utf-8", "replace")
    if tag in (TAG_UNSUPPORTED, TAG_UNKNOWN, TAG_NO_VALUE):
        return None
    return raw  # octetString, dateTime, resolution, rangeOfInteger: kept as bytes


class IppResponse:
    """A decoded response: status code and each group's attributes (name -> values)."""

    def __init__(self, version: tuple[int, int], status: int, request_id: int,
                 groups: list[tuple[int, dict[str, list[Any]]]]) -> None:
        self.version = version
        self.status = status
        self.request_id = request_id
        self.groups = groups

    @property
    def ok(self) -> bool:
        return self.status <= STATUS_OK_MAX

    def group(self, tag: int) -> dict[str, list[Any]]:
        """All attributes of every group with this delimiter tag (0x04 printer)."""
        merged: dict[str, list[Any]] = {}
        for group_tag, attributes in self.groups:
            if group_tag == tag:
                for name, values in attributes.items():
                    merged.setdefault(name, []).extend(values)
        return merged


def decode_response(body: bytes) -> IppResponse:
    """Parse an IPP response; IppError when it is truncated or malformed."""
    if len(body) < 9:
        raise IppError(f"response of {len(body)} bytes is too short for IPP")
    major, minor, status, request_id = struct.unpack(">BBHI", body[:8])
    groups: list[tuple[int, dict[str, list[Any]]]] = []
    pos = 8
    current: dict[str, list[Any]] | None = None
    last_name = ""
    depth = 0   # inside a collection (skipped: nothing we read is one)
    while True:
        if pos >= len(body):
            raise IppError("response ends before end-of-attributes")
        tag = body[pos]
        pos += 1
        if tag == END_OF_ATTRIBUTES:
            break
        if tag < 0x10:
            current = {}
            groups.append((tag, current))
            continue
        if current is None:
            raise IppError(f"value tag {tag:#04x} before any attribute group")
        if pos + 2 > len(body):
            raise IppError("truncated attribute name length")
        (name_len,) = struct.unpack(">H", body[pos:pos + 2])
        pos += 2
        name = body[pos:pos + name_len].decode("utf-8", "replace")
        pos += name_len
        if pos + 2 > len(body):
            raise IppError("truncated attribute value length")
        (value_len,) = struct.unpack(">H", body[pos:pos + 2])
        pos += 2
        raw = body[pos:pos + value_len]
        if len(raw) != value_len:
            raise IppError(f"attribute {name or last_name!r} is truncated")
        pos += value_len
        if tag == TAG_BEG_COLLECTION:
            depth += 1
            if depth == 1 and name:
                last_name = name
            continue
        if tag == TAG_END_COLLECTION:
            depth = max(depth - 1, 0)
            continue
        if depth or tag == TAG_MEMBER_NAME:
            continue
        if name:
            last_name = name
            current.setdefault(name, [])
        elif not last_name:
            raise IppError("additional value without an attribute")
        current[last_name].append(_value(tag, raw))
    return IppResponse((major, minor), status, request_id, groups)


def http_target(uri: str) -> tuple[str, str, int, str, bool]:
    """(printer-uri as sent, host, port, path, tls) from ipp://, ipps://, http(s)://."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme not in ("ipp", "ipps", "http", "https") or not parsed.hostname:
        raise ValueError(f"expected ipp://HOST:PORT/printers/NAME, got {uri!r}")
    tls = scheme in ("ipps", "https")
    port = parsed.port or 631
    path = parsed.path or "/"
    printer_uri = urllib.parse.urlunsplit(("ipps" if tls else "ipp", parsed.netloc, path, "", ""))
    return printer_uri, parsed.hostname, port, path, tls


def get_printer_attributes(uri: str, requested: Sequence[str], timeout: float) -> IppResponse:
    """POST Get-Printer-Attributes to the printer's URI. Raises OSError (cannot reach
    the server), IppError (not IPP) or http.client.HTTPException."""
    # Imported when a printer is queried, not with the collector: http.client brings
    # email, and ssl (OpenSSL's libraries) for an https:// print server.
    import http.client

    printer_uri, host, port, path, tls = http_target(uri)
    connection: http.client.HTTPConnection
    if tls:
        connection = http.client.HTTPSConnection(host, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        body = encode_get_printer_attributes(printer_uri, requested)
        connection.request("POST", path, body=body,
                           headers={"Content-Type": "application/ipp"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise IppError(f"HTTP {response.status} {response.reason} from {host}:{port}{path}")
        if response.getheader("Content-Type", "").split(";")[0].strip() != "application/ipp":
            raise IppError(f"{host}:{port}{path} did not answer with application/ipp")
        return decode_response(data)
    finally:
        connection.close()
