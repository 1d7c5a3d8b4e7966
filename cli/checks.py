"""Up-front checks of a command's numeric options: NaN, infinity and out-of-range values.

typer parses ``nan`` and ``inf`` as floats, and a comparison with NaN is always false, so a
``value <= 0`` test lets NaN through (``index --window nan`` then failed every file). Every
numeric option is checked here before a library is opened or a model loads.
"""

from __future__ import annotations

import math

from vidsearch.errors import InputError

__all__ = ["check_number", "check_order", "MAX_SECONDS", "MAX_COUNT", "TEMPERATURE"]

# Bounds every option of its kind has even when the command names none: beyond them a value is a
# typo, and it overflows later (``--end 1e308`` as frame numbers, ``--top 10**20`` as an array size).
MAX_SECONDS = 1e7  # about 115 days: longer than any video
MAX_COUNT = 2**31 - 1
# A softmax temperature: below this every probability is 0 or 1 (then NaN); above it, all are equal.
TEMPERATURE = {"low": 1e-4, "high": 1e4}


def check_number(
    option: str,
    value: float | int | None,
    *,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
    unit: str = "",
) -> None:
    """Reject a non-finite ``value`` or one outside ``[low, high]`` (``(low, high]`` with ``above``).

    None (the option was not given) passes.

    Raises:
        InputError: naming the option, the allowed range and the value given.
    """
    if value is None:
        return
    if high is None and unit == "seconds":
        high = MAX_SECONDS
    elif high is None and isinstance(value, int):
        high = MAX_COUNT
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if above else value >= low
    if ok and high is not None:
        ok = value <= high
    if ok:
        return
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None:
        want = f"in {'(' if above else '['}{low:g}, {high:g}]"
    elif low is not None:
        want = f"{'>' if above else '>='} {low:g}{suffix}"
    elif high is not None:
        want = f"<= {high:g}{suffix}"
    else:
        want = "a finite number"
    raise InputError(f"{option} must be {want}, got {value}")


def check_order(
    low_option: str, low: float | None, high_option: str, high: float | None, *, strict: bool = False
) -> None:
    """Reject ``low > high`` (``low >= high`` with ``strict``) when both options are given.

    Raises:
        InputError: naming both options and their values.
    """
    if low is None or high is None:
        return
    if low > high or (strict and low == high):
        raise InputError(f"{low_option} {low:g} must be {'below' if strict else 'at most'} {high_option} {high:g}")
