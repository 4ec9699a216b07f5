"""Regex options that leave devices or mounts out (node_exporter's device_filter.go).

node_exporter matches its exclude flags with Go's `MatchString`, which finds the
pattern anywhere in the name; `re.search` does the same. An empty pattern here
means "exclude nothing" (a Go empty regexp would match every name, which no one
wants from an exclude option).
"""

from __future__ import annotations

import re

from totem_agent.options import Option, OptionError


def _check_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as err:
        raise OptionError(f"not a valid regular expression: {err}") from None


def regex_option(default: str, help: str) -> Option:
    """A `str` option holding a regular expression, refused at config time if it
    does not compile."""
    return Option("str", default, help, check=_check_regex)


class NameFilter:
    """Says whether a device or mount-point name is excluded by one pattern."""

    def __init__(self, exclude: str) -> None:
        self._pattern = re.compile(exclude) if exclude else None

    def excluded(self, name: str) -> bool:
        return self._pattern is not None and self._pattern.search(name) is not None
