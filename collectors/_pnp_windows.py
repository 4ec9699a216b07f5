"""The thin Windows PnP layer: which USB devices are present (SetupAPI, DIGCF_PRESENT).

Only this module touches Win32. `parse_instance_id` (pure, tested with recorded
ids such as `USB\\VID_11CA&PID_0220\\5&2D6B0E0&0&2`) does the decoding.
"""

from __future__ import annotations

import ctypes
import re
import sys

_INSTANCE_RE = re.compile(r"^USB\\VID_([0-9A-F]{4})&PID_([0-9A-F]{4})(?:[&\\]|$)", re.IGNORECASE)


def parse_instance_id(instance_id: str) -> tuple[str, str] | None:
    """(vid, pid) in lower-case hex from a USB device instance id; None for others
    (interfaces `...&MI_00` of the same device give the same ids)."""
    match = _INSTANCE_RE.match(instance_id)
    return (match.group(1).lower(), match.group(2).lower()) if match else None


def instance_ids() -> list[str]:
    """Instance ids of every present device on the USB enumerator (OSError elsewhere)."""
    if sys.platform != "win32":
        raise OSError("PnP enumeration exists only on Windows")
    return _instance_ids_win32()


if sys.platform == "win32":
    from ctypes import wintypes

    DIGCF_PRESENT = 0x2
    DIGCF_ALLCLASSES = 0x4

    class SP_DEVINFO_DATA(ctypes.Structure):
        _fields_ = [("cbSize", wintypes.DWORD), ("ClassGuid", ctypes.c_byte * 16),
                    ("DevInst", wintypes.DWORD), ("Reserved", ctypes.c_void_p)]

    def _instance_ids_win32() -> list[str]:
        setupapi = ctypes.WinDLL("setupapi", use_last_error=True)
        setupapi.SetupDiGetClassDevsW.restype = ctypes.c_void_p
        handle = setupapi.SetupDiGetClassDevsW(None, "USB", None,
                                               DIGCF_PRESENT | DIGCF_ALLCLASSES)
        if handle in (None, ctypes.c_void_p(-1).value):
            raise ctypes.WinError(ctypes.get_last_error())
        ids: list[str] = []
        try:
            index = 0
            while True:
                info = SP_DEVINFO_DATA()
                info.cbSize = ctypes.sizeof(SP_DEVINFO_DATA)
                if not setupapi.SetupDiEnumDeviceInfo(ctypes.c_void_p(handle), index,
                                                      ctypes.byref(info)):
                    break
                buffer = ctypes.create_unicode_buffer(512)
                if setupapi.SetupDiGetDeviceInstanceIdW(ctypes.c_void_p(handle),
                                                        ctypes.byref(info), buffer, 512, None):
                    ids.append(buffer.value)
                index += 1
        finally:
            setupapi.SetupDiDestroyDeviceInfoList(ctypes.c_void_p(handle))
        return ids
else:
    def _instance_ids_win32() -> list[str]:
        raise OSError("PnP enumeration exists only on Windows")
