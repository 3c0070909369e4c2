"""The result store of a sweep: one JSON file per finished run, written atomically.

Layout of DIR::

    DIR/sweep.json              the sweep: base scenario, parameters, seed, replications,
                                and the fingerprint of its definition (see fingerprint.py)
    DIR/runs/<point>-r<k>.json  one finished run: parameters, seed, metrics or error,
                                meshsim version, git revision, wall time
    DIR/aggregate.csv           mean and confidence interval per point (written after each sweep)

A file appears only when its run has finished (written to a temporary name,
then renamed), so a sweep killed at any moment leaves no partial file, and a
rerun with the same DIR skips every run whose file exists.  A rerun with a
different definition is refused before anything is written (SweepMismatch).
Runs made by another meshsim version than the current one are flagged: the
runs table has a ``meshsim_version`` column and loading warns.

>>> import tempfile
>>> store = ResultStore(tempfile.mkdtemp())
>>> store.write("abc-r0", {"params": {"x": 1}, "replication": 0, "seed": 7, "metrics": {"m": 2.0}, "error": None})
>>> sorted(store.done())
['abc-r0']
>>> store.load().loc[0, "m"]
np.float64(2.0)
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The git revision of the meshsim source tree, if it is a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ResultStore:
    """Finished runs on disk (or in memory when ``directory`` is None)."""

    def __init__(self, directory: str | os.PathLike | None):
        self.dir = Path(directory) if directory is not None else None
        self._mem: dict[str, dict] = {}
        if self.dir is not None:
            (self.dir / "runs").mkdir(parents=True, exist_ok=True)

    def write_sweep(self, definition: dict[str, Any]) -> None:
        if self.dir is not None:
            _atomic_write(self.dir / "sweep.json", json.dumps(definition, indent=2, default=str))

    def read_sweep(self) -> dict[str, Any] | None:
        """The stored definition (sweep.json), or None for a new store."""
        return read_definition(self.dir) if self.dir is not None else None

    def write_text(self, name: str, text: str) -> Path | None:
        """Write a file of the store atomically (e.g. aggregate.csv); None for an in-memory store."""
        if self.dir is None:
            return None
        _atomic_write(self.dir / name, text)
        return self.dir / name

    def done(self) -> set[str]:
        """Keys of the runs already finished (successfully or with an error)."""
        if self.dir is None:
            return set(self._mem)
        return {p.stem for p in (self.dir / "runs").glob("*.json") if not p.name.startswith(".tmp-")}

    def write(self, key: str, record: dict[str, Any]) -> None:
        if self.dir is None:
            self._mem[key] = record
        else:
            _atomic_write(self.dir / "runs" / f"{key}.json", json.dumps(record, default=str))

    def records(self) -> list[dict[str, Any]]:
        if self.dir is None:
            return [dict(r, key=k) for k, r in self._mem.items()]
        out = []
        for p in sorted((self.dir / "runs").glob("*.json")):
            if p.name.startswith(".tmp-"):
                continue
            rec = json.loads(p.read_text(encoding="utf-8"))
            rec["key"] = p.stem
            out.append(rec)
        return out

    def load(self, warn: bool = True):
        """One row per finished run: parameters, replication, seed, metrics, error, meshsim_version.

        Parameters whose values are not all plain scalars (None, lists, dicts)
        keep their values as objects.  Runs of another meshsim version than
        this one are flagged with a warning (``warn=False`` to silence it).
        """
        import pandas as pd

        from .labels import needs_label

        recs = self.records()
        rows = []
        for rec in recs:
            row = {**rec["params"], "replication": rec["replication"], "seed": rec["seed"]}
            row.update(rec.get("metrics") or {})
            row["error"] = rec.get("error")
            row["meshsim_version"] = rec.get("meshsim_version")
            rows.append(row)
        df = pd.DataFrame(rows)
        names = list(dict.fromkeys(k for rec in recs for k in rec["params"]))
        for name in names:
            values = [rec["params"].get(name) for rec in recs]
            if needs_label(values):
                df[name] = pd.Series(values, index=df.index, dtype=object)
        if warn and len(df):
            _flag_versions(df["meshsim_version"], self.dir)
        return df


def _flag_versions(versions, where) -> None:
    from .. import __version__

    found = sorted({str(v) for v in versions if v is not None})
    other = [v for v in found if v != __version__]
    if other:
        n = sum(v is not None and str(v) != __version__ for v in versions)
        warnings.warn(f"sweep store {where or '(in memory)'}: {n} runs were "
                      f"made by meshsim {', '.join(other)}, this is {__version__}; their numbers may differ "
                      "(see the meshsim_version column)", SweepWarning, stacklevel=3)


class SweepWarning(UserWarning):
    """A sweep store holds runs that may not mix (e.g. made by another meshsim version)."""


def read_definition(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The sweep.json of a folder; None if it holds neither sweep.json nor runs.

    A folder with runs but no sweep.json gives ``{}`` (an unknown definition).
    """
    d = Path(directory)
    path = d / "sweep.json"
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}
    runs = d / "runs"
    if runs.is_dir() and any(not p.name.startswith(".tmp-") for p in runs.glob("*.json")):
        return {}
    return None


def load_results(directory: str | os.PathLike):
    """The runs DataFrame of a sweep directory (finished runs only)."""
    d = Path(directory)
    if not (d / "runs").is_dir():
        raise FileNotFoundError(f"{d} holds no sweep results (no runs/ folder)")
    return ResultStore(d).load()
