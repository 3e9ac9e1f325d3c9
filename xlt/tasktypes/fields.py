"""Strict field values, shared by the task types' `prepare`: what a data file holds is taken as it is or refused.

A label, tag, word or text is a string (or, for labels and tags, an integer id); a boolean, a list, an object
or a null is none of these and is refused rather than turned into `True == 1`, `"None"` or a Python repr.
Numeric labels are ASCII digits only (`str.isdigit` also accepts `١`, `¹`, `１`). Empty fields are counted and
warned once per file (`EmptyFieldWarning`); a type refuses the rows that mean nothing without them.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Mapping

import numpy as np

from xlt.errors import XltError

_ASCII_INT = re.compile(r"-?[0-9]+")


class EmptyFieldWarning(UserWarning):
    """Rows of a data file with an empty field that are kept (counted, first row named)."""


def not_a_value(value: Any) -> str | None:
    """What `value` is when it cannot be a label, tag, word or text ("null", "a boolean", "a list", "an
    object"); None when it can."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return None


def ascii_int(text: str) -> int | None:
    """The integer a string of ASCII digits (optionally after '-') spells, else None."""
    return int(text) if _ASCII_INT.fullmatch(text) else None


def text_column(values, where: str, role: str, column: str, allow_null: bool = False) -> list[str]:
    """A text column as strings: numbers are written out, a null becomes "" if `allow_null` (a missing value;
    the caller counts it as empty), and a boolean, list or object is refused naming the row."""
    out = []
    for row, value in enumerate(values):
        kind = not_a_value(value)
        if kind == "null" and allow_null:
            out.append("")
        elif kind is not None:
            raise XltError(f"row {row} of {where}: {role} ({column!r}) is {kind} ({value!r}), not text; fix the "
                           "data (a text field holds a string)")
        else:
            out.append(value if isinstance(value, str) else str(value))
    return out


def warn_empty(where: str, what: str, count: int, total: int, first: str, unit: str = "rows") -> None:
    """One warning per file: how many of `total` rows (or words) have an empty `what`, and where the first is."""
    warnings.warn(f"{where}: {count} of {total} {unit} have {what}; first: {first}", EmptyFieldWarning,
                  stacklevel=3)


__all__ = ["EmptyFieldWarning", "not_a_value", "ascii_int", "text_column", "warn_empty"]
