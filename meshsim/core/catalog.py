"""A Consul-like service catalog: the state machine that Raft replicates.

Pure and deterministic (no SimPy, no clock): every server applies the same
committed commands in log order with :meth:`Catalog.apply` and ends in the
same state.  Commands are :class:`Register`, :class:`Deregister` and
:class:`SetHealth`; each carries everything it needs (no reads of local
state), and each is idempotent, so a client may retry a write whose answer
it lost.

Every service has a *modify index*: the Raft index of the last command that
changed it (registration, deregistration, status or tags).  This is Consul's
``X-Consul-Index``: a blocking query made with ``index=N`` returns once the
service's index is greater than N (Consul API docs, "Blocking Queries").  A
command that changes nothing (re-registering an identical instance, setting
the status it already has) does not move the index, so blocking queries do
not wake for it.  An instance without health checks counts as passing, as
in Consul; registrations therefore default to ``passing``.

>>> cat = Catalog()
>>> cat.apply(3, Register("web-1", "web", "h1", "zone-a", ("v1",)))
('web',)
>>> cat.apply(4, SetHealth("web-1", CRITICAL, "probe timed out"))
('web',)
>>> cat.service_instances("web"), cat.index("web")
((), 4)
>>> [e.status for e in cat.service_instances("web", passing_only=False)]
['critical']
>>> cat.apply(5, SetHealth("web-1", CRITICAL, "probe timed out"))  # no change: index stays 4
()
>>> cat.applied_index, cat.index("web")
(5, 4)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "CRITICAL",
    "Catalog",
    "CatalogSnapshot",
    "Command",
    "Deregister",
    "PASSING",
    "Register",
    "STATUSES",
    "ServiceEntry",
    "SetHealth",
    "WARNING",
]

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
#: Consul's check statuses, best first
STATUSES = (PASSING, WARNING, CRITICAL)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown health status {status!r}; valid: {', '.join(STATUSES)}")


@dataclass(frozen=True)
class ServiceEntry:
    """One registered service instance as a query returns it (immutable).

    ``create_index``/``modify_index`` are the Raft indexes of the command that
    registered it and of the last one that changed it (Consul's CreateIndex
    and ModifyIndex)."""

    id: str
    service: str
    host: str
    zone: str
    tags: tuple[str, ...]
    status: str
    output: str = ""
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True)
class Register:
    """Register (or update) instance ``id`` of ``service`` on ``host``."""

    id: str
    service: str
    host: str
    zone: str = ""
    tags: tuple[str, ...] = ()
    status: str = PASSING
    output: str = ""

    def __post_init__(self):
        if not self.id or not self.service:
            raise ValueError("Register needs a non-empty id and service")
        _check_status(self.status)
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class Deregister:
    """Remove instance ``id`` (a no-op if it is not registered)."""

    id: str


@dataclass(frozen=True)
class SetHealth:
    """Set the status (and check output) of instance ``id`` (a no-op if unknown)."""

    id: str
    status: str
    output: str = ""

    def __post_init__(self):
        _check_status(self.status)


Command = Union[Register, Deregister, SetHealth]


#: answers kept per service and filter: one per recent service index
ANSWERS_KEPT = 4


@dataclass(frozen=True)
class CatalogSnapshot:
    """A catalog at Raft index ``applied``: per service, its modify index and its instances (immutable
    entries, shared with the catalog it came from: taking one copies references, not entries)."""

    applied: int
    services: tuple[tuple[str, int, tuple[tuple[str, ServiceEntry], ...]], ...]

    @property
    def instances(self) -> int:
        """How many instances it holds (a size for the snapshot's transfer)."""
        return sum(len(items) for _n, _i, items in self.services)


@dataclass
class _Service:
    index: int = 0
    instances: dict[str, ServiceEntry] = field(default_factory=dict)
    order: list[str] | None = None  # the instance ids sorted; None after one came or went


class Catalog:
    """The replicated catalog (see module doc).  Apply committed commands in index order."""

    def __init__(self, answers: dict | None = None) -> None:
        """``answers``: a query cache to share with the other catalogs of one Raft log (see :meth:`service_instances`)."""
        self._services: dict[str, _Service] = {}
        self._where: dict[str, str] = {}  # instance id -> service
        self._applied = 0
        #: (service, passing_only) -> {service index: answer}, the last few indexes
        self._answers: dict[tuple[str, bool], dict[int, tuple[ServiceEntry, ...]]] = {} if answers is None else answers

    # ------------------------------------------------------------ writes
    @property
    def applied_index(self) -> int:
        """Raft index of the last entry applied (commands and other entries alike)."""
        return self._applied

    def advance(self, index: int) -> None:
        """Record that log entry ``index`` (not a catalog command, e.g. a no-op) was applied."""
        self._check_index(index)
        self._applied = index

    def apply(self, index: int, command: Command | None) -> tuple[str, ...]:
        """Apply ``command`` committed at Raft ``index``; the services whose index moved.

        ``command`` None is an entry without catalog effect (see :meth:`advance`).
        Indexes must increase strictly, as in a Raft log.
        """
        self._check_index(index)
        self._applied = index
        if command is None:
            return ()
        if isinstance(command, Register):
            return self._register(index, command)
        if isinstance(command, Deregister):
            return self._deregister(index, command.id)
        if isinstance(command, SetHealth):
            return self._set_health(index, command)
        raise TypeError(f"not a catalog command: {command!r}")

    def _check_index(self, index: int) -> None:
        if index <= self._applied:
            raise ValueError(f"index {index} applied out of order (already at {self._applied})")

    def _register(self, index: int, c: Register) -> tuple[str, ...]:
        changed: list[str] = []
        old_service = self._where.get(c.id)
        old = None
        if old_service is not None:
            old = self._services[old_service].instances[c.id]
            if old_service != c.service:  # the id moved to another service
                changed.extend(self._deregister(index, c.id))
                old = None
        if old is not None and (old.host, old.zone, old.tags, old.status, old.output) == (
                c.host, c.zone, c.tags, c.status, c.output):
            return tuple(changed)
        svc = self._services.setdefault(c.service, _Service())
        if c.id not in svc.instances:
            svc.order = None
        svc.instances[c.id] = ServiceEntry(c.id, c.service, c.host, c.zone, c.tags, c.status, c.output,
                                           old.create_index if old is not None else index, index)
        svc.index = index
        self._where[c.id] = c.service
        changed.append(c.service)
        return tuple(changed)

    def _deregister(self, index: int, iid: str) -> tuple[str, ...]:
        service = self._where.pop(iid, None)
        if service is None:
            return ()
        svc = self._services[service]
        del svc.instances[iid]
        svc.order = None
        svc.index = index  # kept when the last instance goes: blocking queries see the removal
        return (service,)

    def _set_health(self, index: int, c: SetHealth) -> tuple[str, ...]:
        service = self._where.get(c.id)
        if service is None:
            return ()
        svc = self._services[service]
        old = svc.instances[c.id]
        if (old.status, old.output) == (c.status, c.output):
            return ()
        svc.instances[c.id] = ServiceEntry(old.id, old.service, old.host, old.zone, old.tags, c.status, c.output,
                                           old.create_index, index)
        svc.index = index
        return (service,)

    # ------------------------------------------------------------ queries
    def service_instances(self, service: str, passing_only: bool = True) -> tuple[ServiceEntry, ...]:
        """Instances of ``service`` sorted by id; only passing ones unless ``passing_only`` is False
        (Consul's ``/v1/health/service/<name>?passing``)."""
        svc = self._services.get(service)
        if svc is None:
            return ()
        # Every change of a service moves its index, so an answer stays valid while the index does; and
        # catalogs that apply the same committed log hold the same service at the same index, so they may
        # share answers (servers lag a little: the last few indexes are kept).
        by_index = self._answers.get((service, passing_only))
        if by_index is None:
            by_index = self._answers[(service, passing_only)] = {}
        else:
            hit = by_index.get(svc.index)
            if hit is not None:
                return hit
        order = svc.order
        if order is None:
            order = svc.order = sorted(svc.instances)
        entries = map(svc.instances.__getitem__, order)
        out = tuple([e for e in entries if e.status == PASSING]) if passing_only else tuple(entries)
        by_index[svc.index] = out
        if len(by_index) > ANSWERS_KEPT:
            del by_index[next(iter(by_index))]  # the oldest inserted
        return out

    def index(self, service: str) -> int:
        """The service's modify index (0 if it was never registered)."""
        svc = self._services.get(service)
        return svc.index if svc is not None else 0

    def services(self) -> tuple[str, ...]:
        """Names of services that have at least one instance, sorted."""
        return tuple(sorted(s for s, v in self._services.items() if v.instances))

    def instance(self, instance_id: str) -> ServiceEntry | None:
        """The entry of one instance, or None."""
        service = self._where.get(instance_id)
        return self._services[service].instances[instance_id] if service is not None else None

    def __len__(self) -> int:
        return len(self._where)

    # ------------------------------------------------------------ comparison
    def state(self) -> tuple[Any, ...]:
        """A canonical, hashable view of the whole state (applied index, per-service index and entries)."""
        return (self._applied, tuple((name, svc.index, tuple(svc.instances[i] for i in sorted(svc.instances)))
                                     for name, svc in sorted(self._services.items())))

    def snapshot(self) -> CatalogSnapshot:
        """The catalog as an immutable value (what a Raft snapshot carries; see :meth:`restore`).

        >>> cat = Catalog()
        >>> _ = cat.apply(7, Register("web-1", "web", "h1"))
        >>> snap = cat.snapshot()
        >>> _ = cat.apply(8, Deregister("web-1"))          # later changes do not reach the snapshot
        >>> back = Catalog.restore(snap)
        >>> back.applied_index, [e.id for e in back.service_instances("web")], back.index("web")
        (7, ['web-1'], 7)
        """
        return CatalogSnapshot(self._applied, tuple((name, s.index, tuple(s.instances.items()))
                                                    for name, s in self._services.items()))

    @classmethod
    def restore(cls, snap: CatalogSnapshot, answers: dict | None = None) -> Catalog:
        """A catalog in the state of ``snap`` (``answers``: the shared query cache, as in the constructor)."""
        cat = cls(answers)
        cat._applied = snap.applied
        for name, index, items in snap.services:
            cat._services[name] = _Service(index=index, instances=dict(items))
            for iid, _entry in items:
                cat._where[iid] = name
        return cat

    def digest(self) -> str:
        """A short hex digest of :meth:`state`; equal catalogs have equal digests.

        >>> a, b = Catalog(), Catalog()
        >>> for cat in (a, b):
        ...     _ = cat.apply(1, Register("x", "svc", "h"))
        >>> a.digest() == b.digest(), a == b
        (True, True)
        """
        return hashlib.sha1(repr(self.state()).encode("utf-8")).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalog):
            return NotImplemented
        return self.state() == other.state()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"Catalog(applied={self._applied}, services={len(self.services())}, instances={len(self)})"
