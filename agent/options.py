"""Typed config options: how one key is declared, parsed and explained.

Collectors declare their own keys with `Option`, so this module imports nothing
of the package: a collector can use it without pulling in the agent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class OptionError(ValueError):
    """A value does not fit its option; the message is for a store technician.

    `subkey` names the part of a structured value at fault ("[0].port"); the config
    loader appends it to the dotted key."""

    def __init__(self, message: str, subkey: str = "") -> None:
        super().__init__(message)
        self.subkey = subkey


@dataclass(frozen=True)
class Option:
    """One config key: its kind, default and a line of help for docs/config.md.

    kind is one of: str, int, float, bool, duration (seconds; "15s", "2m", 500ms),
    size (bytes; "10MB", "512KiB"), str_list, str_map (a table of strings), choice,
    listen (HOST:PORT), tables (a list of tables, or tables keyed by name).
    `check` may reject a parsed value by raising OptionError. `secret`: the value
    (a token, a password) never appears in an error message.
    """

    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    check: Callable[[Any], None] | None = field(default=None, compare=False)
    secret: bool = False

    def parse(self, raw: Any, *, from_text: bool = False) -> Any:
        """Turn a TOML value (or, with from_text, an environment string) into the
        option's Python value, or raise OptionError saying what was expected."""
        try:
            value = _PARSERS[self.kind](self, raw, from_text)
        except OptionError:
            if self.secret:
                kind = {"str": "string"}.get(self.kind, self.kind)
                raise OptionError(f"expected a {kind} (the value is not shown: it is a "
                                  "secret)") from None
            raise
        if self.minimum is not None and isinstance(value, (int, float)) and value < self.minimum:
            raise OptionError(f"must be at least {self.minimum:g}, got {value:g}")
        if self.check is not None:
            self.check(value)
        return value


def _describe(raw: Any) -> str:
    return f"{raw!r} ({type(raw).__name__})"


def _parse_str(opt: Option, raw: Any, from_text: bool) -> str:
    if not isinstance(raw, str):
        raise OptionError(f"expected a string, got {_describe(raw)}")
    return raw


