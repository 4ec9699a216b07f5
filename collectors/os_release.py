"""os: node_os_info{...} and node_os_version{id,id_like,name} from os-release.

node_exporter 1.5's os collector (its os_release.go): <rootfs>/etc/os-release,
else <rootfs>/usr/lib/os-release (os-release(5)); neither present is "nothing
to watch". Linux only: Windows has no os-release, and its version is in
node_uname_info.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError

# node_os_info's labels, in node_exporter's order, and the os-release key of each.
INFO_LABELS = (
    ("build_id", "BUILD_ID"), ("id", "ID"), ("id_like", "ID_LIKE"), ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"), ("name", "NAME"), ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"), ("variant_id", "VARIANT_ID"), ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"), ("version_id", "VERSION_ID"),
)
VERSION_LABELS = (("id", "ID"), ("id_like", "ID_LIKE"), ("name", "NAME"))

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The leading "major.minor" of VERSION_ID ("22.04" -> 22.04, "3.18.4" -> 3.18, "12" -> 12).
_MAJOR_MINOR = re.compile(r"^[0-9]+\.?[0-9]*")
# Backslash escapes inside double quotes: os-release(5)'s shell set, plus \n and \t
# that node_exporter's parser (hashicorp/go-envparse) also accepts.
_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "`": "`", "n": "\n", "t": "\t"}


def _parse_value(raw: str) -> str:
    """Unquote one value: "double" (with escapes), 'single', bare; a bare # starts a comment."""
    out: list[str] = []
    significant = 0  # length of `out` up to its last character that is not bare whitespace
    quote = ""
    chars = iter(raw)
    for char in chars:
        if quote == '"':
            if char == '"':
                quote = ""
            elif char == "\\":
                escaped = next(chars, None)
                if escaped is None:
                    raise ValueError("incomplete escape sequence")
                if escaped not in _ESCAPES:
                    raise ValueError(f"invalid escape sequence \\{escaped}")
                out.append(_ESCAPES[escaped])
                significant = len(out)
            else:
                out.append(char)
                significant = len(out)
        elif quote == "'":
            if char == "'":
                quote = ""
            else:
                out.append(char)
                significant = len(out)
        elif char in "\"'":
            quote = char
        elif char == "#":
            return "".join(out[:significant])
        else:
            out.append(char)
            if char not in " \t":
                significant = len(out)
    if quote:
        raise ValueError(f"unmatched {quote}")
    return "".join(out)


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release's KEY=value lines (comments, blank lines and `export ` allowed)."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.partition("=")
        if not sep:
            raise ValueError(f"line {lineno}: missing '=' in {line!r}")
        key = key.strip()
        key = key.removeprefix("export ").strip()
        if not _KEY.fullmatch(key):
            raise ValueError(f"line {lineno}: invalid key {key!r}")
        try:
            values[key] = _parse_value(raw.strip())
        except ValueError as err:
            raise ValueError(f"line {lineno} ({key}): {err}") from None
    return values


def major_minor(version_id: str) -> float:
    """VERSION_ID's leading major.minor as a number; 0 when it has none ("rolling")."""
    match = _MAJOR_MINOR.match(version_id)
    return float(match.group(0)) if match else 0.0


class OsCollector(Collector):
    name = "os"
    description = "Operating system name and version from os-release (node_exporter's os)"
    platforms = frozenset({"linux"})

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        paths = context.paths
        self._candidates = (paths.root("etc", "os-release"),
                            paths.root("usr", "lib", "os-release"))

    def _read(self) -> dict[str, str]:
        for path in self._candidates:
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue  # os-release(5): fall back to /usr/lib/os-release
            try:
                return parse_os_release(text)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from err
        raise NoDataError(f"neither {' nor '.join(map(str, self._candidates))} exists")

    def collect(self) -> Iterable[Metric]:
        release = self._read()
        info = GaugeMetricFamily(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, "
            "image_version, name, pretty_name, variant, variant_id, version, "
            "version_codename, version_id.",
            labels=[label for label, _ in INFO_LABELS])
        info.add_metric([release.get(key, "") for _, key in INFO_LABELS], 1.0)
        families: list[Metric] = [info]
        version = major_minor(release.get("VERSION_ID", ""))
        # node_exporter leaves node_os_version out when VERSION_ID has no number.
        if version > 0:
            numeric = GaugeMetricFamily(
                "node_os_version", "Metric containing the major.minor part of the OS version.",
                labels=[label for label, _ in VERSION_LABELS])
            numeric.add_metric([release.get(key, "") for _, key in VERSION_LABELS], version)
            families.append(numeric)
        return families
