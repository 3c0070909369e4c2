"""A deterministic, message-by-message harness for :mod:`meshsim.core.raft`.

(It began as ``tests/raft_harness.py``; :class:`~meshsim.teach.classroom.RaftClassroom`
is built on it, and the tests import it from here.)

Like etcd's rafttest/interaction tests: a :class:`Cluster` keeps every message
in flight in one queue, and the test decides what happens next — deliver all,
one, or some messages, drop or duplicate them, cut the network into
partitions, move the clock so timers fire, crash and restart nodes from what
they persisted.  Every node call is recorded (:class:`Snapshot`), and
:func:`check_safety` checks the Raft safety properties over that history.

>>> c = Cluster(3)
>>> c.start()
>>> c.run_until(lambda: c.leader() is not None, 10_000)
>>> c.propose_at_leader("x").entry.index
2
>>> c.run(100); [n.commit_index for n in c.nodes.values()]
[2, 2, 2]
>>> check_safety(c)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from meshsim.core.raft import (
    LEADER,
    AppendEntriesResponse,
    Entry,
    Message,
    PersistentState,
    RaftConfig,
    RaftNode,
    ReadState,
    Ready,
)

#: fast, paper-like timings for scenario tests (all features on)
FAST = RaftConfig(heartbeat_interval_ms=50.0, election_timeout_min_ms=300.0, election_timeout_max_ms=600.0,
                  pre_vote=True, check_quorum=True, lease_reads=False, max_entries_per_append=64)


@dataclass
class Envelope:
    src: Any
    dst: Any
    msg: Message
    deliver_at: float
    seq: int


@dataclass(frozen=True)
class Snapshot:
    """State of one node after one call (the history is a list of these)."""

    step: int
    time: float
    node: Any
    call: str
    role: str
    term: int
    leader: Any
    commit: int
    log: tuple[Entry, ...]
    #: index of ``log[0]`` and the term of the entry before it (log compaction moves them)
    first: int = 1
    start_term: int = 0


@dataclass(frozen=True)
class Commit:
    """``node`` reported ``entry`` committed while at ``term``."""

    step: int
    node: Any
    incarnation: int
    term: int
    entry: Entry


@dataclass
class ReadRecord:
    node: Any
    request_id: Any
    step: int
    #: highest index any node had reported committed when the read was asked
    known_committed: int
    result: ReadState | None = None
    failed: bool = False


@dataclass
class Cluster:
    """n nodes with ids 1..n (or ``ids``), all voters unless ``voters`` says otherwise.

    ``latency_ms`` is only used by :meth:`run`, which delivers messages in time
    order as a reliable network would; :meth:`deliver` delivers "now".
    """

    n: int = 3
    config: RaftConfig = FAST
    seed: int = 0
    ids: tuple | None = None
    voters: tuple | None = None
    latency_ms: float = 1.0
    now: float = 0.0
    nodes: dict = field(default_factory=dict)
    disk: dict = field(default_factory=dict)
    queue: list = field(default_factory=list)
    history: list = field(default_factory=list)
    commits: list = field(default_factory=list)
    reads: dict = field(default_factory=dict)
    rejections: list = field(default_factory=list)
    #: every delivered message, in delivery order
    trace: list = field(default_factory=list)
    dropped: int = 0
    #: server id -> RaftNode subclass to run there (e.g. a deliberately broken node); default RaftNode
    node_classes: dict | None = None
    #: each node's state machine: the entries it applied, in order (restored from snapshots)
    fsm: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.ids is None:
            self.ids = tuple(range(1, self.n + 1))
        self.n = len(self.ids)
        if self.voters is None:
            self.voters = self.ids
        self._deadline: dict = {}
        self._incarnation: dict = {i: 0 for i in self.ids}
        self._next_apply: dict = {i: 1 for i in self.ids}
        self._groups: dict | None = None
        self._cut: set = set()
        self._seq = 0
        self._step = 0
        self.max_committed = 0
        for i in self.ids:
            self.disk[i] = PersistentState()
            self.fsm[i] = []
            self.nodes[i] = self._make(i)

    # ------------------------------------------------------------ nodes
    def _make(self, nid) -> RaftNode:
        k = self.ids.index(nid) if nid in self.ids else len(self.ids)
        rng = np.random.default_rng([self.seed, k, self._incarnation[nid]])
        cls = (self.node_classes or {}).get(nid, RaftNode)
        return cls(nid, self.voters, self.config, rng, persisted=self.disk[nid])

    def start(self) -> None:
        for i in self.ids:
            if self.nodes.get(i) is not None:
                self._handle(i, "start", self.nodes[i].start(self.now))

    def add_node(self, nid) -> RaftNode:
        """A fresh, empty node that knows the bootstrap voters (it is not one of them)."""
        self.ids = self.ids + (nid,)
        self._incarnation[nid] = 0
        self._next_apply[nid] = 1
        self.fsm[nid] = []
        self.disk[nid] = PersistentState()
        self.nodes[nid] = self._make(nid)
        self._handle(nid, "start", self.nodes[nid].start(self.now))
        return self.nodes[nid]

    def up(self) -> list:
        return [i for i in self.ids if self.nodes.get(i) is not None]

    def crash(self, nid) -> None:
        """Lose the node's volatile state; what it persisted survives."""
        self.nodes[nid] = None
        self._deadline.pop(nid, None)
        for r in self.reads.values():
            if r.node == nid and r.result is None:
                r.failed = True

    def restart(self, nid) -> RaftNode:
        """A new RaftNode from the persisted state (a crash first, if it is up)."""
        if self.nodes.get(nid) is not None:
            self.crash(nid)
        self._incarnation[nid] += 1
        self._next_apply[nid] = 1
        self.fsm[nid] = []  # volatile: rebuilt from the snapshot and the log
        self.nodes[nid] = self._make(nid)
        self._handle(nid, "restart", self.nodes[nid].start(self.now))
        return self.nodes[nid]

    # ------------------------------------------------------------ views
    def leaders(self) -> list:
        return [i for i in self.up() if self.nodes[i].role == LEADER]

    def leader(self):
        """The leader of the highest term, if any node is leader."""
        ls = self.leaders()
        return max(ls, key=lambda i: self.nodes[i].term) if ls else None

    def terms(self) -> dict:
        return {i: self.nodes[i].term for i in self.up()}

    # ------------------------------------------------------------ network
    def partition(self, *groups) -> None:
        """Only nodes in the same group can talk; unlisted nodes are each alone."""
        self._groups = {}
        for g, members in enumerate(groups):
            for m in members:
                self._groups[m] = g

    def isolate(self, nid) -> None:
        self.partition([i for i in self.ids if i != nid], [nid])

    def cut(self, a, b) -> None:
        """Break only the link between ``a`` and ``b`` (both still talk to everyone else)."""
        self._cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self._groups = None
        self._cut = set()

    def can_talk(self, a, b) -> bool:
        if frozenset((a, b)) in self._cut:
            return False
        if self._groups is None:
            return True
        ga, gb = self._groups.get(a), self._groups.get(b)
        return ga is not None and ga == gb

    def deliver(self, i: int = 0) -> bool:
        """Deliver the i-th message in flight now (False if it was dropped)."""
        env = self.queue.pop(i)
        node = self.nodes.get(env.dst)
        if node is None or not self.can_talk(env.src, env.dst):
            self.dropped += 1
            return False
        self.trace.append(env)
        self._handle(env.dst, type(env.msg).__name__, node.receive(env.msg, self.now))
        return True

    def rejected_appends(self, since: int = 0, leader=None, follower=None) -> int:
        """How many AppendEntries rejections were delivered (from trace position ``since``)."""
        return sum(1 for e in self.trace[since:] if isinstance(e.msg, AppendEntriesResponse) and not e.msg.success
                   and (leader is None or e.dst == leader) and (follower is None or e.src == follower))

    def deliver_all(self, limit: int = 100_000) -> int:
        """Deliver in FIFO order, including replies, until the queue is empty."""
        count = 0
        while self.queue:
            count += 1
            if count > limit:
                raise RuntimeError(f"more than {limit} messages: livelock?")
            self.deliver(0)
        return count

    def deliver_where(self, pred: Callable[[Envelope], bool]) -> int:
        """Deliver (once) every message in flight that matches ``pred``."""
        picked = [e for e in self.queue if pred(e)]
        count = 0
        for e in picked:
            if e in self.queue:
                count += self.deliver(self.queue.index(e))
        return count

    def drop_where(self, pred: Callable[[Envelope], bool]) -> int:
        keep = [e for e in self.queue if not pred(e)]
        n = len(self.queue) - len(keep)
        self.queue = keep
        self.dropped += n
        return n

    def duplicate(self, i: int) -> None:
        e = self.queue[i]
        self._seq += 1
        self.queue.append(Envelope(e.src, e.dst, e.msg, e.deliver_at, self._seq))

    # ------------------------------------------------------------ time
    def _next_timer(self):
        armed = [(d, i) for i, d in self._deadline.items() if d is not None and self.nodes.get(i) is not None]
        return min(armed, key=lambda x: (x[0], self.ids.index(x[1]))) if armed else None

    def fire(self, nid) -> Ready:
        """Fire ``nid``'s earliest timer now, moving the clock to it."""
        d = self._deadline[nid]
        self.now = max(self.now, d)
        return self._handle(nid, "timer", self.nodes[nid].on_timer(self.now))

    def advance(self, ms: float) -> None:
        """Move the clock ``ms`` forward, firing timers in time order; no message moves."""
        end = self.now + ms
        while (t := self._next_timer()) is not None and t[0] <= end:
            self.now = max(self.now, t[0])
            self._handle(t[1], "timer", self.nodes[t[1]].on_timer(self.now))
        self.now = end

    def run(self, ms: float) -> None:
        """A reliable network for ``ms``: messages arrive ``latency_ms`` after sending
        (in order), timers fire on time.  Partitions still drop messages."""
        self.run_until(lambda: False, ms, strict=False)

    def run_until(self, pred: Callable[[], bool], limit_ms: float, strict: bool = True) -> None:
        """Run as :meth:`run` until ``pred()`` holds; AssertionError after ``limit_ms`` if strict."""
        end = self.now + limit_ms
        while not pred():
            t = self._next_timer()
            m = min(range(len(self.queue)), key=lambda k: (self.queue[k].deliver_at, self.queue[k].seq), default=None)
            tm = self.queue[m].deliver_at if m is not None else None
            if tm is not None and tm <= end and (t is None or tm <= t[0]):
                self.now = max(self.now, tm)
                self.deliver(m)
            elif t is not None and t[0] <= end:
                self.now = max(self.now, t[0])
                self._handle(t[1], "timer", self.nodes[t[1]].on_timer(self.now))
            else:
                self.now = end
                if strict:
                    raise AssertionError(f"condition not reached within {limit_ms} ms")
                return

    # ------------------------------------------------------------ clients
    def propose(self, nid, data) -> Ready:
        return self._handle(nid, "propose", self.nodes[nid].propose(data, self.now))

    def propose_at_leader(self, data) -> Ready:
        lead = self.leader()
        assert lead is not None, "no leader"
        return self.propose(lead, data)

    def read(self, nid, request_id) -> Ready:
        self.reads[request_id] = ReadRecord(nid, request_id, self._step, self.max_committed)
        return self._handle(nid, "read", self.nodes[nid].read_index(request_id, self.now))

    def add_server(self, nid, new) -> Ready:
        return self._handle(nid, "add_server", self.nodes[nid].add_server(new, self.now))

    def remove_server(self, nid, old) -> Ready:
        return self._handle(nid, "remove_server", self.nodes[nid].remove_server(old, self.now))

    # ------------------------------------------------------------ bookkeeping
    def _handle(self, nid, call: str, ready: Ready) -> Ready:
        node = self.nodes[nid]
        self._step += 1
        if ready.persist:  # persisted before anything leaves the node
            self.disk[nid] = node.persistent_state()
        for to, msg in ready.messages:
            self._seq += 1
            if self.can_talk(nid, to):
                self.queue.append(Envelope(nid, to, msg, self.now + self.latency_ms, self._seq))
            else:
                self.dropped += 1
        self._deadline[nid] = ready.next_deadline
        if ready.snapshot is not None:  # restore the state machine from it
            self.fsm[nid] = list(ready.snapshot.data)
            self._next_apply[nid] = ready.snapshot.index + 1
        for e in ready.committed:
            assert e.index == self._next_apply[nid], f"node {nid} applied {e.index}, expected {self._next_apply[nid]}"
            self._next_apply[nid] += 1
            self.fsm[nid].append(e)
            self.commits.append(Commit(self._step, nid, self._incarnation[nid], node.term, e))
            self.max_committed = max(self.max_committed, e.index)
        for rs in ready.reads:
            self.reads[rs.request_id].result = rs
        for rid in ready.failed_reads:
            self.reads[rid].failed = True
        if ready.rejected:
            self.rejections.append((nid, call, ready.rejected))
        self.history.append(Snapshot(self._step, self.now, nid, call, node.role, node.term, node.leader_id,
                                     node.commit_index, tuple(node._log), node.first_index,
                                     node._term_at(node.first_index - 1) or 0))
        if call != "compact" and ready.committed and node.should_snapshot():
            # the shell's snapshot: the state machine is the applied entries (hashicorp/raft checks every
            # SnapshotInterval; the harness checks after every apply)
            self._handle(nid, "compact", node.compact(tuple(self.fsm[nid]), self.now))
        return ready


