"""The one validator of scalar settings, shared by every layer (no solver logic)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from bgmm.exceptions import InputTypeError, InputValueError

__all__ = ["check_number"]


def check_number(
    name: str,
    value: Any,
    *,
    low: float,
    low_inclusive: bool = True,
    high: float | None = None,
    integer: bool = False,
) -> Any:
    """Check a scalar setting and return it (a Python int when ``integer``).

    Parameters
    ----------
    name : str
        The parameter's name, as the user wrote it.
    value : object
        The value to check.
    low : float
        Smallest allowed value.
    low_inclusive : bool, default True
        Whether ``low`` itself is allowed.
    high : float, optional
        Largest allowed value (inclusive).
    integer : bool, default False
        Require an integer (``bool`` is refused either way).

    Returns
    -------
    int or float
        ``value``.

    Raises
    ------
    TypeError
        Not a real number (or not an integer when ``integer``).
    ValueError
        Not finite, or outside the allowed range; the message names the range and the value.
    """
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(
        value, bool | np.bool_
    )
    if not ok_type:
        raise InputTypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__}).")
    too_low = value < low or (value == low and not low_inclusive)
    too_high = high is not None and value > high
    if not np.isfinite(value) or too_low or too_high:
        what = "an integer" if integer else "a finite number"
        bound = f">= {low}" if low_inclusive else f"> {low}"
        if high is not None:
            bound += f" and <= {high}"
        raise InputValueError(f"{name} must be {what} {bound}, got {value!r}.")
    return int(value) if integer else value
