"""The web-config file: TLS, client certificates, basic auth and response headers for
the agent's HTTP server, in exporter-toolkit's format (node_exporter's
`--web.config.file`), so an operations team reuses the file it already has.

`load_web_config(path)` reads and checks the file: every problem names the file and
the key, never a secret. `ssl_context()` turns its TLS part into Python's. The
running side (handshakes, basic auth, reloads) is agent/websecurity.py;
docs/security.md maps each key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

# ssl is imported only when a file turns TLS on: it costs an agent without TLS about
# 4 MB of RSS (libssl, libcrypto). So the tables below name ssl's constants.
CLIENT_AUTH = {
    # exporter-toolkit name: Python's verify mode (ssl.VerifyMode)
    "": "CERT_NONE", "NoClientCert": "CERT_NONE",
    # Go asks for a certificate and checks nothing; Python cannot ask without
    # verifying, and an unverified certificate grants nothing: same as no certificate.
    "RequestClientCert": "CERT_NONE",
    "VerifyClientCertIfGiven": "CERT_OPTIONAL",
    "RequireAndVerifyClientCert": "CERT_REQUIRED",
}
# Go requires any certificate without verifying it; Python's ssl cannot (it verifies
# whatever it requires), and guessing a CA would lock every scraper out.
UNSUPPORTED_CLIENT_AUTH = ("RequireAnyClientCert", "RequireClientCert")

# exporter-toolkit name: ssl.TLSVersion member
TLS_VERSIONS = {"TLS10": "TLSv1", "TLS11": "TLSv1_1", "TLS12": "TLSv1_2", "TLS13": "TLSv1_3"}

# Go's crypto/tls CipherSuites() names (the only ones exporter-toolkit takes) to
# OpenSSL's. TLS 1.3 suites are not configurable in Go either: accepted, no effect.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")

# http_server_config.headers: the names exporter-toolkit allows, with their allowed
# values (None: any value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}

TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "cipher_suites",
            "curve_preferences", "min_version", "max_version", "prefer_server_cipher_suites",
            "client_allowed_sans")
# Keys of newer exporter-toolkit releases that the agent refuses rather than ignores:
# they carry key material, and ignoring them would serve without it.
TLS_INLINE_KEYS = ("cert", "key", "client_ca")
_BCRYPT_RE = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")


class WebConfigError(ValueError):
    """Problems of a web-config file, each 'FILE: key: message'; never shows a secret."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TLSSettings:
    cert_file: str
    key_file: str
    verify_mode: ssl.VerifyMode
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion
    client_auth_type: str = "NoClientCert"
    client_ca_file: str = ""
    ciphers: tuple[str, ...] = ()
    prefer_server_ciphers: bool = True
    allowed_sans: tuple[str, ...] | None = None

    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.cert_file, self.key_file, self.client_ca_file) if f)


@dataclass(frozen=True)
class WebConfig:
    path: str
    tls: TLSSettings | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, bytes] = field(default_factory=dict)
    # Keys accepted but without effect here (http2, curve_preferences, rate_limit):
    # logged once at start and printed by check-config.
    ignored: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for check-config and the start-up log; no secret in it."""
        if self.tls is None:
            tls = "no TLS"
        else:
            tls = f"TLS ({self.tls.client_auth_type or 'NoClientCert'})"
        auth = f"{len(self.users)} basic-auth user(s)" if self.users else "no basic auth"
        return f"{self.path}: {tls}, {auth}"


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{self.path}: {key}: {message}")


def _resolve(base: Path, value: str) -> str:
    """Relative paths are relative to the web-config file's folder, as in exporter-toolkit."""
    return str(value if os.path.isabs(value) else base / value)


