"""Secrets policy: what `check-config` hides and what it warns about.

Secrets (the events token, output passwords and bearer tokens, basic-auth hashes,
private keys) never appear in logs, /health, `check-config` output or error
messages (docs/security.md). Here: `redact_secrets` for printed settings, and
`check_config_warnings` for files holding secrets that other users can read, and
for settings that lower security on purpose (an exposed server without protection,
skipped TLS verification).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Keys whose value is a secret, in any table (outputs added later included).
SECRET_KEYS = frozenset({"token", "password", "bearer_token", "secret", "api_key",
                         "authorization"})
# Keys naming a file whose content is a secret.
SECRET_FILE_KEYS = frozenset({"key_file", "password_file", "token_file", "bearer_token_file",
                              "credentials_file", "web_config"})


def redact_secrets(value: Any) -> Any:
    """A copy of `value` where every secret is "(set)" or "" (unset)."""
    if isinstance(value, Mapping):
        return {key: (("(set)" if item else "") if key in SECRET_KEYS and
                      isinstance(item, (str, bytes)) else redact_secrets(item))
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(item) for item in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        return redact_url(value)  # https://user:password@host
    return value


def _walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
        for index, item in enumerate(value):
            yield from _walk(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def _settings(config: Any) -> Iterator[tuple[str, Any]]:
    """Every (dotted key, value) of the config's tables, whatever tables it has."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, (Mapping, list, tuple)) and f.name not in ("problems",):
            yield from _walk(value, f.name)


def secret_files(config: Any) -> list[tuple[str, str]]:
    """(dotted key, path) of each configured file that holds a secret, the web-config's
    own TLS key file included."""
    files = [(key, str(value)) for key, value in _settings(config)
             if key.rsplit(".", 1)[-1] in SECRET_FILE_KEYS and isinstance(value, str) and value]
    web_config = str(config.agent.get("web_config") or "")
    if web_config:
        from totem_agent.webconfig import WebConfigError, load_web_config

        try:
            web = load_web_config(web_config)
        except WebConfigError:
            web = None  # reported as a config problem already
        if web is not None and web.tls is not None:
            files.append(("agent.web_config: tls_server_config.key_file", web.tls.key_file))
    return files


def _readable_by_others(path: str) -> int | None:
    """The mode when group or others may read or write `path` (POSIX only)."""
    if os.name == "nt":
        return None  # Windows has ACLs, not modes; the installer sets them
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o077 else None


def _config_holds_secret(config: Any) -> bool:
    source = Path(str(config.source))
    if not source.is_file():
        return False
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(isinstance(value, str) and value and value in text
               for key, value in _settings(config) if key.rsplit(".", 1)[-1] in SECRET_KEYS)


def check_config_warnings(config: Any) -> list[str]:
    """Plain-language warnings for `check-config` (the config is valid all the same)."""
    warnings = []
    seen = set()
    for key, path in secret_files(config):
        mode = _readable_by_others(path)
        if mode is not None and path not in seen:
            seen.add(path)
            warnings.append(f"{path} ({key}) holds a secret and other users may read it "
                            f"(mode {mode:o}): chmod 600 {path}")
    if _config_holds_secret(config):
        mode = _readable_by_others(str(config.source))
        if mode is not None:
            warnings.append(f"{config.source} holds a token or password and other users may "
                            f"read it (mode {mode:o}): chmod 600 {config.source}")
    host = str(config.agent["listen"]).rpartition(":")[0].strip("[]")
    try:
        exposed = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        exposed = host != "localhost"
    if exposed and not config.agent.get("web_config"):
        warnings.append(f"agent.listen {config.agent['listen']} serves /metrics and /health "
                        "to the network without TLS or basic auth: set agent.web_config "
                        "(docs/security.md)")
    for key, value in _settings(config):
        if key.endswith("insecure_skip_verify") and value is True:
            warnings.append(f"{key} is on: the server's certificate is not checked, anyone "
                            "on the path can read and alter what is sent")
    web_config = str(config.agent.get("web_config") or "")
    if web_config:
        from totem_agent.webconfig import WebConfigError, load_web_config

        try:
            for key in load_web_config(web_config).ignored:
                warnings.append(f"{web_config}: {key}: accepted, without effect in totem-agent")
        except WebConfigError:
            pass
    return warnings


def redact_url(url: str) -> str:
    """`url` without a password in it (https://user:pass@host -> https://user:***@host),
    for logs and /health."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
