"""Kiosk peripherals from fixture trees: displays, USB devices, processes, PIN pads;
and the decoders that need no device (Windows spooler values, IPP, dialect vectors)."""

from __future__ import annotations

import os
import shutil
import tty
from pathlib import Path
from typing import Any

import pytest

from tests.support import FIXTURES, samples
from totem_agent.collectors.base import CollectorContext, HostPaths
from totem_agent.collectors.display import DisplayCollector
from totem_agent.collectors.payment import PaymentCollector
from totem_agent.collectors.printer import dialects, ipp
from totem_agent.collectors.printer.collector import PrinterCollector
from totem_agent.collectors.printer.cups import split_reason
from totem_agent.collectors.printer.windows import decode
from totem_agent.collectors.process import ProcessCollector
from totem_agent.collectors.usb import UsbCollector
from totem_agent.config import ConfigError, load_config
from totem_agent.health import DEGRADED, NOT_APPLICABLE, OK

TREE = FIXTURES / "peripherals"


def ctx(root: Path = TREE) -> CollectorContext:
    return CollectorContext(HostPaths(procfs=root / "proc", sysfs=root / "sys"))


def test_display_connectors(tmp_path: Path) -> None:
    collector = DisplayCollector(ctx(), {"connectors": ()})
    s = samples(collector.collect())
    assert s[("totem_display_connected", (("connector", "HDMI-A-1"),))] == 1.0
    assert s[("totem_display_connected", (("connector", "DP-1"),))] == 0.0
    assert s[("totem_display_enabled", (("connector", "DP-1"),))] == 0.0
    assert collector.health_checks()[0].status == OK
    # A required connector that loses its screen, then gets it back.
    root = tmp_path / "tree"
    shutil.copytree(TREE, root, symlinks=True)
    status = root / "sys/class/drm/card0-HDMI-A-1/status"
    collector = DisplayCollector(ctx(root), {"connectors": ("HDMI-A-1",)})
    status.write_text("disconnected\n")
    collector.collect()
    check = collector.health_checks()[0]
    assert (check.name, check.status, check.message) == (
        "display", DEGRADED, "Screen HDMI-A-1 disconnected")
    status.write_text("unknown\n")
    s = samples(collector.collect())
    assert ("totem_display_connected", (("connector", "HDMI-A-1"),)) not in s
    status.write_text("connected\n")
    collector.collect()
    assert collector.health_checks()[0].status == OK


def test_usb_devices_by_role() -> None:
    collector = UsbCollector(ctx(), {"devices": (
        {"role": "scanner", "vid": "0C2E", "pid": "0b61", "title": "Barcode scanner"},
        {"role": "touchscreen", "vid": "0eef", "pid": "0001"})})
    s = samples(collector.collect())
    assert s[("totem_usb_device_present", (("pid", "0b61"), ("role", "scanner"),
                                           ("vid", "0c2e")))] == 1.0
    assert s[("totem_usb_device_present", (("pid", "0001"), ("role", "touchscreen"),
                                           ("vid", "0eef")))] == 0.0
    messages = {c.name: (c.status, c.message) for c in collector.health_checks()}
    assert messages == {
        "usb:scanner": (OK, "Barcode scanner: connected"),
        "usb:touchscreen": (DEGRADED, "Touchscreen: not connected (USB device 0eef:0001 "
                                      "missing)")}


def test_process_up_and_start_time() -> None:
    collector = ProcessCollector(ctx(), {"processes": (
        {"name": "kiosk", "match": "chromium.*--kiosk", "title": "Kiosk app (chromium)"},
        {"name": "tef", "comm": "clisitef (tef)"},
        {"name": "printer-daemon", "comm": "printd", "title": "Print service"})})
    s = samples(collector.collect())
    ticks = os.sysconf("SC_CLK_TCK")
    assert s[("totem_process_up", (("name", "kiosk"),))] == 1.0
    # The oldest match (the browser's main process, not its renderer).
    assert s[("totem_process_start_time_seconds", (("name", "kiosk"),))] == \
        1700000000 + 12000 / ticks
    assert s[("totem_process_start_time_seconds", (("name", "tef"),))] == \
        1700000000 + 500 / ticks
    assert s[("totem_process_up", (("name", "printer-daemon"),))] == 0.0
    checks = {c.name: (c.status, c.message) for c in collector.health_checks()}
    assert checks["process:kiosk"] == (OK, "Kiosk app (chromium) is running")
    assert checks["process:printer-daemon"] == (DEGRADED, "Print service is not running")


