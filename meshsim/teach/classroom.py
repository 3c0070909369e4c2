"""An interactive Raft cluster for the classroom: the real pure core, one message at a time.

:class:`RaftClassroom` wraps the deterministic harness (:class:`~meshsim.teach.harness.Cluster`) around
:class:`meshsim.core.raft.RaftNode` — no SimPy, no hidden network.  Every message a server sends waits in
flight, with an id, until you deliver or drop it; time moves only when you say so; every action can be
undone; and after every action the Raft safety properties are checked (:mod:`meshsim.teach.safety`).
A violation is recorded in :attr:`RaftClassroom.violations` and shown in red by the widget, never hidden.

Actions (each one is a method, recorded in :attr:`~RaftClassroom.history`, and undone by
:meth:`~RaftClassroom.rewind`): ``deliver``, ``drop``, ``deliver_all``, ``advance`` (timers fire, no
message moves), ``run`` (a network with ``latency_ms`` delivers messages while timers fire), ``timeout``,
``crash``, ``restart``, ``partition``, ``heal``, ``request``.  Views: ``state()``, ``messages()``,
``log_table()``, ``committed_indices()``, ``leader()``, ``svg()``, ``widget()``.

An election, by hand:

>>> c = RaftClassroom(seed=0)
>>> c.timeout("s1")                         # s1's election timer fires: term 1, asks everyone for a vote
>>> print(c.messages()[["id", "src", "dst", "type", "term"]].head(2).to_string(index=False))
 id src dst        type  term
  1  s1  s2 RequestVote     1
  2  s1  s3 RequestVote     1
>>> c.deliver(dst="s2"); c.deliver(src="s2")  # s2 votes for s1; its vote reaches s1
1
1
>>> c.leader() is None                      # two votes of five: not yet
True
>>> c.deliver_all()                         # the other votes, then s1's first AppendEntries and the replies
22
>>> c.leader(), c.term("s3"), c.node("s3").voted_for
('s1', 1, 's1')
>>> c.committed_indices(), c.violations
([1], [])
>>> c.rewind(); c.leader() is None          # undo the last action
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import pandas as pd

from ..core.raft import (
    LEADER,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Message,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
)
from .harness import Cluster
from .safety import SafetyMonitor, Violation

__all__ = ["CLASSROOM_CONFIG", "MessageView", "RaftClassroom", "cluster", "describe_message"]

#: The Raft paper's basic algorithm (no Pre-Vote, no check-quorum) with its 150-300 ms election timeouts,
#: a heartbeat every 50 ms, and one entry per AppendEntries so that every entry is a message you can see.
CLASSROOM_CONFIG = RaftConfig.profile("paper", heartbeat_interval_ms=50.0, max_entries_per_append=1)

#: append-only lists of the harness: a snapshot keeps their lengths instead of copies
_APPEND_ONLY = ("history", "commits", "trace", "rejections")

Which = Union[int, Iterable[int], Callable[["MessageView"], bool], None]


@dataclass(frozen=True)
class MessageView:
    """A message in flight as a student sees it (what a ``deliver``/``drop`` predicate receives)."""

    id: int
    src: Any
    dst: Any
    type: str
    term: int
    detail: str
    sent_ms: float
    #: False when the destination is down or a partition separates it from the sender (delivery drops it)
    deliverable: bool
    msg: Message


def describe_message(msg: Message) -> str:
    """A short description of a Raft message's contents.

    >>> describe_message(RequestVote(3, "s2", 5, 2))
    'last entry #5 (term 2)'
    >>> describe_message(AppendEntries(3, "s1", 4, 2, (Entry(5, 3),), 4))
    'after #4 (term 2): [#5 t3], commit 4'
    """
    if isinstance(msg, RequestVote):
        pre = "pre-vote; " if msg.pre_vote else ""
        return f"{pre}last entry #{msg.last_index} (term {msg.last_term})"
    if isinstance(msg, RequestVoteResponse):
        pre = "pre-vote " if msg.pre_vote else ""
        return f"{pre}{'granted' if msg.granted else 'refused'}"
    if isinstance(msg, AppendEntries):
        ents = ", ".join(f"#{e.index} t{e.term}" for e in msg.entries)
        body = f"[{ents}]" if msg.entries else "heartbeat"
        return f"after #{msg.prev_index} (term {msg.prev_term}): {body}, commit {msg.commit}"
    if isinstance(msg, AppendEntriesResponse):
        if msg.success:
            return f"ok, matches up to #{msg.match_index}"
        return f"rejected #{msg.reject_index} (has up to #{msg.last_index})"
    return repr(msg)


@dataclass
class _Saved:
    state: tuple
    lengths: dict
    n_violations: int
    n_actions: int
    n_events: int


class RaftClassroom:
    """A Raft cluster driven by hand: ``servers`` run the real core with ``config`` (default
    :data:`CLASSROOM_CONFIG`); ``seed`` fixes every election timeout, so the same actions always give the
    same cluster.  ``latency_ms`` is used only by :meth:`run`.  ``node_classes`` maps a server to a
    :class:`~meshsim.core.raft.RaftNode` subclass to run there instead (a deliberately broken node, to see a
    violation reported).  At most ``max_undo`` actions can be rewound.
    """

    def __init__(self, servers: Sequence[Any] = ("s1", "s2", "s3", "s4", "s5"), seed: int = 0,
                 config: RaftConfig | None = None, latency_ms: float = 10.0,
                 node_classes: dict[Any, type[RaftNode]] | None = None, max_undo: int = 2000):
        servers = tuple(servers)
        if len(servers) < 1 or len(set(servers)) != len(servers):
            raise ValueError(f"servers must be distinct and at least one, got {servers!r}")
        self.servers: tuple = servers
        self.seed = seed
        self.config = config or CLASSROOM_CONFIG
        self.max_undo = int(max_undo)
        self._core = Cluster(ids=servers, config=self.config, seed=seed, latency_ms=latency_ms,
                             node_classes=dict(node_classes or {}))
        self._monitor = SafetyMonitor()
        self._last_role: dict = {}
        self._groups: tuple | None = None
        #: every safety violation seen so far (a rewind removes those of the undone actions)
        self.violations: list[Violation] = []
        self._events: list[dict] = []
        self._actions: list[str] = []
        self._undo: list[_Saved] = []
        self._core.start()
        self._after("start")

    # ------------------------------------------------------------------ views
    @property
    def now_ms(self) -> float:
        """The cluster's clock (ms)."""
        return self._core.now

    @property
    def history(self) -> list[str]:
        """The actions so far, as calls (``"timeout('s1')"``, ``"deliver(3)"``, ...)."""
        return list(self._actions)

    @property
    def rewindable(self) -> int:
        """How many actions :meth:`rewind` can still undo."""
        return len(self._undo)

    @property
    def majority(self) -> int:
        return len(self.servers) // 2 + 1

    def node(self, server: Any) -> RaftNode | None:
        """The live :class:`~meshsim.core.raft.RaftNode` of ``server`` (None when crashed); read, don't call."""
        self._check_server(server)
        return self._core.nodes.get(server)

    def is_up(self, server: Any) -> bool:
        return self.node(server) is not None

    def leader(self) -> Any:
        """The leader of the highest term among the running servers, or None."""
        return self._core.leader()

    def leaders(self) -> list:
        """Every running server that believes it is leader (two are fine when their terms differ)."""
        return self._core.leaders()

    def term(self, server: Any) -> int:
        node = self.node(server)
        return node.term if node is not None else self._core.disk[server].term

    def log(self, server: Any) -> list[Entry]:
        """``server``'s log (its persisted log when it is crashed)."""
        node = self.node(server)
        return node.log if node is not None else list(self._core.disk[server].log)

    def committed_indices(self) -> list[int]:
        """Indices some server has applied (committed entries are never lost, so this only grows)."""
        return sorted(self._monitor.committed)

    def committed_entry(self, index: int) -> Entry | None:
        """The entry applied at ``index`` (None if no server has applied that index yet)."""
        return self._monitor.committed.get(index)

    def in_flight(self) -> list[MessageView]:
        """The messages in flight, oldest first."""
        core = self._core
        out = []
        for env in core.queue:
            m = env.msg
            ok = core.nodes.get(env.dst) is not None and core.can_talk(env.src, env.dst)
            out.append(MessageView(env.seq, env.src, env.dst, type(m).__name__, m.term, describe_message(m),
                                   env.deliver_at - core.latency_ms, ok, m))
        return out

    def messages(self) -> pd.DataFrame:
        """The messages in flight, one row each: id, src, dst, type, term, detail, sent_ms, deliverable."""
        cols = ["id", "src", "dst", "type", "term", "detail", "sent_ms", "deliverable"]
        rows = [{k: getattr(v, k) for k in cols} for v in self.in_flight()]
        return pd.DataFrame(rows, columns=cols)

    def state(self) -> pd.DataFrame:
        """One row per server: role ("crashed" when down), term, voted_for, leader, log (the terms of its
        entries), last_index, commit_index, timer ("election" or "heartbeat") and its deadline_ms."""
        rows = []
        for s in self.servers:
            node = self._core.nodes.get(s)
            if node is None:
                ps = self._core.disk[s]
                rows.append({"server": s, "role": "crashed", "term": ps.term, "voted_for": ps.voted_for,
                             "leader": None, "log": _terms(ps.log), "last_index": len(ps.log),
                             "commit_index": pd.NA, "timer": "", "deadline_ms": math.nan})
                continue
            dl = self._core._deadline.get(s)
            rows.append({"server": s, "role": node.role, "term": node.term, "voted_for": node.voted_for,
                         "leader": node.leader_id, "log": _terms(node.log), "last_index": node.last_index,
                         "commit_index": node.commit_index,
                         "timer": "heartbeat" if node.role == LEADER else "election",
                         "deadline_ms": math.nan if dl is None else float(dl)})
        df = pd.DataFrame(rows).astype({"commit_index": "Int64"})
        for col in ("voted_for", "leader"):  # keep None (not NaN) for "nobody"
            df[col] = df[col].astype(object).where(df[col].notna(), None)
        return df

    def log_table(self, marks: bool = True) -> pd.DataFrame:
        """Servers by log index: the term of each entry.  With ``marks`` (default) the cells are strings and
        an entry the server knows committed ends in ``*``; without, nullable integer terms."""
        width = max((len(self.log(s)) for s in self.servers), default=0)
        data = {}
        for s in self.servers:
            log = self.log(s)
            node = self._core.nodes.get(s)
            commit = node.commit_index if node is not None else 0
            if marks:
                data[s] = [("" if i >= len(log) else f"{log[i].term}{'*' if i < commit else ''}")
                           for i in range(width)]
            else:
                data[s] = [(log[i].term if i < len(log) else pd.NA) for i in range(width)]
        df = pd.DataFrame.from_dict(data, orient="index", columns=list(range(1, width + 1)))
        return df if marks else df.astype("Int64")

    def events(self) -> pd.DataFrame:
        """What happened, in order: role and term changes, commits, refused requests (time_ms, server, event)."""
        return pd.DataFrame(self._events, columns=["time_ms", "server", "event"])

    def groups(self) -> tuple | None:
        """The current partition (a tuple of frozensets), or None when the network is whole."""
        return self._groups

    def svg(self, width: int = 720) -> str:
        """The cluster drawn as SVG (servers in a ring, messages in flight, logs): :func:`meshsim.teach.svg.draw`."""
        from .svg import draw

        return draw(self, width=width)

    def _repr_svg_(self) -> str:
        return self.svg()

    def widget(self):
        """An ipywidgets control panel for this cluster (:class:`meshsim.teach.widget.ClassroomWidget`)."""
        from .widget import ClassroomWidget

        return ClassroomWidget(self)

    def __repr__(self) -> str:
        lead = self.leader()
        return (f"RaftClassroom({len(self.servers)} servers, t={self.now_ms:g} ms, leader={lead!r}, "
                f"{len(self._core.queue)} messages in flight, {len(self.violations)} violations)")

    # ------------------------------------------------------------------ actions
    def deliver(self, which: Which = None, *, src: Any = None, dst: Any = None, type: str | None = None) -> int:
        """Deliver messages in flight now, oldest first: one id, a list of ids, or every message matching a
        predicate on :class:`MessageView` and/or ``src``/``dst``/``type``.  Replies they cause stay in
        flight.  Returns how many arrived (one to a crashed or cut-off server is lost)."""
        picked = self._select(which, src, dst, type)
        return self._act(f"deliver({_fmt_sel(which, src, dst, type)})", lambda: self._deliver_ids(picked))

    def drop(self, which: Which = None, *, src: Any = None, dst: Any = None, type: str | None = None) -> int:
        """Lose messages in flight (same selection as :meth:`deliver`); returns how many."""
        picked = set(self._select(which, src, dst, type))

        def go() -> int:
            core = self._core
            before = len(core.queue)
            core.queue = [e for e in core.queue if e.seq not in picked]
            core.dropped += before - len(core.queue)
            return before - len(core.queue)

        return self._act(f"drop({_fmt_sel(which, src, dst, type)})", go)

    def deliver_all(self, limit: int = 10_000) -> int:
        """Deliver every message in flight, oldest first, and the replies they cause, until none is left
        (timers do not fire).  Returns how many were delivered."""
        def go() -> int:
            core = self._core
            count = 0
            while core.queue:
                if count >= limit:
                    raise Livelock(f"more than {limit} messages delivered and still more in flight")
                core.deliver(0)
                count += 1
            return count

        return self._act("deliver_all()", go)

    def advance(self, ms: float) -> None:
        """Move the clock ``ms`` forward; timers fire on time (elections, heartbeats), no message moves."""
        ms = _positive(ms)
        self._act(f"advance({ms:g})", lambda: self._core.advance(ms))

    def run(self, ms: float) -> None:
        """Move the clock ``ms`` forward with a working network: every message arrives ``latency_ms`` after it
        was sent (at once if it is already late), timers fire on time, partitions still drop messages."""
        ms = _positive(ms)
        self._act(f"run({ms:g})", lambda: self._core.run(ms))

    def run_until_leader(self, limit_ms: float = 10_000.0) -> Any:
        """:meth:`run` until a leader is known to every running server (at most ``limit_ms``); the leader or None."""
        limit_ms = _positive(limit_ms)

        def agreed() -> bool:
            lead = self._core.leader()
            return lead is not None and all(self._core.nodes[s].leader_id == lead for s in self._core.up()
                                            if self._core.can_talk(s, lead))

        self._act(f"run_until_leader({limit_ms:g})", lambda: self._core.run_until(agreed, limit_ms, strict=False))
        return self.leader() if agreed() else None

    def timeout(self, server: Any) -> None:
        """Fire ``server``'s election timer now: it starts an election in the next term."""
        node = self._live(server)
        if node.role == LEADER:
            raise ValueError(f"{server} is the leader: a leader has no election timer (it sends heartbeats)")

        def go() -> None:
            self._event(server, "election timer fired")
            self._core._handle(server, "timeout", node.fire_election_timer(self._core.now))

        self._act(f"timeout({server!r})", go)

    def crash(self, server: Any) -> None:
        """Stop ``server``: it loses its volatile state (role, commit index, timers); its disk survives.
        Messages it already sent stay in flight; messages to it are lost."""
        self._live(server)

        def go() -> None:
            self._core.crash(server)
            self._event(server, "crashed")

        self._act(f"crash({server!r})", go)

    def restart(self, server: Any) -> None:
        """Start ``server`` again from what it persisted (term, vote, log), as a follower with a new timer."""
        self._check_server(server)
        if self._core.nodes.get(server) is not None:
            raise ValueError(f"{server} is running; crash it first")
        def go() -> None:
            self._event(server, "restarts from its disk")
            self._core.restart(server)

        self._act(f"restart({server!r})", go)

    def partition(self, *groups: Iterable[Any]) -> None:
        """Cut the network: only servers in the same group can talk; a server in no group is alone.
        Messages already in flight across the cut are lost when delivered."""
        gs = tuple(frozenset(g) for g in groups)
        for g in gs:
            for s in g:
                self._check_server(s)
        seen: set = set()
        for g in gs:
            if seen & g:
                raise ValueError(f"server(s) {sorted(seen & g)} are in two groups")
            seen |= g
        desc = ", ".join("{" + ", ".join(repr(s) for s in self.servers if s in g) + "}" for g in gs)

        def go() -> None:
            self._core.partition(*[sorted(g, key=self.servers.index) for g in gs])
            self._groups = gs
            self._event(None, f"network partitioned: {desc}")

        self._act(f"partition({desc})", go)

    def heal(self) -> None:
        """Join the network again (messages lost to the partition stay lost)."""
        def go() -> None:
            self._core.heal()
            self._groups = None
            self._event(None, "network healed")

        self._act("heal()", go)

    def request(self, data: Any, to: Any = None) -> Entry | None:
        """A client command ``data`` sent to ``to`` (default: the leader).  Returns the entry the leader
        appended, or None when there is no leader or ``to`` refused (see :meth:`events`)."""
        if to is not None:
            self._live(to)

        def go() -> Entry | None:
            target = self._core.leader() if to is None else to
            if target is None:
                self._event(None, f"request {data!r} refused: no leader")
                return None
            ready = self._core.propose(target, data)
            if ready.rejected:
                self._event(target, f"request {data!r} refused: {ready.rejected} (leader hint {ready.leader_hint})")
                return None
            self._event(target, f"appends #{ready.entry.index} {data!r} (term {ready.entry.term})")
            return ready.entry

        return self._act(f"request({data!r}{'' if to is None else f', to={to!r}'})", go)

    def rewind(self, n: int = 1) -> None:
        """Undo the last ``n`` actions: the whole cluster (servers, messages, clock, timers, violations) is
        exactly as it was before them."""
        if n < 1:
            return
        if n > len(self._undo):
            raise ValueError(f"only {len(self._undo)} action(s) can be rewound")
        saved = self._undo[-n]
        del self._undo[-n:]
        self._restore(saved)

    step_back = rewind

    # ------------------------------------------------------------------ machinery
    def _check_server(self, server: Any) -> None:
        if server not in self.servers:
            raise ValueError(f"unknown server {server!r}; servers are {', '.join(map(str, self.servers))}")

    def _live(self, server: Any) -> RaftNode:
        self._check_server(server)
        node = self._core.nodes.get(server)
        if node is None:
            raise ValueError(f"{server} is crashed; restart it first")
        return node

    def _select(self, which: Which, src: Any, dst: Any, type_: str | None) -> list[int]:
        views = self.in_flight()
        if isinstance(which, int):
            if not any(v.id == which for v in views):
                ids = ", ".join(str(v.id) for v in views) or "none"
                raise ValueError(f"no message {which} in flight (in flight: {ids})")
            cands = [v for v in views if v.id == which]
        elif callable(which):
            cands = [v for v in views if which(v)]
        elif which is None:
            cands = views
        else:
            want = set(which)
            missing = want - {v.id for v in views}
            if missing:
                raise ValueError(f"no message(s) {sorted(missing)} in flight")
            cands = [v for v in views if v.id in want]
        if type_ is not None and type_ not in _TYPES:
            raise ValueError(f"unknown message type {type_!r}; types are {', '.join(_TYPES)}")
        return [v.id for v in cands if (src is None or v.src == src) and (dst is None or v.dst == dst)
                and (type_ is None or v.type == type_)]

    def _deliver_ids(self, ids: list[int]) -> int:
        core = self._core
        count = 0
        for mid in ids:
            for k, env in enumerate(core.queue):
                if env.seq == mid:
                    count += core.deliver(k)
                    break
        return count

    def _act(self, desc: str, fn: Callable[[], Any]) -> Any:
        saved = self._save()
        try:
            result = fn()
        except (RuntimeError, AssertionError) as exc:  # raised by a node or the harness: a broken invariant
            result = None
            self.violations.append(Violation("core invariant", f"{type(exc).__name__}: {exc}", self._core._step,
                                             action=desc))
        except BaseException:
            self._restore(saved)
            raise
        self._undo.append(saved)
        if len(self._undo) > self.max_undo:
            del self._undo[0]
        self._actions.append(desc)
        self._after(desc)
        return result

    def _after(self, desc: str) -> None:
        core = self._core
        n_hist = self._monitor._hist_pos
        n_commit = self._monitor._commit_pos
        for s in core.history[n_hist:]:
            key = (s.role, s.term)
            if self._last_role.get(s.node) != key:
                old = self._last_role.get(s.node)
                if old is None or old[0] != s.role:
                    self._event(s.node, f"{s.role} in term {s.term}", s.time)
                else:
                    self._event(s.node, f"term {old[1]} -> {s.term}", s.time)
                self._last_role[s.node] = key
        seen_commit: set = set()
        for c in core.commits[n_commit:]:
            if c.entry.index not in self._monitor.committed and c.entry.index not in seen_commit:
                seen_commit.add(c.entry.index)
                self._event(c.node, f"commits #{c.entry.index} (term {c.entry.term})", core.now)
        for v in self._monitor.observe(core.history, core.commits):
            self.violations.append(Violation(v.property, v.detail, v.step, v.server, v.term, desc))
        for nid in [n for n in self.servers if core.nodes.get(n) is None]:
            self._last_role.pop(nid, None)

    def _event(self, server: Any, text: str, time_ms: float | None = None) -> None:
        self._events.append({"time_ms": self._core.now if time_ms is None else time_ms, "server": server,
                             "event": text})

    def _save(self) -> _Saved:
        core = self._core
        lists = {n: getattr(core, n) for n in _APPEND_ONLY}
        for n in lists:
            setattr(core, n, [])
        try:
            state = copy.deepcopy((core, self._monitor, self._last_role, self._groups))
        finally:
            for n, v in lists.items():
                setattr(core, n, v)
        return _Saved(state, {n: len(v) for n, v in lists.items()}, len(self.violations), len(self._actions),
                      len(self._events))

    def _restore(self, saved: _Saved) -> None:
        core, monitor, last_role, groups = saved.state
        for n, length in saved.lengths.items():
            setattr(core, n, getattr(self._core, n)[:length])
        self._core, self._monitor, self._last_role, self._groups = core, monitor, last_role, groups
        del self.violations[saved.n_violations:]
        del self._actions[saved.n_actions:]
        del self._events[saved.n_events:]


