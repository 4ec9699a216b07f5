"""The thin Win32 layer: PRINTER_INFO_2 of one printer through winspool.drv.

Only this module touches Win32; `windows.py` decodes what it returns, and tests
replace `get_printer` with recorded values. On other systems it raises OSError.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

ERROR_INVALID_PRINTER_NAME = 1801
ERROR_INSUFFICIENT_BUFFER = 122


def get_printer(name: str) -> dict[str, Any]:
    """{"Status", "Attributes", "cJobs", "pDriverName", "pPortName"} of a printer.
    FileNotFoundError when no printer has that name; OSError for anything else."""
    if sys.platform != "win32":
        raise OSError("the Windows spooler exists only on Windows")
    return _get_printer_win32(name)


if sys.platform == "win32":
    from ctypes import wintypes

    class PRINTER_INFO_2W(ctypes.Structure):
        _fields_ = [
            ("pServerName", wintypes.LPWSTR), ("pPrinterName", wintypes.LPWSTR),
            ("pShareName", wintypes.LPWSTR), ("pPortName", wintypes.LPWSTR),
            ("pDriverName", wintypes.LPWSTR), ("pComment", wintypes.LPWSTR),
            ("pLocation", wintypes.LPWSTR), ("pDevMode", ctypes.c_void_p),
            ("pSepFile", wintypes.LPWSTR), ("pPrintProcessor", wintypes.LPWSTR),
            ("pDatatype", wintypes.LPWSTR), ("pParameters", wintypes.LPWSTR),
            ("pSecurityDescriptor", ctypes.c_void_p), ("Attributes", wintypes.DWORD),
            ("Priority", wintypes.DWORD), ("DefaultPriority", wintypes.DWORD),
            ("StartTime", wintypes.DWORD), ("UntilTime", wintypes.DWORD),
            ("Status", wintypes.DWORD), ("cJobs", wintypes.DWORD),
            ("AveragePPM", wintypes.DWORD),
        ]

    def _get_printer_win32(name: str) -> dict[str, Any]:
        winspool = ctypes.WinDLL("winspool.drv", use_last_error=True)
        handle = wintypes.HANDLE()
        if not winspool.OpenPrinterW(name, ctypes.byref(handle), None):
            code = ctypes.get_last_error()
            if code == ERROR_INVALID_PRINTER_NAME:
                raise FileNotFoundError(name)
            raise ctypes.WinError(code)
        try:
            needed = wintypes.DWORD()
            winspool.GetPrinterW(handle, 2, None, 0, ctypes.byref(needed))
            buffer = ctypes.create_string_buffer(needed.value)
            if not winspool.GetPrinterW(handle, 2, buffer, needed, ctypes.byref(needed)):
                raise ctypes.WinError(ctypes.get_last_error())
            info = ctypes.cast(buffer, ctypes.POINTER(PRINTER_INFO_2W)).contents
            return {"Status": int(info.Status), "Attributes": int(info.Attributes),
                    "cJobs": int(info.cJobs), "pDriverName": info.pDriverName or "",
                    "pPortName": info.pPortName or ""}
        finally:
            winspool.ClosePrinter(handle)
else:
    def _get_printer_win32(name: str) -> dict[str, Any]:
        raise OSError("the Windows spooler exists only on Windows")
