"""The status page: `GET /` for the person at the kiosk, and the history JSON behind it.

The page is static (agent/static/: HTML, CSS, JS, shipped as package data, no
CDN, no build step); its script polls `GET /health` and
`GET /api/v1/history?hours=N` and draws everything itself, charts included (plain
inline SVG). Every answer of this module carries a strict Content-Security-Policy
(same origin only, no inline script or style) and `X-Content-Type-Options: nosniff`.
Read-only: nothing here changes the agent.
"""

from __future__ import annotations

import urllib.parse
from functools import cache
from http import HTTPStatus

from totem_agent.history import History
from totem_agent.server import Handler, RequestHandler, Response, json_response

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page changes with every refresh of its data, never its files within a version.
    "Cache-Control": "no-cache",
}
DEFAULT_HOURS = 3.0

# path served -> (file in agent/static/, content type)
ASSETS = {
    "/": ("status.html", "text/html; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


@cache
def asset(name: str) -> bytes:
    from importlib import resources  # lazy: only when someone opens the page

    return resources.files("totem_agent").joinpath("static", name).read_bytes()


def _secure(response: Response) -> Response:
    response.headers = {**SECURITY_HEADERS, **(response.headers or {})}
    return response


def asset_handler(name: str, content_type: str) -> Handler:
    def handle(request: RequestHandler) -> Response:
        return _secure(Response(HTTPStatus.OK, asset(name), content_type))
    return handle


def parse_hours(query: str) -> float:
    """`hours` of the query string; ValueError naming the parameter when it is not a number."""
    values = urllib.parse.parse_qs(query).get("hours")
    if not values:
        return DEFAULT_HOURS
    try:
        hours = float(values[-1])
    except ValueError:
        raise ValueError(f"hours must be a number of hours, not {values[-1]!r}") from None
    if not 0 < hours <= 24 * 7:
        raise ValueError(f"hours must be between 0 and 168, not {values[-1]}")
    return hours


def history_handler(history: History) -> Handler:
    def handle(request: RequestHandler) -> Response:
        query = request.path.split("?", 1)[1] if "?" in request.path else ""
        try:
            hours = parse_hours(query)
        except ValueError as err:
            return _secure(json_response(HTTPStatus.BAD_REQUEST, {"error": str(err)}))
        return _secure(json_response(HTTPStatus.OK, history.report(hours)))
    return handle


def status_routes(history: History) -> dict[tuple[str, str], Handler]:
    """Routes of the status page; they replace the plain index page at `/`."""
    routes: dict[tuple[str, str], Handler] = {
        ("GET", path): asset_handler(name, kind) for path, (name, kind) in ASSETS.items()}
    routes[("GET", "/api/v1/history")] = history_handler(history)
    return routes

