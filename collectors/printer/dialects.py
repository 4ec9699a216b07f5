"""ESC/POS-family status dialects: what to send, what a valid reply looks like, and
what it means (../shared/research/peripherals.md §1.1-1.4 has the sources).

A dialect is a list of queries plus a decoder. Every reply is validated before it
is decoded (exact length, the fixed bits, or two replies that must agree), so a
wrong dialect, line noise or a clone that answers anything is a failed probe
(`invalid_response`), never "paper adequate". The drawer-kick pin is never read:
it floats on kiosks without a cash drawer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from totem_agent.collectors.printer.status import PrinterStatus

DLE, EOT, ENQ, GS = 0x10, 0x04, 0x05, 0x1D


class InvalidReply(ValueError):
    """Replies that cannot be a printer's status in this dialect."""


@dataclass(frozen=True)
class Query:
    name: str                        # for messages: "DLE EOT 4 (paper sensor)"
    command: bytes
    length: int                      # exact reply length in bytes
    valid: Callable[[bytes], bool]   # the fixed-bit check


def _bit(value: int, mask: int) -> bool:
    return bool(value & mask)


def _dle_eot_valid(reply: bytes) -> bool:
    # Every DLE EOT reply has the pattern 0xx1xx10: bits 1 and 4 set, bits 0 and 7 clear.
    return len(reply) == 1 and reply[0] & 0x93 == 0x12


def _dle_eot(n: int, what: str) -> Query:
    return Query(f"DLE EOT {n} ({what})", bytes([DLE, EOT, n]), 1, _dle_eot_valid)


EPSON_QUERIES = (
    _dle_eot(1, "printer status"),
    _dle_eot(2, "offline cause"),
    _dle_eot(3, "error cause"),
    _dle_eot(4, "paper sensor"),
)


def decode_epson(replies: Sequence[bytes]) -> PrinterStatus:
    r1, r2, r3, r4 = (r[0] for r in replies[:4])
    return PrinterStatus(
        online=not _bit(r1, 0x08),
        cover_open=_bit(r2, 0x04),
        # Near end: either of the two near-end sensor bits (Citizen reports them apart).
        paper_near_end=_bit(r4, 0x0C),
        paper_out=_bit(r4, 0x60) or _bit(r2, 0x20),
        errors={
            "mechanical": _bit(r3, 0x04),
            "autocutter": _bit(r3, 0x08),
            "unrecoverable": _bit(r3, 0x20),
            "auto_recoverable": _bit(r3, 0x40),
        },
    )


# Custom (VKP80, KPM, TPTCM kiosk printers): the Epson set plus DLE EOT 20, the
# 6-byte FULL STATUS that also says whether a ticket waits in the presenter.
CUSTOM_QUERIES = (
    *EPSON_QUERIES,
    Query("DLE EOT 20 (full status)", bytes([DLE, EOT, 20]), 6,
          lambda r: len(r) == 6 and r[0] == 0x10 and r[1] == 0x0F),
)


def decode_custom(replies: Sequence[bytes]) -> PrinterStatus:
    base = decode_epson(replies)
    full = replies[4]
    paper, user, recoverable, unrecoverable = full[2], full[3], full[4], full[5]
    return PrinterStatus(
        online=base.online,
        cover_open=base.cover_open or _bit(user, 0x02),
        paper_near_end=base.paper_near_end or _bit(paper, 0x04),
        paper_out=base.paper_out or _bit(paper, 0x01),
        errors={**base.errors,
                "head_overheat": _bit(recoverable, 0x01),
                "unrecoverable": base.errors["unrecoverable"] or unrecoverable != 0},
        ticket_in_presenter=_bit(paper, 0x20),
    )


# Bematech MP-4200 TH / MP-2800 TH in ESC/Bema mode: GS F8 31, 5 bytes.
BEMATECH_QUERIES = (
    Query("GS F8 31 (extended status)", bytes([GS, 0xF8, 0x31]), 5,
          # byte 1 bit 7 and byte 2 bit 0 are fixed 1.
          lambda r: len(r) == 5 and _bit(r[0], 0x80) and _bit(r[1], 0x01)),
)


def decode_bematech(replies: Sequence[bytes]) -> PrinterStatus:
    b1, b2, b3, b4 = replies[0][:4]
    cover_open = not _bit(b2, 0x80)  # bit 7 = cover CLOSED
    # With the cover open the paper sensor sees nothing (real capture: 0x35), so the
    # paper bits say nothing about the roll: unknown rather than a false "paper out".
    return PrinterStatus(
        online=not _bit(b1, 0x08),
        cover_open=cover_open,
        paper_near_end=None if cover_open else _bit(b2, 0x02),
        paper_out=None if cover_open else _bit(b2, 0x20),
        errors={
            "autocutter": _bit(b3, 0x08),
            "unrecoverable": _bit(b3, 0x20),
            "auto_recoverable": _bit(b3, 0x40),
            "head_overheat": _bit(b4, 0x04),
        },
    )