# --------------------------------------------------------------------------- checkers


def check_election_safety(history: list[Snapshot]) -> None:
    """At most one leader per term."""
    seen: dict[int, Any] = {}
    for s in history:
        if s.role == LEADER:
            other = seen.setdefault(s.term, s.node)
            assert other == s.node, f"two leaders in term {s.term}: {other} and {s.node} (step {s.step})"


def check_leader_append_only(history: list[Snapshot]) -> None:
    """A leader never overwrites or deletes entries in its own log during its term (compaction drops a
    prefix, which is committed: only the entries both snapshots still hold are compared)."""
    last: dict[tuple, Snapshot] = {}
    for s in history:
        if s.role != LEADER:
            continue
        key = (s.node, s.term)
        prev = last.get(key)
        if prev is not None:
            prev_last, cur_last = prev.first + len(prev.log) - 1, s.first + len(s.log) - 1
            lo = max(prev.first, s.first)
            assert cur_last >= prev_last and all(
                prev.log[i - prev.first] == s.log[i - s.first] for i in range(lo, prev_last + 1)), (
                f"leader {s.node} rewrote its log in term {s.term} (step {s.step})")
        last[key] = s


def check_log_matching(history: list[Snapshot]) -> None:
    """Same index and term => same entry and identical logs before it.

    Checked inductively: every (index, term) seen anywhere must always carry
    the same entry and sit after an entry of the same term."""
    known: dict[tuple, tuple] = {}
    prev_log: dict[Any, tuple] = {}
    for s in history:
        old = prev_log.get(s.node, ())
        k = 0
        lim = min(len(old), len(s.log))
        while k < lim and old[k] is s.log[k]:
            k += 1
        for j in range(k, len(s.log)):
            e = s.log[j]
            assert e.index == j + s.first, f"node {s.node} log index gap at {j + s.first} (step {s.step})"
            sig = (e.kind, e.data, s.log[j - 1].term if j else s.start_term)
            got = known.setdefault((e.index, e.term), sig)
            assert got == sig, f"log matching violated at index {e.index} term {e.term} on {s.node} (step {s.step})"
        prev_log[s.node] = s.log


