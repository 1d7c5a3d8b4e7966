"""Up-front checks of a command's numeric options: NaN, infinity and out-of-range values.

typer parses ``nan`` and ``inf`` as floats, and a comparison with NaN is always false, so a
``value <= 0`` test lets NaN through (``index --window nan`` then failed every file). Every
numeric option is checked here before a library is opened or a model loads.
"""

from __future__ import annotations

import math

from vidsearch.errors import InputError

__all__ = ["check_number", "check_order", "check_temperature", "MAX_SECONDS", "MAX_COUNT", "TEMPERATURE"]

# Bounds every option of its kind has even when the command names none: beyond them a value is a
# typo, and it overflows later (``--end 1e308`` as frame numbers, ``--top 10**20`` as an array size).
MAX_SECONDS = 1e7  # about 115 days: longer than any video
MAX_COUNT = 2**31 - 1
# A softmax temperature: below this every probability is 0 or 1 (then NaN); above it, all are equal.
TEMPERATURE = (1e-4, 1e4)


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
    implicit = MAX_SECONDS if unit == "seconds" else MAX_COUNT if isinstance(value, int) else None
    if high is None and implicit is not None and math.isfinite(value) and value > implicit:
        raise InputError(f"{option} must be at most {implicit:g}{' ' + unit if unit else ''}, got {value}")
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


def check_temperature(option: str, value: float | None) -> None:
    """Reject a softmax temperature that is not positive, or outside :data:`TEMPERATURE`.

    Raises:
        InputError: naming the option, the allowed range and the value given.
    """
    check_number(option, value, low=0, above=True)
    if value is not None and not TEMPERATURE[0] <= value <= TEMPERATURE[1]:
        raise InputError(f"{option} must be in [{TEMPERATURE[0]:g}, {TEMPERATURE[1]:g}], got {value}")
