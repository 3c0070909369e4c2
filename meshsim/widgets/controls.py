"""Controls for dotted scenario paths, inferred from the schema (no ipywidgets needed until a widget is made).

:func:`control_spec` walks the scenario schema (``meshsim.scenario.spec``)
along a dotted path and says what kind of control fits the key (integer,
number, duration in ms, rate in req/s, choice, switch), its range and its
current value in the scenario.  :func:`make_widget` turns that into an
ipywidgets control.

>>> import meshsim
>>> sc = meshsim.load_scenario(meshsim.example("three_tier"))
>>> c = control_spec(sc, "services.api.replicas")
>>> c.kind, c.value, c.min, c.max
('int', 3, 1, 9)
>>> control_spec(sc, "metrics.warmup").kind, control_spec(sc, "metrics.warmup").value
('duration', 10000.0)
>>> control_spec(sc, "services.api.load_balancer.policy").options[:3]
[('(default)', '(default)'), ('round_robin', 'round_robin'), ('weighted_round_robin', 'weighted_round_robin')]
>>> control_spec(sc, "services.api.replics")
Traceback (most recent call last):
...
meshsim.errors.ScenarioError: services.api.replics: unknown key; valid keys are replicas, workers, queue, semantics, placement, zones, service_time, calls, endpoints, load_balancer, timeout, retries, circuit_breaker, outlier_detection, hedge_on_per_try_timeout, max_concurrency (did you mean 'services.api.replicas'?)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ScenarioError, closest
from ..scenario.model import Scenario
from ..scenario.schema import AnyOf, Bool, Custom, Dist, Duration, Enum, Float, Int, ListOf, MapOf, Node, Rate, Struct
from ..scenario.spec import SCENARIO
from ..units import parse_duration, parse_rate

#: kinds of control: integer slider, number slider, duration slider (ms), rate slider (req/s), dropdown, checkbox
KINDS = ("int", "float", "duration", "rate", "choice", "bool")

#: the unit shown beside the value of each kind of slider
UNITS = {"duration": "ms", "rate": "req/s", "int": "", "float": ""}

#: label and value of the dropdown entry that leaves an optional key at its default (None in the scenario);
#: not None itself, because an ipywidgets Dropdown shows the value None as an empty box
DEFAULT_LABEL = "(default)"


def scenario_value(spec: ControlSpec, value: Any) -> Any:
    """The value a control's value stands for in the scenario (the "(default)" entry is None).

    >>> scenario_value(ControlSpec("mesh.workers", "choice", None), DEFAULT_LABEL) is None
    True
    """
    return None if spec.kind == "choice" and value == DEFAULT_LABEL else value


@dataclass
class ControlSpec:
    """What one control looks like: kind, range or options, current value, unit and documentation."""

    path: str
    kind: str
    value: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: list[tuple[str, Any]] = field(default_factory=list)
    doc: str = ""

    @property
    def unit(self) -> str:
        return UNITS.get(self.kind, "")

    @property
    def label(self) -> str:
        """A short description: the last two parts of the path (``api.replicas``)."""
        parts = self.path.split(".")
        return ".".join(parts[-2:]) if len(parts) > 1 else self.path


_TOKEN = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def split_path(path: str) -> list[str | int]:
    """``"faults[0].at"`` -> ``["faults", 0, "at"]``.

    >>> split_path("services.api.load_balancer.policy")
    ['services', 'api', 'load_balancer', 'policy']
    >>> split_path("faults[0].at")
    ['faults', 0, 'at']
    """
    if not isinstance(path, str) or not path or ".." in path or path.startswith(".") or path.endswith("."):
        raise ScenarioError(str(path), "is not a valid path: keys separated by dots, list items as [i]")
    parts: list[str | int] = []
    pos = 0
    for m in _TOKEN.finditer(path):
        gap = path[pos:m.start()]
        if gap not in ("", "."):
            raise ScenarioError(path, "is not a valid path: keys separated by dots, list items as [i]")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if path[pos:]:
        raise ScenarioError(path, "is not a valid path: keys separated by dots, list items as [i]")
    return parts


def _join(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out = f"{out}[{p}]" if isinstance(p, int) else (f"{out}.{p}" if out else str(p))
    return out


def _get(value: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return value[key] if isinstance(value, list) and -len(value) <= key < len(value) else None
    return value.get(key) if isinstance(value, dict) else None


def _unknown(parts: list[str | int], i: int, valid: list[str], what: str) -> ScenarioError:
    """An error for parts[i] not being valid, suggesting the whole path with the closest valid key."""
    bad = str(parts[i])
    best = closest(bad, valid)
    suggestion = _join(parts[:i] + [best] + parts[i + 1:]) if best else None
    return ScenarioError(_join(parts[:i + 1]), f"{what}; valid keys are {', '.join(valid)}", suggestion)


def lookup(scenario: Scenario, path: str) -> tuple[Node | None, Any, Any, str]:
    """Walk the schema along ``path``: ``(node, checked value, raw value, doc)``.

    ``node`` is None below a distribution (``services.db.service_time.mean``),
    whose parameters the schema does not list; the raw value tells then.
    Raises ScenarioError naming the closest valid key for a path the schema
    (or the scenario's own names of services, workloads...) does not have.
    """
    parts = split_path(path)
    node: Node | None = SCENARIO
    spec: Any = scenario.spec
    raw: Any = scenario.raw
    doc = ""
    for i, key in enumerate(parts):
        if isinstance(node, AnyOf):
            node = next((n for accepts, n in node.alts if accepts(raw if raw is not None else spec)), node.alts[-1][1])
        if node is None or isinstance(node, Dist):
            if isinstance(key, int) or not isinstance(raw, dict) or key not in raw:
                have = sorted(raw) if isinstance(raw, dict) else []
                raise _unknown(parts, i, have, "not a parameter of this distribution") if have else \
                    ScenarioError(_join(parts[:i + 1]), "is not in the scenario (a distribution given as a "
                                                        "constant has no parameters)")
            node, spec, raw = None, None, raw[key]
            doc = f"parameter {key} of the distribution {_join(parts[:i])}"
            continue
        if isinstance(node, Struct):
            if isinstance(key, int) or key not in node.fields:
                raise _unknown(parts, i, list(node.fields), "unknown key")
            f = node.fields[key]
            node, doc = f.node, f.doc
        elif isinstance(node, MapOf):
            names = list(spec) if isinstance(spec, dict) else list(raw) if isinstance(raw, dict) else []
            if isinstance(key, int) or key not in names:
                raise _unknown(parts, i, names, f"no {node.key_doc} {key!r} in this scenario")
            node = node.value
        elif isinstance(node, ListOf):
            n = len(spec) if isinstance(spec, list) else len(raw) if isinstance(raw, list) else 0
            if not isinstance(key, int) or not -n <= key < n:
                raise ScenarioError(_join(parts[:i + 1]), f"no such list item (the list has {n})")
            node = node.item
        else:
            raise ScenarioError(_join(parts[:i + 1]), f"{_join(parts[:i])} is a {node.type_name}, with no keys below it")
        spec, raw = _get(spec, key), _get(raw, key)
    return node, spec, raw, doc


def nice_step(span: float, n: int = 100) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving at most ``n`` steps over ``span``.

    >>> nice_step(1500), nice_step(3.0), nice_step(0.0)
    (20.0, 0.05, 1.0)
    """
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / n
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw * 0.999:
            return float(round(m * power, 12)) if m < 10 else float(round(10 * power, 12))
    return power  # pragma: no cover


def _kind(node: Node | None, value: Any, raw: Any, path: str) -> str:
    if isinstance(node, Bool):
        return "bool"
    if isinstance(node, Enum):
        return "choice"
    if isinstance(node, Int):
        return "int"
    if isinstance(node, Float):
        return "float"
    if isinstance(node, Duration):
        return "duration"
    if isinstance(node, Rate):
        return "rate"
    if isinstance(node, Custom):
        name = node.type_name
        if name.startswith("rate"):
            return "rate"
        if name.startswith("duration"):
            return "duration"
        if "integer" in name and (value is None or isinstance(value, int)):
            return "int"
    if node is None:  # a parameter of a distribution: the raw value tells
        if isinstance(raw, bool):
            return "bool"
        if isinstance(raw, str):
            try:
                parse_duration(raw)
                return "duration"
            except ScenarioError:
                pass
        elif isinstance(raw, (int, float)):
            return "float"
    what = "a distribution; control one of its parameters (e.g. .mean)" if isinstance(node, Dist) else \
        f"a {node.type_name if node is not None else type(raw).__name__}"
    raise ScenarioError(path, f"is {what}; no slider, dropdown or checkbox fits it, so give an explicit "
                              "control: (min, max[, step]), a list of choices, or True/False")


def _number(value: Any, kind: str, path: str) -> float:
    if kind == "duration":
        return parse_duration(value, path)
    if kind == "rate":
        return parse_rate(value, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, f"slider bounds must be numbers, got {value!r}")
    return float(value)


def control_spec(scenario: Scenario, path: str, spec: Any = None) -> ControlSpec:
    """The control for ``path`` in ``scenario``: inferred from the schema (``spec=None``) or explicit.

    Explicit specs: ``(min, max)`` or ``(min, max, step)`` for a slider (durations
    may be strings like ``"250ms"``), a list for a dropdown, True/False for a checkbox.
    """
    node, value, raw, doc = lookup(scenario, path)
    if value is None and raw is not None and not isinstance(raw, (dict, list)):
        value = raw  # not in the checked spec (e.g. a shorthand the checker moved, or inside a distribution)
    if isinstance(value, str) and not isinstance(node, (Enum, Custom)) and node is not None:
        value = None  # only enums and custom keys keep strings; others are normalised in the spec
    if isinstance(spec, bool):
        cur = value if isinstance(value, bool) else spec
        return ControlSpec(path, "bool", cur, doc=doc)
    if isinstance(spec, list):
        if not spec:
            raise ScenarioError(path, "a dropdown needs at least one choice")
        options = [(DEFAULT_LABEL, DEFAULT_LABEL) if v is None else (str(v), v) for v in spec]
        cur = value if value in spec else spec[0]
        cur = DEFAULT_LABEL if cur is None else cur
        return ControlSpec(path, "choice", cur, options=options, doc=doc)
    if isinstance(spec, tuple):
        if len(spec) not in (2, 3):
            raise ScenarioError(path, f"a slider spec is (min, max) or (min, max, step), got {spec!r}")
        try:
            kind = _kind(node, value, raw, path)
        except ScenarioError:
            kind = "float"
        if kind not in ("int", "float", "duration", "rate"):
            kind = "float"
        if kind == "float" and all(isinstance(v, int) and not isinstance(v, bool) for v in spec) and \
                not isinstance(node, (Float, Duration)) and (value is None or isinstance(value, int)):
            kind = "int"
        lo, hi = (_number(v, kind, path) for v in spec[:2])
        if hi <= lo:
            raise ScenarioError(path, f"slider max must be above its min, got {spec!r}")
        step = _number(spec[2], kind, path) if len(spec) == 3 else (1.0 if kind == "int" else nice_step(hi - lo))
        cur = value if isinstance(value, (int, float)) and not isinstance(value, bool) else lo
        cur = min(max(cur, lo), hi)
        if kind == "int":
            return ControlSpec(path, kind, int(cur), int(lo), int(hi), max(1, int(step)), doc=doc)
        return ControlSpec(path, kind, float(cur), lo, hi, step, doc=doc)
    if spec is not None:
        raise ScenarioError(path, f"a control spec is None, (min, max[, step]), a list or a bool, got {spec!r}")

    kind = _kind(node, value, raw, path)
    if kind == "bool":
        return ControlSpec(path, "bool", bool(value), doc=doc)
    if kind == "choice":
        options = [(c, c) for c in node.choices]  # type: ignore[union-attr]
        if value is None:
            options.insert(0, (DEFAULT_LABEL, DEFAULT_LABEL))
            value = DEFAULT_LABEL
        return ControlSpec(path, "choice", value, options=options, doc=doc)
    if kind == "int":
        lo = node.min if isinstance(node, Int) and node.min is not None else 0
        cur = value if isinstance(value, int) else lo
        hi = max(3 * cur, lo + 8)
        if isinstance(node, Int) and node.max is not None:
            hi = min(hi, node.max)
        return ControlSpec(path, "int", cur, lo, max(hi, cur), 1, doc=doc)
    # float, duration, rate
    cur = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if cur is None and isinstance(raw, str):
        cur = _number(raw, kind, path)
    lo = float(node.min) if isinstance(node, Float) and node.min is not None else 0.0
    if isinstance(node, Float) and node.max is not None and node.max <= 100:
        hi = float(node.max)
    else:
        hi = 3 * cur if cur and cur > lo else lo + (1000.0 if kind == "duration" else 1.0)
    step = nice_step(hi - lo)
    exclusive = kind == "rate" or (isinstance(node, Float) and node.min_exclusive) or \
        (isinstance(node, Duration) and node.min_exclusive is not None)
    if exclusive and lo <= 0:
        lo = step
    cur = lo if cur is None else cur
    return ControlSpec(path, kind, cur, lo, max(hi, cur), step, doc=doc)


def default_controls(scenario: Scenario, max_services: int = 6) -> dict[str, None]:
    """A sensible first set of controls: the first workload's rate (or users), and every service's replicas.

    >>> import meshsim
    >>> list(default_controls(meshsim.load_scenario(meshsim.example("three_tier"))))
    ['workloads.users.rate', 'services.frontend.replicas', 'services.api.replicas', 'services.db.replicas']
    """
    out: dict[str, None] = {}
    for name, w in scenario.workloads.items():
        if w["type"] == "closed":
            out[f"workloads.{name}.users"] = None
        elif w.get("rate") is not None:
            out[f"workloads.{name}.rate"] = None
        break
    for name in list(scenario.services)[:max_services]:
        out[f"services.{name}.replicas"] = None
    return out


def format_value(spec: ControlSpec, value: Any) -> str:
    """The readout beside a slider: ``"250 ms"``, ``"1,200 req/s"``.

    >>> format_value(ControlSpec("metrics.warmup", "duration", 250.0), 250.0)
    '250 ms'
    >>> format_value(ControlSpec("workloads.users.rate", "rate", 1200.0), 1200.0)
    '1,200 req/s'
    """
    if isinstance(value, float):
        text = f"{value:,.0f}" if value >= 100 or value.is_integer() else f"{value:.4g}"
    else:
        text = str(value)
    return f"{text} {spec.unit}".strip()


def make_widget(spec: ControlSpec) -> tuple[Any, Any]:
    """``(control, row)``: the ipywidgets control and the row to lay out (control plus its unit readout)."""
    import ipywidgets as W

    common = dict(description=spec.label, tooltip=f"{spec.path}: {spec.doc}" if spec.doc else spec.path,
                  style={"description_width": "initial"})
    if spec.kind == "bool":
        w = W.Checkbox(value=bool(spec.value), indent=False, **common)
        return w, w
    if spec.kind == "choice":
        w = W.Dropdown(options=spec.options, value=spec.value, **common)
        return w, w
    slider = dict(continuous_update=False, layout=W.Layout(width="420px"), **common)
    if spec.kind == "int":
        w = W.IntSlider(value=int(spec.value), min=int(spec.min), max=int(spec.max), step=int(spec.step or 1),
                        **slider)
        return w, w
    w = W.FloatSlider(value=float(spec.value), min=float(spec.min), max=float(spec.max), step=float(spec.step),
                      readout=False, **slider)
    readout = W.Label(value=format_value(spec, w.value))
    w.observe(lambda change: setattr(readout, "value", format_value(spec, change["new"])), names="value")
    return w, W.HBox([w, readout])
