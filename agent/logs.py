"""Structured logs: one JSON object per line on stderr, optionally a rotated file.

Context goes in `extra={...}` and comes out as top-level fields. Values of keys
that look like secrets are replaced before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came from `extra=` and is context.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_KEY_RE = re.compile(r"pass(word)?|secret|token|authorization|api_?key|credential", re.I)
REDACTED = "<redacted>"


def redact(value: Any, key: str = "") -> Any:
    """Replace secrets in a context value, looking into dicts and lists."""
    if key and _SECRET_KEY_RE.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {key: redact(value, key) for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                  .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += f"  [{fields}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(settings: Mapping[str, Any], stream: TextIO | None = None) -> None:
    """Configure the root logger from the [log] table (level, format, file, rotation)."""
    formatter: logging.Formatter = (JsonFormatter() if settings.get("format", "json") == "json"
                                    else TextFormatter())
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if settings.get("file"):
        # Lazy: logging.handlers costs 0.5 MB of RSS (pickle, sockets), for a file log only.
        from logging.handlers import RotatingFileHandler

        handlers.append(RotatingFileHandler(
            settings["file"], maxBytes=int(settings.get("max_size", 10_000_000)),
            backupCount=int(settings.get("max_files", 5)), encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(str(settings.get("level", "info")).upper())
