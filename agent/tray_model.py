"""What the tray shows, as pure functions of a /health report (None: agent unreachable).

No pystray and no display here, so every mapping is unit-tested anywhere:
state -> colour, tooltip, menu lines, the notification when things get worse,
the diagnostics text a technician pastes into a ticket, and the icon image.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from totem_agent.status import duration_words

if TYPE_CHECKING:  # pillow is the tray extra's; only icon_image() needs it
    from PIL.Image import Image

OK, DEGRADED, FAILING, UNREACHABLE = "ok", "degraded", "failing", "unreachable"
STATES = (OK, DEGRADED, FAILING, UNREACHABLE)
# Worse is higher. An agent that does not answer is worse than one that says it fails:
# nothing at all is known about the kiosk.
SEVERITY = {OK: 0, DEGRADED: 1, FAILING: 2, UNREACHABLE: 3}
COLOURS: dict[str, tuple[int, int, int]] = {
    OK: (30, 140, 60),         # green
    DEGRADED: (240, 170, 0),   # amber
    FAILING: (200, 30, 30),    # red
    UNREACHABLE: (128, 128, 128),  # grey
}
WORDS = {OK: "OK", DEGRADED: "needs attention", FAILING: "FAILING",
         UNREACHABLE: "agent not reachable"}
CHECK_WORDS = {"ok": "OK", "degraded": "Degraded", "failing": "Failing",
               "pending": "Starting", "not_applicable": "Not used"}
# Windows caps a tray tooltip at 127 characters; other hosts cut long ones anyway.
TOOLTIP_MAX = 127
MENU_LINE_MAX = 90


def tray_state(report: Mapping[str, Any] | None) -> str:
    if report is None:
        return UNREACHABLE
    status = str(report.get("status", ""))
    return status if status in (OK, DEGRADED, FAILING) else UNREACHABLE


def problems(report: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """The failing, then degraded, checks, each (name, check), by name within a status."""
    if report is None:
        return []
    checks: Mapping[str, Mapping[str, Any]] = report.get("checks", {}) or {}
    bad = [(name, c) for name, c in checks.items() if c.get("status") in (FAILING, DEGRADED)]
    return sorted(bad, key=lambda item: (item[1]["status"] != FAILING, item[0]))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_sentence(name: str, check: Mapping[str, Any]) -> str:
    """`printer:front: paper out`, or the status word when the check says nothing more."""
    what = check.get("message") or check.get("last_error") or CHECK_WORDS.get(
        str(check.get("status")), str(check.get("status")))
    return f"{name}: {what}"


def tooltip(report: Mapping[str, Any] | None, url: str, error: str | None = None) -> str:
    """`error`: why there is no report (the agent asks for a password, a TLS problem)."""
    state = tray_state(report)
    if report is None:
        why = f" ({error})" if error else ""
        return _cut(f"Kiosk monitor: agent not reachable at {url}{why}", TOOLTIP_MAX)
    instance = report.get("instance", "?")
    head = f"Kiosk {instance}: {WORDS[state]}"
    found = problems(report)
    if not found:
        return _cut(head, TOOLTIP_MAX)
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return _cut(f"{head} - {check_sentence(*found[0])}{more}", TOOLTIP_MAX)


def menu_lines(report: Mapping[str, Any] | None, url: str,
               error: str | None = None) -> list[str]:
    """The disabled lines at the top of the menu: the state, then one per problem (or
    why the agent gave no report)."""
    state = tray_state(report)
    if report is None:
        return [f"Agent not reachable at {url}", *([_cut(error, MENU_LINE_MAX)] if error
                                                    else [])]
    lines = [f"Kiosk {report.get('instance', '?')}: {WORDS[state]}"]
    for name, check in problems(report):
        word = CHECK_WORDS.get(str(check.get("status")), "")
        lines.append(_cut(f"{word}: {check_sentence(name, check)}", MENU_LINE_MAX))
    return lines


def is_worse(before: str | None, after: str) -> bool:
    """True when the state got worse (the first state seen is compared with OK)."""
    return SEVERITY[after] > SEVERITY[before or OK]


def notification(before: str | None, after: str, report: Mapping[str, Any] | None,
                 url: str) -> tuple[str, str] | None:
    """(title, message) when the state got worse, else None."""
    if not is_worse(before, after):
        return None
    title = f"Kiosk monitor: {WORDS[after]}"
    if report is None:
        return title, f"The totem-agent service does not answer at {url}."
    found = problems(report)
    message = check_sentence(*found[0]) if found else WORDS[after]
    if len(found) > 1:
        message += f" (and {len(found) - 1} more)"
    return title, _cut(message, 200)


def diagnostics_text(report: Mapping[str, Any] | None, url: str, now: datetime | None = None,
                     error: str | None = None) -> str:
    """A plain-text summary a technician pastes into a ticket."""
    now = now or datetime.now(UTC)
    stamp = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    lines = ["totem-agent diagnostics", f"taken at: {stamp}", f"agent address: {url}"]
    if report is None:
        lines.append("status: UNREACHABLE (the agent did not answer"
                     + (f": {error})" if error else ")"))
        return "\n".join(lines) + "\n"
    labels = report.get("labels") or {}
    lines += [
        f"instance: {report.get('instance', '?')}",
        f"store: {labels.get('store', '(not set)')}",
        *(f"label {k}: {v}" for k, v in sorted(labels.items()) if k != "store"),
        f"version: {report.get('version', '?')}",
        f"uptime: {duration_words(float(report.get('uptime_seconds') or 0))} "
        f"(started {report.get('started_at', '?')})",
        f"kiosk clock: {report.get('time', '?')}",
        f"status: {str(report.get('status', '?')).upper()}",
    ]
    checks: Mapping[str, Mapping[str, Any]] = report.get("checks", {}) or {}
    not_ok = [(n, c) for n, c in sorted(checks.items())
              if c.get("status") not in ("ok", "not_applicable")]
    order = {FAILING: 0, DEGRADED: 1}
    not_ok.sort(key=lambda item: (order.get(str(item[1].get("status")), 2), item[0]))
    if not not_ok:
        lines.append(f"checks: all {len(checks)} OK")
    else:
        lines.append(f"checks not OK ({len(not_ok)} of {len(checks)}):")
        for name, check in not_ok:
            word = CHECK_WORDS.get(str(check.get("status")), str(check.get("status")))
            since = f" since {check['since']}" if check.get("since") else ""
            message = check.get("message") or ""
            lines.append(f"  - {name}: {word}{since}" + (f": {message}" if message else ""))
            last = check.get("last_error")
            if last and last != message:
                at = f" at {check['last_error_at']}" if check.get("last_error_at") else ""
                lines.append(f"    last error{at}: {last}")
    return "\n".join(lines) + "\n"


def icon_image(state: str, size: int = 64) -> Image:
    """A filled disc in the state's colour with a white mark (tick, !, x, ?), so the
    state does not rest on colour alone."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    colour = COLOURS[state]
    draw.ellipse((1, 1, size - 2, size - 2), fill=(*colour, 255))
    s = size / 64
    white = (255, 255, 255, 255)
    width = max(1, round(7 * s))
    if state == OK:
        draw.line([(18 * s, 33 * s), (28 * s, 43 * s), (46 * s, 22 * s)], fill=white,
                  width=width)
    elif state == DEGRADED:
        draw.line([(32 * s, 14 * s), (32 * s, 38 * s)], fill=white, width=width)
        draw.ellipse((28 * s, 44 * s, 36 * s, 52 * s), fill=white)
    elif state == FAILING:
        draw.line([(20 * s, 20 * s), (44 * s, 44 * s)], fill=white, width=width)
        draw.line([(44 * s, 20 * s), (20 * s, 44 * s)], fill=white, width=width)
    else:
        draw.arc((22 * s, 12 * s, 42 * s, 32 * s), start=180, end=90, fill=white, width=width)
        draw.line([(32 * s, 32 * s), (32 * s, 40 * s)], fill=white, width=width)
        draw.ellipse((28 * s, 45 * s, 36 * s, 53 * s), fill=white)
    return image
