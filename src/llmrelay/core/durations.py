"""Durations as people write them: "90s", "15m", "12h", "30d", "2w" (or a number of seconds)."""

import re

from llmrelay.core.errors import BadRequest

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value: str | int | float, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise BadRequest(f"{what} must be a duration such as 90s, 15m, 12h, 30d or 2w, not {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
