"""Readable labels and a sort order for grid values of any type (numbers, strings, None, lists, dicts).

A parameter whose values are all numbers (or all strings, or all booleans)
keeps them as they are; any other column (``None`` among numbers, lists,
dicts, a mixture) is shown by labels in YAML's flow style, so it can be
grouped, sorted, printed and plotted:

>>> value_label({"dist": "exponential", "mean": "8ms"}), value_label([]), value_label(None), value_label(2.0)
('{dist: exponential, mean: 8ms}', '[]', 'null', '2')
>>> needs_label([1, 2.5]), needs_label([None, 3]), needs_label([[1], [2]])
(False, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def value_label(value: Any) -> str:
    """A short, YAML-like text for one grid value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_label(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_label(v)}" for k, v in value.items()) + "}"
    return str(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def needs_label(values: Iterable[Any]) -> bool:
    """True unless every value is a number (not NaN), or every value a string, or every value a boolean."""
    vals = [v.item() if hasattr(v, "item") and not isinstance(v, (list, dict)) else v for v in values]
    if all(_is_number(v) for v in vals) or all(isinstance(v, str) for v in vals):
        return False
    return not all(isinstance(v, bool) for v in vals)


def labelled(frame, parameters: list[str]):
    """A copy of ``frame`` whose parameter columns that need it hold labels instead of values."""
    out = frame.copy()
    for p in parameters:
        if p in out and needs_label(out[p]):
            out[p] = [value_label(v) for v in out[p]]
    return out


def sort_rows(frame, parameters: list[str], order: list[dict[str, Any]] | None = None):
    """Rows sorted by parameter values (where they are ordered) else by grid order, then replication."""
    import pandas as pd

    if len(frame) == 0:
        return frame
    keys = {}
    for p in parameters:
        if p not in frame:
            continue
        col = frame[p]
        if not needs_label(col):
            keys[f"__k_{p}"] = col
            continue
        seen: dict[str, int] = {}
        for point in order or []:
            seen.setdefault(value_label(point.get(p)), len(seen))
        labels = [value_label(v) for v in col]
        for lab in labels:
            seen.setdefault(lab, len(seen))
        keys[f"__k_{p}"] = pd.Series([seen[lab] for lab in labels], index=frame.index)
    by = list(keys) + (["replication"] if "replication" in frame else [])
    tmp = frame.assign(**keys)
    return tmp.sort_values(by, kind="stable").drop(columns=list(keys)).reset_index(drop=True)


__all__ = ["labelled", "needs_label", "sort_rows", "value_label"]