def _parse_int(opt: Option, raw: Any, from_text: bool) -> int:
    if from_text and isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            raise OptionError(f"expected a whole number, got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise OptionError(f"expected a whole number, got {_describe(raw)}")
    return raw


def _parse_float(opt: Option, raw: Any, from_text: bool) -> float:
    if from_text and isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise OptionError(f"expected a number, got {raw!r}") from None
    elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise OptionError(f"expected a number, got {_describe(raw)}")
    else:
        value = float(raw)
    if not math.isfinite(value):
        raise OptionError(f"expected a finite number, got {raw!r}")
    return value


def _parse_bool(opt: Option, raw: Any, from_text: bool) -> bool:
    if from_text and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise OptionError(f"expected true or false, got {raw!r}")
    if not isinstance(raw, bool):
        raise OptionError(f"expected true or false, got {_describe(raw)}")
    return raw


def parse_duration(raw: Any) -> float:
    """Seconds from 15, 2.5, "15s", "500ms", "2m", "1h" or "7d"."""
    if isinstance(raw, bool):
        raise OptionError(f"expected a duration such as 15s or 2m, got {_describe(raw)}")
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        match = _DURATION_RE.match(raw)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise OptionError(f"expected a duration such as 15s, 500ms or 2m, got {_describe(raw)}")


def parse_size(raw: Any) -> int:
    """Bytes from 1048576, "10MB", "512KiB"."""
    if isinstance(raw, bool):
        raise OptionError(f"expected a size such as 10MB, got {_describe(raw)}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        match = _SIZE_RE.match(raw)
        if match:
            unit = match.group(2).lower() if match.group(2) else None
            size = float(match.group(1)) * _SIZE_UNITS[unit]
            if math.isfinite(size):
                return int(size)
    raise OptionError(f"expected a size such as 10MB or 512KiB, got {_describe(raw)}")


def _parse_duration(opt: Option, raw: Any, from_text: bool) -> float:
    value = parse_duration(raw)
    # nan and inf (TOML has both) would pass every minimum and stall a timer.
    if not math.isfinite(value):
        raise OptionError(f"expected a finite duration such as 15s, got {raw!r}")
    if value < 0:
        raise OptionError(f"must not be negative, got {raw!r}")
    return value


def _parse_size(opt: Option, raw: Any, from_text: bool) -> int:
    return parse_size(raw)


def _parse_str_list(opt: Option, raw: Any, from_text: bool) -> tuple[str, ...]:
    if from_text and isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise OptionError(f"expected a list of strings, got {_describe(raw)}")
    return tuple(raw)


def _parse_str_map(opt: Option, raw: Any, from_text: bool) -> dict[str, str]:
    """A TOML table of strings ({"X-Scope-OrgID" = "store-12"}); from text: "A=1,B=2"."""
    if from_text and isinstance(raw, str):
        pairs = [part.partition("=") for part in raw.split(",") if part.strip()]
        if any(not sep or not key.strip() for key, sep, _ in pairs):
            raise OptionError(f"expected NAME=VALUE pairs separated by commas, got {raw!r}")
        return {key.strip(): value.strip() for key, _, value in pairs}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise OptionError(f"expected a table of strings, got {_describe(raw)}")
    return dict(raw)


def _parse_tables(opt: Option, raw: Any, from_text: bool) -> tuple[dict[str, Any], ...]:
    """A list of tables (`[[x.items]]` or `items = [{...}]`), or a table of tables keyed
    by name (`[x.items.receipt]`, the key becomes the entry's `name`). Each entry is
    checked by the option's `check`."""
    if from_text:
        raise OptionError("cannot be set from the environment; write it in the config file")
    if isinstance(raw, dict):
        entries = []
        for name, value in raw.items():
            if not isinstance(value, dict):
                raise OptionError(f"expected a table, got {_describe(value)}", subkey=f".{name}")
            entries.append({"name": name, **value})
        return tuple(entries)
    if not isinstance(raw, list):
        raise OptionError(f"expected a list of tables, got {_describe(raw)}")
    for index, value in enumerate(raw):
        if not isinstance(value, dict):
            raise OptionError(f"expected a table, got {_describe(value)}", subkey=f"[{index}]")
    return tuple(dict(value) for value in raw)


def _parse_choice(opt: Option, raw: Any, from_text: bool) -> str:
    if not isinstance(raw, str) or raw.lower() not in opt.choices:
        raise OptionError(f"expected one of {', '.join(opt.choices)}, got {raw!r}")
    return raw.lower()


def parse_listen(raw: Any) -> tuple[str, int]:
    """("127.0.0.1", 10084) from "127.0.0.1:10084"; "[::1]:10084" for IPv6."""
    if not isinstance(raw, str):
        raise OptionError(f"expected HOST:PORT such as 127.0.0.1:10084, got {_describe(raw)}")
    host, sep, port_text = raw.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise OptionError(f"expected HOST:PORT such as 127.0.0.1:10084, got {raw!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise OptionError(f"port must be between 0 and 65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise OptionError(
            f"{raw!r} has no host: write 127.0.0.1:{port} for this kiosk only, "
            f"or 0.0.0.0:{port} to expose it to the network"
        )
    return host, port


def _parse_listen(opt: Option, raw: Any, from_text: bool) -> str:
    host, port = parse_listen(raw)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_PARSERS: dict[str, Callable[[Option, Any, bool], Any]] = {
    "str": _parse_str,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "duration": _parse_duration,
    "size": _parse_size,
    "str_list": _parse_str_list,
    "str_map": _parse_str_map,
    "tables": _parse_tables,
    "choice": _parse_choice,
    "listen": _parse_listen,
}


def check_readable_file(value: str) -> None:
    """Empty (unset), or a file this process can read now: a typo in a certificate or
    password file is a config error at start-up, not a failed request every interval."""
    if not value:
        return
    path = Path(value)
    if not path.exists():
        raise OptionError(f"{value}: no such file")
    if not path.is_file():
        raise OptionError(f"{value}: not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise OptionError(f"{value}: cannot read it ({err.strerror})") from None


def client_ssl_context(where: str, ca_file: str = "", insecure_skip_verify: bool = False,
                       cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """The TLS context of an output's https:// requests (Pushgateway, remote_write).
    `where` names the config table in errors: ssl.SSLError says which file failed."""
    # Imported here, not at the top: every collector imports this module, and ssl
    # (with OpenSSL's libssl and libcrypto, ~4 MB of RSS) is only for https outputs.
    import ssl

    try:
        # With a cafile, create_default_context trusts that file alone.
        context = ssl.create_default_context(cafile=ca_file or None)
    except (ssl.SSLError, OSError) as err:
        raise ssl.SSLError(f"cannot load {where} ca_file {ca_file}: {err}") from None
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file or None)
        except (ssl.SSLError, OSError) as err:
            raise ssl.SSLError(f"cannot load the client certificate of {where} "
                               f"(cert_file {cert_file}, key_file {key_file}): {err}") from None
    return context
