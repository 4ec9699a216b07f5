"""The thin Win32 layer under agent/winservice.py: each pywin32 call, and no logic.

Everything that decides (which command line, which recovery actions, where state
lives, what to do when the service already exists) is in winservice.py and is
tested on Linux against a fake of this layer (tests/unit/test_winservice.py).
pywin32 is imported inside each method, so this module imports anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class Win32(Protocol):
    """What winservice.py needs from Windows."""

    def program_data(self) -> Path: ...

    def service_exists(self, name: str) -> bool: ...

    def create_service(self, name: str, display_name: str, description: str,
                       command_line: str) -> None: ...

    def update_service(self, name: str, display_name: str, description: str,
                       command_line: str) -> None: ...

    def set_failure_actions(self, name: str, reset_seconds: int,
                            restart_delays_ms: list[int]) -> None: ...

    def start_service(self, name: str) -> None: ...

    def stop_service(self, name: str) -> None: ...

    def delete_service(self, name: str) -> None: ...

    def run_dispatcher(self, name: str, display_name: str, run: Callable[[], int],
                       request_stop: Callable[[], None]) -> None: ...


class PyWin32:
    """Win32 through pywin32 (pip install 'totem-agent[windows]')."""

    def program_data(self) -> Path:
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"))

    def _open(self, name: str, access: int) -> tuple[Any, Any]:
        import win32service

        scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
        try:
            return scm, win32service.OpenService(scm, name, access)
        except Exception:
            win32service.CloseServiceHandle(scm)
            raise

    def _close(self, *handles: Any) -> None:
        import win32service

        for handle in handles:
            win32service.CloseServiceHandle(handle)

    def service_exists(self, name: str) -> bool:
        import win32service

        try:
            handles = self._open(name, win32service.SERVICE_QUERY_STATUS)
        except win32service.error:
            return False
        self._close(*reversed(handles))
        return True

    def create_service(self, name: str, display_name: str, description: str,
                       command_line: str) -> None:
        import win32service

        scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
        try:
            handle = win32service.CreateService(
                scm, name, display_name, win32service.SERVICE_ALL_ACCESS,
                win32service.SERVICE_WIN32_OWN_PROCESS, win32service.SERVICE_AUTO_START,
                win32service.SERVICE_ERROR_NORMAL, command_line, None, 0, None, None, None)
            win32service.ChangeServiceConfig2(
                handle, win32service.SERVICE_CONFIG_DESCRIPTION, description)
            win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(scm)

    def update_service(self, name: str, display_name: str, description: str,
                       command_line: str) -> None:
        import win32service

        scm, handle = self._open(name, win32service.SERVICE_ALL_ACCESS)
        try:
            nochange = win32service.SERVICE_NO_CHANGE
            win32service.ChangeServiceConfig(
                handle, nochange, win32service.SERVICE_AUTO_START, nochange, command_line,
                None, 0, None, None, None, display_name)
            win32service.ChangeServiceConfig2(
                handle, win32service.SERVICE_CONFIG_DESCRIPTION, description)
        finally:
            self._close(handle, scm)

    def set_failure_actions(self, name: str, reset_seconds: int,
                            restart_delays_ms: list[int]) -> None:
        import win32service

        scm, handle = self._open(name, win32service.SERVICE_ALL_ACCESS)
        try:
            actions = [(win32service.SC_ACTION_RESTART, delay) for delay in restart_delays_ms]
            win32service.ChangeServiceConfig2(
                handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS,
                {"ResetPeriod": reset_seconds, "RebootMsg": None, "Command": None,
                 "Actions": actions})
            # Also count an exit with an error code as a failure, not only a crash.
            win32service.ChangeServiceConfig2(
                handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True)
        finally:
            self._close(handle, scm)

    def start_service(self, name: str) -> None:
        import win32serviceutil

        win32serviceutil.StartService(name)

    def stop_service(self, name: str) -> None:
        import win32serviceutil

        win32serviceutil.StopServiceWithDeps(name, waitSecs=30)

    def delete_service(self, name: str) -> None:
        import win32serviceutil

        win32serviceutil.RemoveService(name)

    def run_dispatcher(self, name: str, display_name: str, run: Callable[[], int],
                       request_stop: Callable[[], None]) -> None:
        import servicemanager
        import win32service
        import win32serviceutil

        class AgentService(win32serviceutil.ServiceFramework):
            _svc_name_ = name
            _svc_display_name_ = display_name

            def SvcStop(self) -> None:
                self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
                request_stop()

            def SvcDoRun(self) -> None:
                code = run()
                if code:
                    # A non-zero exit is a failure: the recovery actions restart us.
                    raise SystemExit(code)

        servicemanager.Initialize(name, None)
        servicemanager.PrepareToHostSingle(AgentService)
        servicemanager.StartServiceCtrlDispatcher()