def _string_list(problems: _Problems, key: str, raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        problems.add(key, "expected a list of strings")
        return []
    return list(raw)


def _str(problems: _Problems, key: str, raw: Any) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        problems.add(key, f"expected a string, got {raw!r}")
        return ""
    return raw


def _file(problems: _Problems, key: str, value: str) -> None:
    if not value:
        return
    path = Path(value)
    if not path.is_file():
        problems.add(key, f"{value}: no such file" if not path.exists() else
                     f"{value}: not a file")
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        problems.add(key, f"{value}: cannot read it ({err.strerror})")


def _load_tls(problems: _Problems, raw: Any, base: Path, ignored: list[str]
              ) -> TLSSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("tls_server_config", "must be a mapping of keys")
        return None
    for key in raw:
        if key in TLS_INLINE_KEYS:
            problems.add(f"tls_server_config.{key}", f"inline PEM is not supported: put it in "
                         f"a file and use {key}_file")
        elif key not in TLS_KEYS:
            problems.add(f"tls_server_config.{key}",
                         f"unknown key (known keys: {', '.join(TLS_KEYS)})")
    where = "tls_server_config."
    cert_file = _str(problems, where + "cert_file", raw.get("cert_file"))
    key_file = _str(problems, where + "key_file", raw.get("key_file"))
    client_ca = _str(problems, where + "client_ca_file", raw.get("client_ca_file"))
    auth = _str(problems, where + "client_auth_type", raw.get("client_auth_type"))
    if not (cert_file or key_file or client_ca or auth):
        return None  # exporter-toolkit: no TLS key set means plain HTTP
    import ssl  # lazy: only agents serving TLS pay its import (see CLIENT_AUTH)

    if not cert_file:
        problems.add(where + "cert_file", "missing: TLS needs a certificate file")
    if not key_file:
        problems.add(where + "key_file", "missing: TLS needs the certificate's key file")
    cert_file, key_file = (_resolve(base, cert_file) if cert_file else "",
                           _resolve(base, key_file) if key_file else "")
    client_ca = _resolve(base, client_ca) if client_ca else ""
    _file(problems, where + "cert_file", cert_file)
    _file(problems, where + "key_file", key_file)
    _file(problems, where + "client_ca_file", client_ca)
    verify_mode = ssl.CERT_NONE
    if auth in UNSUPPORTED_CLIENT_AUTH:
        problems.add(where + "client_auth_type", f"{auth} (a certificate required but not "
                     "verified) is not supported: use RequireAndVerifyClientCert with "
                     "client_ca_file")
    elif auth not in CLIENT_AUTH:
        problems.add(where + "client_auth_type", f"unknown value {auth!r} (expected one of "
                     "NoClientCert, RequestClientCert, VerifyClientCertIfGiven, "
                     "RequireAndVerifyClientCert)")
    else:
        verify_mode = ssl.VerifyMode[CLIENT_AUTH[auth]]
    if client_ca and auth in ("", "NoClientCert", "RequestClientCert"):
        problems.add(where + "client_ca_file", "set without a client_auth_type that verifies "
                     "certificates (VerifyClientCertIfGiven or RequireAndVerifyClientCert)")
    if verify_mode != ssl.CERT_NONE and not client_ca:
        problems.add(where + "client_ca_file", f"client_auth_type {auth} needs client_ca_file "
                     "(the CA that signs the client certificates)")
    sans = raw.get("client_allowed_sans")
    allowed: tuple[str, ...] | None = None
    if sans is not None:
        allowed = tuple(_string_list(problems, where + "client_allowed_sans", sans))
        if auth != "RequireAndVerifyClientCert":
            problems.add(where + "client_allowed_sans", "needs client_auth_type "
                         "RequireAndVerifyClientCert (without a required certificate there "
                         "is no name to match)")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        text = _str(problems, where + key, raw.get(key)) or default
        if text not in TLS_VERSIONS:
            problems.add(where + key, f"unknown version {text!r} (expected one of "
                         f"{', '.join(TLS_VERSIONS)})")
            text = default
        versions[key] = ssl.TLSVersion[TLS_VERSIONS[text]]
    if versions["min_version"] > versions["max_version"]:
        problems.add(where + "min_version", "is above max_version")
    ciphers: list[str] = []
    for name in _string_list(problems, where + "cipher_suites", raw.get("cipher_suites")):
        if name not in CIPHER_SUITES:
            problems.add(where + "cipher_suites", f"unknown cipher suite {name!r} (Go's "
                         "crypto/tls names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
        elif CIPHER_SUITES[name]:
            ciphers.append(str(CIPHER_SUITES[name]))
    for name in _string_list(problems, where + "curve_preferences",
                             raw.get("curve_preferences")):
        if name not in CURVES:
            problems.add(where + "curve_preferences", f"unknown curve {name!r} (expected one "
                         f"of {', '.join(CURVES)})")
    if raw.get("curve_preferences"):
        ignored.append("tls_server_config.curve_preferences (OpenSSL's default curves are used)")
    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        problems.add(where + "prefer_server_cipher_suites", "expected true or false")
        prefer = True
    return TLSSettings(cert_file=cert_file, key_file=key_file, verify_mode=verify_mode,
                       client_auth_type=auth or "NoClientCert", client_ca_file=client_ca,
                       min_version=versions["min_version"], max_version=versions["max_version"],
                       ciphers=tuple(ciphers), prefer_server_ciphers=prefer,
                       allowed_sans=allowed)


def _load_http(problems: _Problems, raw: Any, ignored: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("http_server_config", "must be a mapping of keys")
        return {}
    for key in raw:
        if key not in ("http2", "headers"):
            problems.add(f"http_server_config.{key}", "unknown key (known keys: http2, headers)")
    http2 = raw.get("http2")
    if http2 is not None and not isinstance(http2, bool):
        problems.add("http_server_config.http2", "expected true or false")
    elif http2:
        ignored.append("http_server_config.http2 (the agent speaks HTTP/1.1 only)")
    headers_raw = raw.get("headers")
    if headers_raw is None:
        return {}
    if not isinstance(headers_raw, dict):
        problems.add("http_server_config.headers", "must be a mapping of header: value")
        return {}
    headers: dict[str, str] = {}
    for name, value in headers_raw.items():
        key = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            problems.add(key, f"this header cannot be set (allowed: {', '.join(HEADERS)})")
            continue
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            problems.add(key, "expected a one-line string")
            continue
        allowed = HEADERS[name]
        if allowed is not None and value.lower() not in allowed:
            problems.add(key, f"expected one of {', '.join(allowed)}, got {value!r}")
            continue
        if value:
            headers[str(name)] = value
    return headers


def _load_users(problems: _Problems, raw: Any) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("basic_auth_users", "must be a mapping of user name: bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for name, hashed in raw.items():
        if not isinstance(name, str) or not name or ":" in name:
            problems.add("basic_auth_users", "a user name must be a non-empty string "
                         "without ':'")
            continue
        # The hash is never shown: it is a secret (an offline guess starts from it).
        if not isinstance(hashed, str) or not _BCRYPT_RE.match(hashed):
            problems.add(f"basic_auth_users.{name}", "not a bcrypt hash (the value is not "
                         "shown; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
            continue
        users[name] = hashed.encode()
    return users


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """The checked web-config file, or WebConfigError listing every problem. Checks
    that the certificate and key load together (as `promtool check web-config`)."""
    path_text = str(path)
    problems = _Problems(path_text)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WebConfigError([f"{path_text}: web-config file not found"]) from None
    except IsADirectoryError:
        raise WebConfigError([f"{path_text}: is a directory, not a web-config file"]) from None
    except PermissionError:
        raise WebConfigError([f"{path_text}: cannot read the web-config file "
                              "(permission denied)"]) from None
    except (OSError, UnicodeDecodeError, ValueError) as err:  # ValueError: a NUL in the path
        raise WebConfigError([f"{path_text!r}: cannot read the web-config file ({err})"]) \
            from None
    import yaml  # lazy: only agents given a web-config pay its import

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        # Only the position and the parser's words: its snippet would quote the line,
        # and that line may hold a password hash.
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(err, "problem", None) or "syntax error"
        raise WebConfigError([f"{path_text}: not valid YAML: {where}{what}"]) from None
    except (ValueError, RecursionError):
        raise WebConfigError([f"{path_text}: not valid YAML"]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise WebConfigError([f"{path_text}: expected a mapping of keys (tls_server_config, "
                              "http_server_config, basic_auth_users) at the top"])
    ignored: list[str] = []
    for key in doc:
        if key == "rate_limit":
            ignored.append("rate_limit (the agent has its own per-request limits)")
        elif key not in ("tls_server_config", "http_server_config", "basic_auth_users"):
            problems.add(str(key), "unknown key (known keys: tls_server_config, "
                         "http_server_config, basic_auth_users)")
    tls = _load_tls(problems, doc.get("tls_server_config"), Path(path).parent, ignored)
    headers = _load_http(problems, doc.get("http_server_config"), ignored)
    users = _load_users(problems, doc.get("basic_auth_users"))
    if problems.items:
        raise WebConfigError(problems.items)
    config = WebConfig(path=path_text, tls=tls, headers=headers, users=users,
                       ignored=tuple(ignored))
    if tls is not None:
        ssl_context(config)  # the certificate, key and client CA must load now
    return config


def ssl_context(config: WebConfig) -> ssl.SSLContext:
    """The server context of `config.tls`; WebConfigError naming the key otherwise."""
    import ssl

    tls = config.tls
    assert tls is not None
    where = f"{config.path}: tls_server_config."
    # Not create_default_context: that would trust the system's CAs for client certificates.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = tls.min_version
        context.maximum_version = tls.max_version
    except (ValueError, ssl.SSLError) as err:
        raise WebConfigError([f"{where}min_version: not available here ({err})"]) from None
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as err:
        raise WebConfigError([f"{where}cert_file: {tls.cert_file} with key_file "
                              f"{tls.key_file}: cannot load the certificate and its key "
                              f"({_ssl_reason(err)})"]) from None
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as err:
            raise WebConfigError([f"{where}client_ca_file: {tls.client_ca_file}: cannot load "
                                  f"the CA certificates ({_ssl_reason(err)})"]) from None
    context.verify_mode = tls.verify_mode
    if tls.ciphers:
        try:
            context.set_ciphers(":".join(tls.ciphers))
        except ssl.SSLError as err:
            raise WebConfigError([f"{where}cipher_suites: none of them is available "
                                  f"here ({_ssl_reason(err)})"]) from None
    if tls.prefer_server_ciphers:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def _ssl_reason(err: BaseException) -> str:
    import ssl

    if isinstance(err, ssl.SSLError) and err.reason:
        return str(err.reason)
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