# Daruma DR700/DR800: ENQ and GS ENQ, one byte each, no fixed bits, but they
# overlap: both say online/offline and paper out, and must agree.
DARUMA_QUERIES = (
    Query("ENQ (status)", bytes([ENQ]), 1, lambda r: len(r) == 1),
    Query("GS ENQ (extended status)", bytes([GS, ENQ]), 1, lambda r: len(r) == 1),
)


def decode_daruma(replies: Sequence[bytes]) -> PrinterStatus:
    enq, gs_enq = replies[0][0], replies[1][0]
    online = _bit(enq, 0x10)
    if online == _bit(gs_enq, 0x08):  # GS ENQ bit 3 = offline
        raise InvalidReply(f"ENQ ({enq:02x}) and GS ENQ ({gs_enq:02x}) disagree on online")
    paper_out = _bit(enq, 0x20)
    if paper_out != _bit(gs_enq, 0x02):
        raise InvalidReply(f"ENQ ({enq:02x}) and GS ENQ ({gs_enq:02x}) disagree on paper")
    cover_open = _bit(enq, 0x80)
    if (cover_open or paper_out) and _bit(gs_enq, 0x10):  # bit 4 = cover closed, paper seen
        raise InvalidReply(f"GS ENQ ({gs_enq:02x}) says cover closed with paper, "
                           f"ENQ ({enq:02x}) does not")
    return PrinterStatus(
        online=online,
        cover_open=cover_open,
        paper_near_end=_bit(gs_enq, 0x01) or paper_out,
        paper_out=paper_out,
        errors={"other": _bit(enq, 0x08) or _bit(gs_enq, 0x40)},
    )


@dataclass(frozen=True)
class Dialect:
    name: str
    queries: tuple[Query, ...]
    decode: Callable[[Sequence[bytes]], PrinterStatus]
    reads_identity: bool           # answers GS I (maker, model, firmware)
    speaks_asb: bool               # Automatic Status Back (GS a) for asb mode


DIALECTS: dict[str, Dialect] = {
    "epson": Dialect("epson", EPSON_QUERIES, decode_epson, True, True),
    "bematech": Dialect("bematech", BEMATECH_QUERIES, decode_bematech, False, False),
    "daruma": Dialect("daruma", DARUMA_QUERIES, decode_daruma, False, False),
    "custom": Dialect("custom", CUSTOM_QUERIES, decode_custom, True, True),
}


# ---- Automatic Status Back (GS a): 4 bytes the printer sends on every change ----------

ASB_ENABLE = bytes([GS, 0x61, 0x0E])   # report online/offline, errors, paper sensor
ASB_DISABLE = bytes([GS, 0x61, 0x00])
XON, XOFF = 0x11, 0x13


def _asb_frame_valid(frame: bytes) -> bool:
    # byte 1 pattern 0xx1xx00; bytes 2-4 pattern 0xx0xxxx.
    return (len(frame) == 4 and frame[0] & 0x93 == 0x10
            and all(b & 0x90 == 0 for b in frame[1:]))


def last_asb_frame(data: bytes) -> bytes | None:
    """The newest valid 4-byte ASB frame in a stream (XON/XOFF removed), or None."""
    stream = bytes(b for b in data if b not in (XON, XOFF))
    for end in range(len(stream), 3, -1):
        frame = stream[end - 4:end]
        if _asb_frame_valid(frame):
            return frame
    return None


def decode_asb(frame: bytes) -> PrinterStatus:
    b1, b2, b3 = frame[0], frame[1], frame[2]
    return PrinterStatus(
        online=not _bit(b1, 0x08),
        cover_open=_bit(b1, 0x20),
        paper_near_end=_bit(b3, 0x03),   # not the DLE EOT 4 bit positions
        paper_out=_bit(b3, 0x0C),
        errors={
            "mechanical": _bit(b2, 0x04),
            "autocutter": _bit(b2, 0x08),
            "unrecoverable": _bit(b2, 0x20),
            "auto_recoverable": _bit(b2, 0x40),
        },
    )


# ---- identity: GS I n, "_" + ASCII + NUL; not real-time, so only when online ----------

GS_I = {"firmware": 0x41, "vendor": 0x42, "model": 0x43}


def gs_i(n: int) -> bytes:
    return bytes([GS, 0x49, n])


def parse_gs_i(reply: bytes) -> str | None:
    """The text of a GS I reply, or None when it is not one."""
    if len(reply) < 2 or reply[0] != 0x5F or reply[-1] != 0x00:
        return None
    text = reply[1:-1]
    if not all(0x20 <= b < 0x7F for b in text):
        return None
    return text.decode("ascii").strip()
