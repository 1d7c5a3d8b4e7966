"""Points in time a user types (``--since``): a duration back from now, or a date/time.

``10m``, ``2h``, ``1d`` (also ``90s``, ``2w``) mean that long before now; ``2026-12-07``,
``2026-12-07T08:30`` or ``2026-12-07 08:30:00+01:00`` are ISO dates/times, in local time unless
they name a zone (``Z`` or an offset), as a camera's operator reads their own clock.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from vidsearch.errors import InputError

__all__ = ["parse_duration", "parse_when"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, argument: str) -> float:
    """Seconds of ``90``, ``90s``, ``30m``, ``24h``, ``7d``, ``2w``.

    Raises:
        InputError: anything else, or not positive (naming ``argument``).
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise InputError(f"{text!r}: give a positive duration such as 90s, 30m, 24h or 7d", argument=argument)
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_when(text: str, *, now: float | None = None, argument: str = "since") -> float:
    """The UTC time (epoch seconds) ``text`` means.

    Args:
        text: ``10m``/``2h``/``1d`` back from ``now``, or an ISO date or date/time.
        now: the present (epoch seconds); None: the clock's.
        argument: the caller's argument, named by the error.

    Raises:
        InputError: anything else (one line, naming ``argument``).
    """
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*[smhdw]\s*", text):  # a bare number would be ambiguous
        return (time.time() if now is None else now) - parse_duration(text, argument=argument)
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InputError(
            f"{text!r} is not a time",
            argument=argument,
            hint="give a duration back from now (10m, 2h, 1d) or a date/time (2026-12-07 or 2026-12-07T08:30, "
            "local time unless it names a zone)",
        ) from None
    # a naive date/time is local time: astimezone() reads it so before converting
    return (when if when.tzinfo is not None else when.astimezone()).timestamp()
