"""The fingerprint of a sweep definition, and the check that a store holds the same sweep.

A sweep folder's ``sweep.json`` records what its runs are runs *of*: the
checked scenario (its normalised content, not the file it came from), the
parameter names, mode and points, the replications, the seed, the metrics,
whether seeds are paired, and the meshsim version.  Before a sweep writes into
a folder, :func:`check` compares that record with the new definition:

- the same definition resumes;
- a definition that only *adds* points or replications extends the store (the
  stored runs keep their seeds, which never depend on the rest of the grid);
- anything else raises :class:`SweepMismatch` naming what differs, and the
  folder is left as it was.

>>> a = {"scenario": {"run": {"requests": 400}}, "parameter_names": ["x"], "mode": "product", "points": [{"x": 1}],
...      "replications": 2, "seed": 1, "metrics": None, "paired": False, "meshsim_version": "1.0"}
>>> check(a, dict(a, points=[{"x": 1}, {"x": 2}]))   # more points: an extension
'extend'
>>> check(a, dict(a, seed=2))
Traceback (most recent call last):
...
meshsim.sweep.fingerprint.SweepMismatch: the folder holds a different sweep: seed: stored 1, now 2
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import numpy as np

from ..errors import ScenarioError

#: The parts of a definition that must be equal for runs to be mixed (points and replications may grow).
STRICT = ("parameter_names", "mode", "seed", "metrics", "paired", "meshsim_version")


class SweepMismatch(ScenarioError):
    """A sweep folder holds runs of another sweep definition; ``differences`` lists what differs."""

    def __init__(self, differences: list[str], directory: str | None = None):
        self.differences = list(differences)
        self.directory = directory
        where = f"{directory} holds" if directory else "the folder holds"
        super().__init__("", f"{where} a different sweep: " + "; ".join(self.differences))


def canonical(value: Any) -> Any:
    """A JSON-able, order-independent form of a value (distributions become their kind and fields).

    >>> from meshsim.distributions import Exponential
    >>> canonical({"b": (1, 2.5), "a": Exponential(10.0)})
    {'a': {'kind': 'exponential', 'mean': 10.0}, 'b': [1, 2.5]}
    """
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return canonical(value.tolist())
    if isinstance(value, np.generic):
        return canonical(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"kind": getattr(value, "kind", type(value).__name__)}
        for f in dataclasses.fields(value):
            if f.compare and not f.name.startswith("_"):
                out[f.name] = canonical(getattr(value, f.name))
        return out
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(definition: dict[str, Any]) -> str:
    """A short hash of a whole definition (as made by :func:`meshsim.sweep.runner.definition`)."""
    keys = ("scenario",) + STRICT + ("points", "replications")
    return digest({k: definition.get(k) for k in keys})[:16]


def _spec_differences(old: Any, new: Any, path: str = "", out: list[str] | None = None, limit: int = 4) -> list[str]:
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            p = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append(f"{p} added")
            elif k not in new:
                out.append(f"{p} removed")
            else:
                _spec_differences(old[k], new[k], p, out, limit)
            if len(out) >= limit:
                break
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _spec_differences(a, b, f"{path}[{i}]", out, limit)
    elif old != new:
        out.append(f"{path or 'scenario'} {_short(old)} -> {_short(new)}")
    return out


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def differences(stored: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], bool]:
    """What differs between a stored and a new definition, and whether the new one merely extends it."""
    out: list[str] = []
    if canonical(stored.get("scenario")) != canonical(new.get("scenario")):
        changed = _spec_differences(canonical(stored.get("scenario")), canonical(new.get("scenario")))
        out.append("scenario content differs" + (f" at {', '.join(changed)}" if changed else ""))
    for key in STRICT:
        a, b = canonical(stored.get(key)), canonical(new.get(key))
        if a != b:
            if key == "meshsim_version":
                out.append(f"meshsim version: its runs were made by meshsim {a}, this is {b}")
            else:
                out.append(f"{key}: stored {_short(a)}, now {_short(b)}")
    extends = False
    old_points = {json.dumps(p, sort_keys=True) for p in canonical(stored.get("points") or [])}
    new_points = {json.dumps(p, sort_keys=True) for p in canonical(new.get("points") or [])}
    missing = old_points - new_points
    if missing:
        out.append(f"grid: {len(missing)} stored point(s) are not in this sweep, e.g. {sorted(missing)[0]}")
    elif new_points != old_points:
        extends = True
    r_old, r_new = stored.get("replications"), new.get("replications")
    if isinstance(r_old, int) and isinstance(r_new, int) and r_new < r_old:
        out.append(f"replications: stored {r_old}, now {r_new} (fewer)")
    elif r_old != r_new:
        extends = True
    return out, extends


def check(stored: dict[str, Any] | None, new: dict[str, Any], directory: str | None = None) -> str:
    """``"new"`` (nothing stored), ``"same"``, ``"extend"`` (more points or replications), or SweepMismatch."""
    if stored is None:
        return "new"
    if "fingerprint" not in stored and "points" not in stored:
        raise SweepMismatch(["its sweep.json has no fingerprint (written by an older meshsim), so its runs "
                             "cannot be checked against this sweep"], directory)
    diffs, extends = differences(stored, new)
    if diffs:
        raise SweepMismatch(diffs, directory)
    return "extend" if extends else "same"


__all__ = ["STRICT", "SweepMismatch", "canonical", "check", "differences", "digest", "fingerprint"]