class Livelock(Exception):
    """``deliver_all`` went on past its limit (the cluster was left as it was before the call)."""


_TYPES = ("RequestVote", "RequestVoteResponse", "AppendEntries", "AppendEntriesResponse")


def _terms(log: Sequence[Entry]) -> str:
    return " ".join(str(e.term) for e in log)


def _positive(ms: float) -> float:
    ms = float(ms)
    if not ms > 0 or math.isinf(ms):
        raise ValueError(f"time must be a positive number of ms, got {ms}")
    return ms


def _fmt_sel(which: Which, src: Any, dst: Any, type_: str | None) -> str:
    parts = []
    if isinstance(which, int):
        parts.append(str(which))
    elif callable(which):
        parts.append(getattr(which, "__name__", "predicate"))
    elif which is not None:
        parts.append(repr(sorted(which)))
    for k, v in (("src", src), ("dst", dst), ("type", type_)):
        if v is not None:
            parts.append(f"{k}={v!r}")
    return ", ".join(parts)


def cluster(n: int = 5, seed: int = 0, **kw: Any) -> RaftClassroom:
    """A classroom cluster of ``n`` servers named s1..sn (see :class:`RaftClassroom` for ``kw``).

    >>> c = cluster(3, seed=2)
    >>> c.servers, c.state()["role"].tolist()
    (('s1', 's2', 's3'), ['follower', 'follower', 'follower'])
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return RaftClassroom(tuple(f"s{i}" for i in range(1, n + 1)), seed=seed, **kw)