def test_payment_device_present_missing_and_held(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    port = os.ttyname(slave)
    os.close(slave)
    proc = tmp_path / "proc"
    (proc / "77/fd").mkdir(parents=True)
    (proc / "77/comm").write_text("clisitef\n")
    os.symlink(port, proc / "77/fd/5")
    paths = HostPaths(procfs=proc, sysfs=TREE / "sys")
    try:
        collector = PaymentCollector(CollectorContext(paths), {"devices": (
            {"name": "pinpad", "vid": "079b", "pid": "0028", "port": port},
            {"name": "spare", "vid": "11ca", "pid": "0220", "port": "/dev/nonexistent-pad"})})
        s = samples(collector.collect())
        pad, spare = (("device", "pinpad"),), (("device", "spare"),)
        assert s[("totem_payment_device_usb_present", pad)] == 1.0
        assert s[("totem_payment_device_port_present", pad)] == 1.0
        assert s[("totem_payment_device_port_held", pad)] == 1.0
        assert s[("totem_payment_device_usb_present", spare)] == 0.0
        assert ("totem_payment_device_port_held", spare) not in s
        checks = {c.name: (c.status, c.message) for c in collector.health_checks()}
        assert checks["payment:pinpad"] == (OK, "PIN pad: connected (in use by clisitef "
                                                "(pid 77))")
        assert checks["payment:spare"] == (DEGRADED, "PIN pad: not connected (USB device "
                                                     "11ca:0220 missing; /dev/nonexistent-pad "
                                                     "missing)")
        (proc / "77/fd/5").unlink()
        s = samples(collector.collect())
        assert s[("totem_payment_device_port_held", pad)] == 0.0
    finally:
        os.close(master)


def test_unconfigured_peripherals_have_nothing_to_watch() -> None:
    from totem_agent.collectors.base import NoDataError
    for cls, key in ((PaymentCollector, "devices"), (UsbCollector, "devices"),
                     (ProcessCollector, "processes"), (PrinterCollector, "printers")):
        with pytest.raises(NoDataError):
            list(cls(ctx(), {key: ()}).collect())


# -- config errors name the key ---------------------------------------------------------

@pytest.mark.parametrize(("toml", "problem"), [
    ('[[collectors.printer.printers]]\nname = "receipt"\nport = "/dev/x"\nbaudrate = "fast"\n',
     "collectors.printer.printers[0].baudrate: expected a whole number"),
    ('[[collectors.printer.printers]]\nname = "receipt"\n',
     "collectors.printer.printers[0].port: set either port"),
    ('[[collectors.printer.printers]]\nname = "r"\nport = "/dev/x"\ndialect = "zebra"\n',
     "collectors.printer.printers[0].dialect: expected one of epson, bematech, daruma, custom"),
    ('[[collectors.printer.printers]]\nname = "o"\nsource = "cups"\nuri = "lpd://x"\n',
     "collectors.printer.printers[0].uri: expected ipp://"),
    ('[[collectors.printer.printers]]\nname = "o"\nsource = "cups"\nuri = "ipp://h/p"\n'
     'port = "/dev/x"\n', "collectors.printer.printers[0].port: does not apply to source"),
    ('[[collectors.printer.printers]]\nname = "r"\nport = "/dev/x"\ndialect = "daruma"\n'
     'mode = "asb"\n', "collectors.printer.printers[0].mode: the daruma dialect has no"),
    ('[collectors.printer]\nprinters = "receipt"\n',
     "collectors.printer.printers: expected a list of tables"),
    ('[[collectors.usb.devices]]\nrole = "scanner"\nvid = "xyz"\npid = "0001"\n',
     "collectors.usb.devices[0].vid: expected 4 hexadecimal digits"),
    ('[[collectors.payment.devices]]\nname = "pinpad"\nvid = "079b"\n',
     "collectors.payment.devices[0].pid: set vid and pid together"),
    ('[[collectors.process.processes]]\nname = "kiosk"\nmatch = "chromium("\n',
     "collectors.process.processes[0].match: not a valid regular expression"),
])
def test_config_errors_name_the_key(tmp_path: Path, toml: str, problem: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert any(problem in line and str(path) in line for line in err.value.problems), \
        err.value.problems


def test_printers_as_tables_keyed_by_name(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[collectors.printer.printers.receipt]\nport = "/dev/ttyUSB0"\n'
                    'dialect = "bematech"\n')
    config = load_config(path, env={})
    printers = config.collectors["printer"].options["printers"]
    assert printers == ({"name": "receipt", "port": "/dev/ttyUSB0", "dialect": "bematech"},)


# -- decoders on recorded values --------------------------------------------------------

def test_windows_status_zero_is_unknown_not_ok() -> None:
    reading = decode({"Status": 0, "Attributes": 0x0, "cJobs": 0, "pDriverName": "Generic"})
    assert reading.flags is None
    status = reading.status()
    assert (status.online, status.paper_out, status.cover_open) == (None, None, None)
    collector = PrinterCollector(ctx(), {"printers": (
        {"name": "receipt", "source": "windows", "queue": "POS-80"},)},
        windows_spooler=lambda name: {"Status": 0, "Attributes": 0})
    s = samples(collector.collect())
    assert ("totem_printer_paper_out", (("printer", "receipt"),)) not in s
    assert not any(k[0] == "totem_printer_windows_status_flag" for k in s)
    check = collector.health_checks()[0]
    assert check.status == NOT_APPLICABLE and "status unknown" in check.message


@pytest.mark.parametrize(("info", "message", "flags"), [
    ({"Status": 0x10, "Attributes": 0}, "Printer receipt: paper out", {"paper_out": 1.0}),
    ({"Status": 0x400000 | 0x2, "Attributes": 0}, "Printer receipt: cover open; reports an "
     "error", {"door_open": 1.0, "error": 1.0, "paper_out": 0.0}),
    ({"Status": 0x80, "Attributes": 0x400}, "Printer receipt: set to \"Use Printer Offline\" "
     "in Windows", {"offline": 1.0}),
    ({"Status": 0, "Attributes": 0x400}, "Printer receipt: set to \"Use Printer Offline\" in "
     "Windows", {}),
])
def test_windows_recorded_values(info: dict[str, Any], message: str,
                                 flags: dict[str, float]) -> None:
    collector = PrinterCollector(ctx(), {"printers": (
        {"name": "receipt", "source": "windows", "queue": "POS-80"},)},
        windows_spooler=lambda name: info)
    s = samples(collector.collect())
    check = collector.health_checks()[0]
    assert (check.status, check.message) == (DEGRADED, message)
    for flag, value in flags.items():
        assert s[("totem_printer_windows_status_flag",
                  (("flag", flag), ("printer", "receipt")))] == value
    assert s[("totem_printer_windows_work_offline", (("printer", "receipt"),))] == \
        (1.0 if info["Attributes"] & 0x400 else 0.0)


def test_missing_windows_printer() -> None:
    def missing(name: str) -> dict[str, Any]:
        raise FileNotFoundError(name)
    collector = PrinterCollector(ctx(), {"printers": (
        {"name": "receipt", "source": "windows", "queue": "POS-80"},)}, windows_spooler=missing)
    collector.collect()
    assert collector.health_checks()[0].message == (
        "Printer receipt: cannot be reached (Windows has no printer named 'POS-80')")


def test_dle_eot_vectors_from_the_research_table() -> None:
    rows = {  # state: (n1, n2, n3, n4)
        "healthy": (0x12, 0x12, 0x12, 0x12),
        "cover": (0x1A, 0x16, 0x12, 0x12),
        "paper out": (0x1A, 0x32, 0x12, 0x7E),
        "near end": (0x12, 0x12, 0x12, 0x1E),
        "cutter": (0x1A, 0x52, 0x1A, 0x12),
    }
    decoded = {k: dialects.decode_epson([bytes([b]) for b in v]) for k, v in rows.items()}
    assert decoded["healthy"].online and not decoded["healthy"].active_errors
    assert decoded["cover"].cover_open and decoded["cover"].online is False
    assert decoded["paper out"].paper_out and decoded["paper out"].paper_near_end
    assert decoded["near end"].paper_near_end and not decoded["near end"].paper_out
    assert decoded["cutter"].active_errors == ["autocutter"]
    # A real printer with no drawer reports 0x16 (pin 3 floats high): still fine.
    assert dialects.decode_epson([b"\x16", b"\x12", b"\x12", b"\x12"]).online
    for bad in (b"\x00", b"\xff", b"\x13", b"\x92", b""):
        assert not dialects.EPSON_QUERIES[0].valid(bad)


def test_bematech_vectors_captured_from_real_printers() -> None:
    q = dialects.BEMATECH_QUERIES[0]
    vectors = {
        "ok": "80 91 90 91 16", "low": "80 93 90 91 16", "none": "88 B7 90 91 16",
        "cover": "88 35 90 91 16",
    }
    got = {k: dialects.decode_bematech([bytes.fromhex(v)]) for k, v in vectors.items()}
    assert all(q.valid(bytes.fromhex(v)) for v in vectors.values())
    assert (got["ok"].online, got["ok"].paper_out, got["ok"].paper_near_end) == (True, False,
                                                                                 False)
    assert got["low"].paper_near_end is True
    assert (got["none"].online, got["none"].paper_out) == (False, True)
    assert (got["cover"].cover_open, got["cover"].paper_out) == (True, None)


def test_asb_frames() -> None:
    assert dialects.last_asb_frame(b"\x10\x00\x00\x00\x11\x38\x00\x00\x00") == b"\x38\x00\x00\x00"
    assert dialects.decode_asb(b"\x18\x00\x0f\x00").paper_out
    assert dialects.last_asb_frame(b"\x12\x12") is None


def test_ipp_request_bytes_and_response_parsing() -> None:
    body = ipp.encode_get_printer_attributes("ipp://h:631/printers/q",
                                             ["printer-state", "printer-state-reasons"],
                                             request_id=7)
    assert body[:8] == bytes([2, 0, 0, 0x0B, 0, 0, 0, 7])
    assert body.endswith(b"\x44\x00\x00\x00\x15printer-state-reasons\x03")
    response = (bytes([2, 0, 0, 0, 0, 0, 0, 7, 0x01])
                + ipp._attribute(ipp.TAG_CHARSET, "attributes-charset", b"utf-8")
                + bytes([0x04])
                + ipp._attribute(ipp.TAG_ENUM, "printer-state", (5).to_bytes(4, "big"))
                + ipp._attribute(ipp.TAG_KEYWORD, "printer-state-reasons", b"media-empty-error")
                + ipp._attribute(ipp.TAG_KEYWORD, "", b"paused")
                + ipp._attribute(ipp.TAG_BOOLEAN, "printer-is-accepting-jobs", b"\x01")
                + bytes([0x03]))
    decoded = ipp.decode_response(response)
    assert decoded.ok
    assert decoded.group(0x04) == {"printer-state": [5],
                                   "printer-state-reasons": ["media-empty-error", "paused"],
                                   "printer-is-accepting-jobs": [True]}
    with pytest.raises(ipp.IppError):
        ipp.decode_response(response[:-5])


@pytest.mark.parametrize(("text", "keyword", "severity"), [
    ("media-empty-error", "media-empty", "error"), ("media-low-warning", "media-low", "warning"),
    ("offline-report", "offline", "report"), ("paused", "paused", "error"),
    ("com.vendor-thing-warning", "other", "warning"),
])
def test_state_reason_severity(text: str, keyword: str, severity: str) -> None:
    reason = split_reason(text)
    assert reason is not None and (reason.keyword, reason.severity) == (keyword, severity)
    assert split_reason("none") is None


def test_display_without_connectors_flags_a_lost_screen(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    shutil.copytree(TREE, root, symlinks=True)
    status = root / "sys/class/drm/card0-HDMI-A-1/status"
    status.write_text("disconnected\n")
    collector = DisplayCollector(ctx(root), {"connectors": ()})
    collector.collect()
    assert collector.health_checks()[0].status == NOT_APPLICABLE   # never had a screen
    status.write_text("connected\n")
    collector.collect()
    assert collector.health_checks()[0].status == OK
    status.write_text("disconnected\n")
    collector.collect()
    check = collector.health_checks()[0]
    assert (check.status, check.message) == (DEGRADED, "Screen HDMI-A-1 disconnected")


@pytest.mark.parametrize(("instance_id", "ids"), [
    ("USB\\VID_11CA&PID_0220\\5&2D6B0E0&0&2", ("11ca", "0220")),       # Verifone VX805
    ("USB\\VID_079B&PID_0028&MI_00\\6&1A2B3C&0&0000", ("079b", "0028")),
    ("USB\\ROOT_HUB30\\4&2B3AF1A4&0&0", None),
    ("HID\\VID_0C2E&PID_0B61\\7&1", None),
])
def test_windows_pnp_instance_ids(instance_id: str, ids: tuple[str, str] | None) -> None:
    from totem_agent.collectors._pnp_windows import parse_instance_id
    assert parse_instance_id(instance_id) == ids


def test_abecs_frames_match_the_verified_bytes() -> None:
    from totem_agent.collectors import abecs
    assert abecs.crc16_xmodem(b"123456789") == 0x31C3
    assert abecs.frame(abecs.command("GIN", "00")) == bytes.fromhex("16 47 49 4E 30 30 32 30 "
                                                                    "30 17 EE CA")
    assert abecs.frame(abecs.command("OPN")) == bytes.fromhex("16 4F 50 4E 17 A8 A9")
    assert abecs.frame(abecs.command("CLO")) == bytes.fromhex("16 43 4C 4F 17 E2 A8")
    # DC3 escaping (ABECS 2.x) round-trips the bytes that would end or start a packet.
    data = bytes([0x41, 0x13, 0x16, 0x17, 0x42])
    assert abecs.escape(data) == bytes([0x41, 0x13, 0x33, 0x13, 0x36, 0x13, 0x37, 0x42])
    assert abecs.unescape(abecs.escape(data)) == data


def test_every_device_key_is_in_peripherals_md() -> None:
    from totem_agent.collectors import payment, process, usb
    from totem_agent.collectors.printer.config import FIELDS
    text = (Path(__file__).resolve().parents[3] / "docs" / "peripherals.md").read_text()
    for fields in (FIELDS, payment.FIELDS, usb.FIELDS, process.FIELDS):
        for key in fields:
            assert f"| `{key}` |" in text, key