def committed_entries(commits: list[Commit]) -> dict[int, Entry]:
    """index -> the entry reported committed there (State Machine Safety: all reports agree)."""
    out: dict[int, Entry] = {}
    for c in commits:
        got = out.setdefault(c.entry.index, c.entry)
        assert got == c.entry, (f"state machine safety: index {c.entry.index} applied as {got} and as "
                                f"{c.entry} (node {c.node}, step {c.step})")
    return out


def check_leader_completeness(history: list[Snapshot], commits: list[Commit]) -> None:
    """An entry committed by term t is in the log of every leader of a later term."""
    entries = committed_entries(commits)
    by_term: dict[int, int] = {}
    for c in commits:
        by_term[c.entry.index] = min(by_term.get(c.entry.index, c.term), c.term)
    checked = set()
    for s in history:
        if s.role != LEADER or (s.node, s.term) in checked:
            continue  # append-only makes the first snapshot of a leadership enough
        checked.add((s.node, s.term))
        for i, e in entries.items():
            if by_term[i] < s.term and i >= s.first:  # below s.first: in the leader's snapshot
                assert s.first + len(s.log) > i and s.log[i - s.first] == e, (
                    f"leader {s.node} of term {s.term} lacks committed entry {e} (step {s.step})")


def check_reads(cluster: Cluster) -> None:
    """Linearizable reads: a confirmed read's index covers every commit reported before it was asked."""
    for r in cluster.reads.values():
        if r.result is not None:
            assert r.result.index >= r.known_committed, (
                f"stale read {r.request_id} at {r.node}: index {r.result.index} < {r.known_committed} "
                f"already committed when it was asked")


def check_state_machines(cluster: Cluster) -> None:
    """Every node's state machine (applied entries, snapshots included) is a prefix of one committed log."""
    entries = committed_entries(cluster.commits)
    for nid, applied in cluster.fsm.items():
        for k, e in enumerate(applied, start=1):
            assert e.index == k, f"node {nid}'s state machine has entry {e.index} at position {k}"
            assert entries.get(k, e) == e, f"node {nid}'s state machine holds {e}, others committed {entries[k]}"


def check_safety(cluster: Cluster) -> None:
    """All five Raft safety properties plus read linearizability, over the whole history."""
    check_election_safety(cluster.history)
    check_leader_append_only(cluster.history)
    check_log_matching(cluster.history)
    committed_entries(cluster.commits)
    check_leader_completeness(cluster.history, cluster.commits)
    check_state_machines(cluster)
    check_reads(cluster)
