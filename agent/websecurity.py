"""The web config of the running server: TLS handshakes, basic auth, reloads.

`WebSecurity` is what AgentHTTPServer holds: the current TLS context (rebuilt when
the web-config file or one of its certificate files changes on disk; a file that
does not load keeps the previous settings and is logged once), the TLS handshake of
one connection (done in that connection's own thread, so a client that stalls in
its handshake never blocks the accept loop) and the basic-auth check of a request
(bcrypt, with results cached as exporter-toolkit does, so a scrape every 15 s does
not pay the bcrypt cost). The file format is agent/webconfig.py's.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import logging
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# ssl and hashlib are imported where used: an agent without TLS or basic auth never
# loads them (libssl and libcrypto are about 4 MB of RSS).
if TYPE_CHECKING:
    import ssl

from totem_agent.webconfig import WebConfigError, load_web_config, ssl_context

log = logging.getLogger("totem_agent.webconfig")

# Routes with their own authentication (the events API's bearer token or loopback
# rule): basic auth would need the same Authorization header, so it is not applied.
OWN_AUTH_ROUTES = frozenset({("POST", "/api/v1/events")})
HANDSHAKE_TIMEOUT = 10.0
AUTH_CACHE_SIZE = 100
# Compared against when the user name is unknown, so an unknown user costs the same
# time as a wrong password (exporter-toolkit does the same).
_DUMMY_HASH = b"$2b$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


def _peer_names(cert: Mapping[str, Any]) -> set[str]:
    names = set()
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            # Python writes IPv6 SANs in full upper case; compare the canonical form.
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(str(value).strip()))
        names.add(str(value))
    return names


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes, with a bounded cache of
    results keyed by a SHA-256 of (user, hash, password): no plain password is kept."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users = dict(users)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = self.users.get(user)
        known = hashed is not None
        hashed = hashed if hashed is not None else _DUMMY_HASH
        import hashlib  # lazy, as bcrypt: only agents with basic_auth_users pay it

        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            try:
                import bcrypt  # lazy: only agents with basic_auth_users pay its import

                cached = bcrypt.checkpw(password.encode(), hashed)
            except ValueError:
                cached = False
            with self._lock:
                self._cache[key] = cached
                while len(self._cache) > AUTH_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return cached and known


def _stamp(paths: tuple[str, ...]) -> tuple[tuple[int, int] | None, ...]:
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class WebSecurity:
    """The live web config of a running server: reloads on change, keeps the last good."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.config = load_web_config(self.path)
        self.context = ssl_context(self.config) if self.config.tls else None
        self.auth = BasicAuth(self.config.users)
        self._stamp = self._current_stamp()
        self._failed_stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    @property
    def tls_enabled(self) -> bool:
        return self.context is not None

    def _current_stamp(self) -> tuple[Any, ...]:
        files = (self.path, *(self.config.tls.files() if self.config.tls else ()))
        return (files, _stamp(files))

    def refresh(self) -> None:
        """Reload when the web-config file or one of its certificate files changed;
        a file that does not load keeps the previous settings, logged once."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp or stamp == self._failed_stamp:
                return
            try:
                config = load_web_config(self.path)
                context = ssl_context(config) if config.tls else None
            except WebConfigError as err:
                self._failed_stamp = stamp
                log.error("the changed web-config or certificate files do not load; "
                          "the previous ones stay in use", extra={"error": str(err)})
                return
            if (context is None) != (self.context is None):
                # Switching between http and https needs a restart: the scrapers' URLs change.
                self._failed_stamp = stamp
                log.error("the changed web-config file turns TLS on or off: restart the "
                          "agent for that; the previous settings stay in use",
                          extra={"file": self.path})
                return
            if config.users != self.config.users:
                self.auth = BasicAuth(config.users)
            self.config, self.context = config, context
            self._stamp = self._current_stamp()
            self._failed_stamp = None
            log.info("web-config reloaded", extra={"web_config": config.summary()})

    def handshake(self, sock: socket.socket) -> ssl.SSLSocket | None:
        """The TLS side of one accepted connection, or None (logged at debug) when the
        handshake fails or times out; then the plain socket is closed here."""
        import ssl  # loaded already: the TLS context was built with it

        self.refresh()
        context = self.context
        assert context is not None
        peer = _peer(sock)
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls_sock = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log.debug("TLS handshake failed", extra={"client": peer, "error": str(err)})
            sock.close()
            return None
        tls = self.config.tls
        if tls is not None and tls.allowed_sans is not None:
            names = _peer_names(tls_sock.getpeercert() or {})
            if not names & set(tls.allowed_sans):
                log.info("client certificate refused: none of its names is in "
                         "client_allowed_sans", extra={"client": peer})
                tls_sock.close()
                return None
        return tls_sock

    def authorized(self, method: str, path: str, authorization: str | None) -> bool:
        if (method, path) in OWN_AUTH_ROUTES:
            return True
        self.refresh()
        if not self.config.users:
            return True
        return self.auth.check(authorization)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.config.headers


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "?"


def open_web_security(path: str, host: str) -> WebSecurity | None:
    """The server's WebSecurity for `path` (None when empty); raises WebConfigError.
    Logs, once at start, the keys without effect here and an exposure without any
    protection."""
    web = WebSecurity(path) if path else None
    if web is not None:
        for key in web.config.ignored:
            log.warning("web-config key without effect in totem-agent",
                        extra={"file": path, "key": key})
        log.info("web-config loaded", extra={"web_config": web.config.summary()})
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and (web is None or (not web.tls_enabled and not web.config.users)):
        log.warning("the HTTP server listens beyond this machine without TLS or basic auth: "
                    "set [agent] web_config (docs/security.md)", extra={"listen": host})
    return web
