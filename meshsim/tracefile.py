"""Reading arrival traces (CSV files of arrival times in ms) for trace replay.

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "t.csv")
>>> _ = open(p, "w").write("time_ms\\n0\\n12.5\\n30\\n")
>>> read_trace(p).tolist()
[0.0, 12.5, 30.0]
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .errors import ScenarioError
from .examples import DATA_DIR


def resolve_data_file(name: str, base_dir: Path | None, path: str) -> Path:
    """Find ``name``: absolute, else beside the scenario, else in the shipped data (meshsim/data)."""
    p = Path(name)
    candidates = [p] if p.is_absolute() else [c for c in ((base_dir / p) if base_dir else None, Path.cwd() / p, DATA_DIR / p) if c]
    for c in candidates:
        if c.is_file():
            return c
    raise ScenarioError(path, f"file {name!r} not found (looked in {', '.join(str(c.parent) for c in candidates)})")


def read_trace(name: str, column: str = "time_ms", base_dir: Path | None = None, path: str = "file") -> np.ndarray:
    """Sorted arrival times (ms) from a CSV file with a header naming ``column``."""
    file = resolve_data_file(name, base_dir, path)
    try:
        with file.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise ScenarioError(path, f"{file.name} has no column {column!r}; columns: {reader.fieldnames}")
            values = [float(row[column]) for row in reader if row[column].strip()]
    except ValueError as e:
        raise ScenarioError(path, f"{file.name}: {e}") from None
    arr = np.sort(np.asarray(values, dtype=float))
    if len(arr) == 0:
        raise ScenarioError(path, f"{file.name} holds no arrival times")
    if arr[0] < 0:
        raise ScenarioError(path, f"{file.name} has negative arrival times")
    return arr
