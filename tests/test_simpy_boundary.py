"""The kernel is the only SimPy boundary: no other module of the package touches SimPy's private state.

SimPy's private attributes (``env._now``, ``env._queue``, ``env._eid``, an
event's ``_ok`` or ``_value``, a process's ``_generator``...) are read from
SimPy itself, so the list follows the installed version.  A module *touches*
one when it reads or writes such an attribute on anything but its own
``self`` (``self._queue`` in a balancer is the balancer's), or on ``self``
in a class derived from a SimPy class.  The environment's names (``_now``,
``_queue``, ``_eid``, ``_active_proc``) count on any other object; the
generic ones of events and resources (``_count``, ``_value``...) only when no
class of the package has an attribute of that name (``other._count`` in
``stats.py`` is a histogram's).  Only ``meshsim/sim/kernel.py`` may touch
them, and the modules in :data:`PENDING` until the Route refactor converts them.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import simpy
import simpy.core
import simpy.events
import simpy.resources.base

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "meshsim"

#: the one module allowed to touch SimPy's internals
KERNEL = "meshsim/sim/kernel.py"

#: modules waiting to be converted onto the Kernel's methods (none left: the engine went last)
PENDING: set[str] = set()


def simpy_private_names() -> frozenset[str]:
    """Single-underscore attribute names SimPy's environment, events and resources use, from SimPy itself."""
    env = simpy.Environment()

    def gen():
        yield env.timeout(1)

    res = simpy.Resource(env)
    objs = [env, env.event(), env.timeout(1), env.process(gen()), env.all_of([env.event()]), res, res.request(),
            simpy.Store(env), simpy.Container(env)]
    names = {k for o in objs for k in vars(o)}
    classes = [simpy.core.Environment, simpy.events.Event, simpy.events.Process, simpy.events.Condition,
               simpy.resources.base.BaseResource]
    names |= {k for c in classes for k in dir(c)}
    names.add("_defused")  # set on a failed event when a callback handles it
    return frozenset(k for k in names if k.startswith("_") and not k.startswith("__"))


SIMPY_PRIVATE = simpy_private_names()

#: the environment's own private state: touching it on another object is always SimPy's
ENV_PRIVATE = frozenset(k for k in vars(simpy.Environment()) if k.startswith("_"))


def _simpy_bases(tree: ast.Module) -> set[str]:
    """Names bound to SimPy classes or the module by this module's imports (``simpy``, ``Environment``...)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "simpy"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "simpy":
            bound |= {a.asname or a.name for a in node.names}
    return bound


def _is_simpy_class(cls: ast.ClassDef, simpy_names: set[str]) -> bool:
    for base in cls.bases:
        root = base
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in simpy_names:
            return True
    return False


def _walk(tree: ast.Module):
    """Every node with whether it is inside a class of the package's own (not derived from SimPy)."""
    simpy_names = _simpy_bases(tree)
    stack = [(tree, False)]
    while stack:
        node, own = stack.pop()
        yield node, own
        if isinstance(node, ast.ClassDef):
            own = not _is_simpy_class(node, simpy_names)
        stack.extend((child, own) for child in ast.iter_child_nodes(node))


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _tree(source: str | ast.Module) -> ast.Module:
    return source if isinstance(source, ast.Module) else ast.parse(source)


def own_attribute_names(source: str | ast.Module) -> set[str]:
    """Attribute names the classes of ``source`` give their instances (``self.x = ...``, ``__slots__``)."""
    names = set()
    for node, own in _walk(_tree(source)):
        if not own:
            continue
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
            names.add(node.attr)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                  for t in node.targets):
            names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                      and isinstance(c.value, str)}
    return names


def simpy_touches(source: str | ast.Module, own_names: frozenset[str] | set[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, expression) of each access to a SimPy private attribute in ``source`` (see module doc).

    ``own_names``: attribute names the package's own classes use (a generic
    SimPy name among them is not counted on another object).

    >>> simpy_touches("class A:\\n    def f(self):\\n        self._queue.append(self.env._now)\\n")
    [(3, 'self.env._now')]
    """
    hits = []
    for node, own in _walk(_tree(source)):
        if (isinstance(node, ast.Attribute) and node.attr in SIMPY_PRIVATE
                and not (own and _is_self(node.value))  # an own class's own attribute
                and (node.attr in ENV_PRIVATE or node.attr not in own_names)):
            hits.append((node.lineno, ast.unparse(node)))
    return sorted(hits)


@functools.cache
def offenders() -> dict[str, list[tuple[int, str]]]:
    """Package modules other than the kernel that touch SimPy's internals, with where."""
    trees = {p.relative_to(ROOT).as_posix(): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}
    trees.pop(KERNEL)  # its Carrier's _ok/_value are SimPy's protocol, not a package name
    own = set().union(*(own_attribute_names(t) for t in trees.values()))
    out = {}
    for rel, tree in trees.items():
        hits = simpy_touches(tree, own)
        if hits:
            out[rel] = hits
    return out


