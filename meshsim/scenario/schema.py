"""A small declarative schema language for scenario files.

A schema is a tree of nodes (:class:`Struct`, :class:`MapOf`, :class:`ListOf`,
scalars).  ``node.check(value, path, ctx)`` returns the normalised value
(durations in ms, rates per second, distributions as objects) and records every
problem in ``ctx.errors`` with its dotted path, so one pass reports all of
them.  The same tree renders the reference in docs/scenarios.md, so the docs
cannot drift from what is accepted.

>>> s = Struct("demo", {"replicas": Field(Int(min=1), default=1, doc="instances")})
>>> ctx = Context()
>>> s.check({"replicas": 0}, "services.cart", ctx)["replicas"]
0
>>> str(ctx.errors[0])
'services.cart.replicas: must be an integer >= 1, got 0'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ScenarioError, closest
from ..units import MAX_DURATION_MS, parse_duration, parse_rate

MISSING: Any = object()


@dataclass
class Context:
    """State shared while checking one scenario: collected errors, base directory."""

    errors: list[ScenarioError] = field(default_factory=list)
    base_dir: Path | None = None
    #: paths holding a bare non-zero number where a duration is expected (taken as milliseconds)
    bare_durations: list[str] = field(default_factory=list)
    #: the end of the run was set by an override (a run shortened on purpose: faults after it are allowed)
    end_overridden: bool = False

    def error(self, path: str, message: str, suggestion: str | None = None) -> None:
        self.errors.append(ScenarioError(path, message, suggestion))


def join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class Node:
    """Base of schema nodes.  ``type_name`` is shown in errors and docs."""

    type_name = "value"

    def check(self, value: Any, path: str, ctx: Context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def children(self) -> Iterator[tuple[str, Node, Field | None]]:
        return iter(())


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Int(Node):
    def __init__(self, min: int | None = None, max: int | None = None):
        self.min, self.max = min, max
        self.type_name = "integer" + (f" >= {min}" if min is not None else "")

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value) or (self.min is not None and value < self.min):
            ctx.error(path, f"must be an {self.type_name}, got {value!r}")
        elif self.max is not None and value > self.max:
            ctx.error(path, f"must be at most {self.max}, got {value!r}")
        return value


class Float(Node):
    def __init__(self, min: float | None = None, max: float | None = None, min_exclusive: bool = False):
        self.min, self.max, self.min_exclusive = min, max, min_exclusive
        parts = []
        if min is not None:
            parts.append(f"{'>' if min_exclusive else '>='} {min}")
        if max is not None:
            parts.append(f"<= {max}")
        self.type_name = "number" + (" " + " and ".join(parts) if parts else "")

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        ok = _is_num(value) and not math.isnan(value)
        if ok and self.min is not None:
            ok = value > self.min if self.min_exclusive else value >= self.min
        if ok and self.max is not None:
            ok = value <= self.max
        if not ok:
            ctx.error(path, f"must be a {self.type_name}, got {value!r}")
            return value
        return float(value)


class Bool(Node):
    type_name = "boolean"

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if not isinstance(value, bool):
            ctx.error(path, f"must be true or false, got {value!r}")
        return value


class Str(Node):
    type_name = "string"

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if not isinstance(value, str) or not value:
            ctx.error(path, f"must be a non-empty string, got {value!r}")
        return value


class Enum(Node):
    def __init__(self, *choices: str):
        self.choices = choices
        self.type_name = "one of " + ", ".join(choices)

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value not in self.choices:
            ctx.error(path, f"must be {self.type_name}, got {value!r}", closest(str(value), self.choices))
        return value


class Duration(Node):
    def __init__(self, min_exclusive: float | None = None):
        self.min_exclusive = min_exclusive
        self.type_name = "duration" + (" > 0" if min_exclusive == 0 else "")

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        try:
            ms = parse_duration(value, path)
        except ScenarioError as e:
            ctx.errors.append(e)
            return value
        if _is_num(value) and value != 0:
            ctx.bare_durations.append(path)
        if ms > MAX_DURATION_MS:
            ctx.error(path, f"is absurdly long ({value!r}): durations are at most 1e12ms (about 31.7 years)")
            return ms
        if self.min_exclusive is not None and ms <= self.min_exclusive:
            ctx.error(path, f"must be a duration > {self.min_exclusive}ms, got {value!r}")
        return ms


class Rate(Node):
    type_name = "rate (per second, or '8/s', '480/min')"

    def __init__(self, positive: bool = True):
        self.positive = positive

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        try:
            r = parse_rate(value, path)
        except ScenarioError as e:
            ctx.errors.append(e)
            return value
        if self.positive and r <= 0:
            ctx.error(path, f"must be a rate > 0, got {value!r}")
        return r


class Dist(Node):
    """A distribution spec: a number/duration (constant) or ``{dist: kind, ...}``."""

    type_name = "distribution"

    #: distribution keys that hold durations (a bare number there is milliseconds)
    DURATION_KEYS = ("value", "mean", "median", "p99", "low", "high", "scale", "sd")

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        from ..distributions import from_spec

        try:
            dist = from_spec(value, path, ctx.base_dir)
        except ScenarioError as e:
            ctx.errors.append(e)
            return None
        self._note_bare(value, path, ctx)
        return dist

    def _note_bare(self, value: Any, path: str, ctx: Context) -> None:
        if _is_num(value):
            if value != 0:
                ctx.bare_durations.append(path)
        elif isinstance(value, dict):
            for key in self.DURATION_KEYS:
                v = value.get(key)
                if _is_num(v) and v != 0:
                    ctx.bare_durations.append(join(path, key))
            comps = value.get("components")
            if isinstance(comps, list):
                for i, c in enumerate(comps):
                    if isinstance(c, dict):
                        self._note_bare(c.get("dist"), join(join(join(path, "components"), i), "dist"), ctx)


class Custom(Node):
    """A node checked by a function ``fn(value, path, ctx) -> normalised``."""

    def __init__(self, type_name: str, fn: Callable[[Any, str, Context], Any]):
        self.type_name = type_name
        self.fn = fn

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        return self.fn(value, path, ctx)


class AnyOf(Node):
    """First alternative whose ``accepts(value)`` is true checks the value."""

    def __init__(self, *alts: tuple[Callable[[Any], bool], Node], type_name: str | None = None):
        self.alts = alts
        self.type_name = type_name or " or ".join(n.type_name for _, n in alts)

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        for accepts, node in self.alts:
            if accepts(value):
                return node.check(value, path, ctx)
        ctx.error(path, f"must be {self.type_name}, got {value!r}")
        return value

    def children(self) -> Iterator[tuple[str, Node, Field | None]]:
        for _, node in self.alts:
            yield from node.children()


@dataclass
class Field:
    """A key of a :class:`Struct`: its node, default, and one line of documentation."""

    node: Node
    default: Any = MISSING
    doc: str = ""
    example: Any = MISSING

    @property
    def required(self) -> bool:
        return self.default is MISSING


class Struct(Node):
    """A mapping with a fixed set of keys; unknown keys are errors with a suggestion."""

    def __init__(
        self,
        name: str,
        fields: dict[str, Field],
        doc: str = "",
        shorthand: Callable[[Any], Any] | None = None,
        validate: Callable[[dict, str, Context], None] | None = None,
    ):
        self.name = name
        self.fields = fields
        self.doc = doc
        self.shorthand = shorthand
        self.validate = validate
        self.type_name = "mapping"

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if self.shorthand is not None and not isinstance(value, dict):
            value = self.shorthand(value)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            ctx.error(path, f"must be a mapping with keys {', '.join(self.fields)}, got {value!r}")
            return {}
        out: dict[str, Any] = {}
        n_errors = len(ctx.errors)
        for key in value:
            if key not in self.fields:
                ctx.error(join(path, str(key)), f"unknown key; valid keys are {', '.join(self.fields)}",
                          closest(str(key), self.fields))
        for key, f in self.fields.items():
            if key in value and value[key] is not None:
                out[key] = f.node.check(value[key], join(path, key), ctx)
            elif f.required:
                if key in value:
                    ctx.error(join(path, key), f"must be a {f.node.type_name}, got null")
                else:
                    ctx.error(join(path, key), "is required")
            elif isinstance(f.node, Struct) and f.default is dict:
                out[key] = f.node.check({}, join(path, key), ctx)
            else:
                out[key] = f.default() if callable(f.default) else f.default
        if self.validate is not None and n_errors == len(ctx.errors):
            self.validate(out, path, ctx)
        return out

    def children(self) -> Iterator[tuple[str, Node, Field | None]]:
        for key, f in self.fields.items():
            yield key, f.node, f


class MapOf(Node):
    """A mapping from user-chosen names (services, hosts...) to values of one node."""

    def __init__(self, value: Node, key_doc: str = "name", min_items: int = 0):
        self.value = value
        self.key_doc = key_doc
        self.min_items = min_items
        self.type_name = f"mapping of {key_doc} to {value.type_name}"

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            ctx.error(path, f"must be a mapping of {self.key_doc} to settings, got {value!r}")
            return {}
        if len(value) < self.min_items:
            ctx.error(path, f"must have at least {self.min_items} entr{'y' if self.min_items == 1 else 'ies'}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k or any(ch in k for ch in " .[]/"):
                ctx.error(join(path, str(k)), f"{self.key_doc} must be a non-empty string without spaces, dots, brackets or slashes")
                continue
            out[k] = self.value.check(v, join(path, k), ctx)
        return out

    def children(self) -> Iterator[tuple[str, Node, Field | None]]:
        yield f"<{self.key_doc}>", self.value, None


class ListOf(Node):
    def __init__(self, item: Node, min_items: int = 0, max_items: int | None = None):
        self.item = item
        self.min_items = min_items
        self.max_items = max_items
        self.type_name = f"list of {item.type_name}"

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value is None:
            value = []
        if not isinstance(value, list):
            ctx.error(path, f"must be a list, got {value!r}")
            return []
        if len(value) < self.min_items or (self.max_items is not None and len(value) > self.max_items):
            want = f"{self.min_items}" if self.max_items == self.min_items else f"at least {self.min_items}"
            ctx.error(path, f"must have {want} item(s), got {len(value)}")
        return [self.item.check(v, join(path, i), ctx) for i, v in enumerate(value)]

    def children(self) -> Iterator[tuple[str, Node, Field | None]]:
        yield "[]", self.item, None


def walk(node: Node, path: str = "") -> Iterator[tuple[str, Node, Field | None]]:
    """Every (path, node, field) below ``node``, depth first, for the docs."""
    for key, child, f in node.children():
        if key == "[]":
            p = f"{path}[]"
        else:
            p = join(path, key)
        yield p, child, f
        yield from walk(child, p)