def test_the_private_names_come_from_simpy():
    # the names the kernel relies on are among them, and none is a dunder
    assert {"_now", "_queue", "_eid", "_ok", "_value", "_generator", "_defused"} <= SIMPY_PRIVATE
    assert not any(n.startswith("__") for n in SIMPY_PRIVATE)


@pytest.mark.parametrize("src, expected", [
    ("now = self.env._now\n", [(1, "self.env._now")]),
    ("heappush(env._queue, (t, 1, next(env._eid), ev))\n", [(1, "env._eid"), (1, "env._queue")]),
    ("class A:\n    def f(self):\n        return self._env._now\n", [(3, "self._env._now")]),
    ("t = sim.kernel.env._now\n", [(1, "sim.kernel.env._now")]),
    ("ok = event._ok and not hasattr(event, 'x')\n", [(1, "event._ok")]),
    ("g = proc._generator\n", [(1, "proc._generator")]),
    # a SimPy subclass's own underscores are SimPy's
    ("import simpy\nclass E(simpy.Environment):\n    def f(self):\n        return self._now\n",
     [(4, "self._now")]),
    ("from simpy import Environment as E\nclass F(E):\n    def f(self):\n        self._queue.clear()\n",
     [(4, "self._queue")]),
])
def test_the_grep_catches_planted_violations(src, expected):
    assert simpy_touches(src) == expected


@pytest.mark.parametrize("src", [
    # a class's own attributes that happen to share SimPy's names (balancers, the Raft shell, the classroom)
    "class B:\n    def __init__(self):\n        self._queue = []\n        self._now = 0.0\n"
    "    def f(self):\n        self._queue.append(self._now)\n",
    "class C:\n    def f(self):\n        self._events.append(1)\n        return self._value\n",
    # public SimPy API
    "t = env.now\nenv.schedule(ev, 1, 2.0)\nenv.timeout(3)\n",
    # other underscores
    "x = obj._private_thing\ny = self.kernel.clock()\n",
])
def test_the_grep_has_no_false_positives(src):
    assert simpy_touches(src) == []


def test_generic_names_of_the_package_are_its_own_but_the_environment_s_never_are():
    src = "def merge(h, other):\n    h._count += other._count\n    return other._queue\n"
    # _count is also a SimPy condition's; in a package where a class has a _count it is that class's
    assert simpy_touches(src, {"_count", "_queue"}) == [(3, "other._queue")]
    assert simpy_touches(src) == [(2, "h._count"), (2, "other._count"), (3, "other._queue")]
    assert {"_now", "_queue", "_eid"} <= ENV_PRIVATE
    own = own_attribute_names("class H:\n    __slots__ = ('_count', 'n')\n    def f(self):\n        self._total = 1\n")
    assert own == {"_count", "n", "_total"}


def test_no_module_outside_the_kernel_touches_simpy_internals():
    found = offenders()
    stray = {m: hits for m, hits in found.items() if m not in PENDING}
    assert stray == {}, f"only {KERNEL} may touch SimPy's private state; use Kernel.now/clock/push/push_at: {stray}"


def test_pending_modules_still_need_converting():
    # once a PENDING module is converted it must leave the set, so the set cannot go stale
    found = offenders()
    done = sorted(m for m in PENDING if m not in found)
    assert done == [], f"{done} no longer touch SimPy's internals: remove them from PENDING"
    assert all((ROOT / m).exists() for m in PENDING)


def test_the_kernel_itself_is_scanned_by_the_same_rule():
    # the rule sees the kernel's reads, so it would catch them anywhere else
    hits = {expr for _, expr in simpy_touches((ROOT / KERNEL).read_text())}
    assert {"self.env._queue", "self.env._eid", "self.env._now"} <= hits
