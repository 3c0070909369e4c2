"""Raft consensus as a pure core, in the style of etcd-io/raft.

A :class:`RaftNode` owns no clock, socket or disk.  The shell calls it with a
message or a timer expiry and the current time (ms); every call returns a
:class:`Ready` that says what to persist, which messages to send, when to call
back (absolute deadlines), which log entries became committed and which reads
are now linearizable.  The shell must store :meth:`RaftNode.persistent_state`
durably *before* it sends the messages or applies anything in that ``Ready``.

Implemented: randomized elections with the up-to-date check, Pre-Vote (thesis
§9.6), check-quorum, two timer/vote policies (``RaftConfig.timers``: etcd-io/raft's,
and hashicorp/raft's as Consul runs it), log replication with fast backtracking, the Figure 8
commit rule, a no-op entry on election, ReadIndex (concurrent reads batched
into one round) and lease reads (thesis §6.4: followers keep their promise
from when they last heard a leader, and the leader's lease is shorter by a
clock-drift bound, see :class:`RaftConfig`), single-server membership
changes (thesis ch. 4), log compaction with snapshots and InstallSnapshot
(thesis ch. 5, as hashicorp/raft does it: the shell calls :meth:`RaftNode.compact`
with its state machine's snapshot; ``trailing_logs`` entries stay so that slow
followers can still be caught up from the log; a follower behind the log gets
the snapshot).  Not implemented: leadership transfer, non-voting members.

A single-server cluster elects itself on its first timeout and commits at once:

>>> import numpy as np
>>> node = RaftNode(1, (1,), RaftConfig.profile("paper"), np.random.default_rng(0))
>>> ready = node.start(0.0)
>>> ready = node.on_timer(ready.election_deadline)
>>> node.role, node.term, [e.kind for e in ready.committed]
('leader', 1, ['noop'])
>>> node.propose("x", 400.0).committed[0].data
'x'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from itertools import islice
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Union

import numpy as np

NodeId = Hashable

FOLLOWER = "follower"
PRECANDIDATE = "precandidate"
CANDIDATE = "candidate"
LEADER = "leader"
ROLES = (FOLLOWER, PRECANDIDATE, CANDIDATE, LEADER)
ENTRY_KINDS = ("command", "config", "noop")

_INF = math.inf

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "CANDIDATE",
    "ElectionTimeout",
    "Entry",
    "InstallSnapshot",
    "Snapshot",
    "FOLLOWER",
    "LEADER",
    "Message",
    "PRECANDIDATE",
    "PROFILES",
    "PersistentState",
    "RaftConfig",
    "RaftConfigWarning",
    "RaftNode",
    "ReadState",
    "Ready",
    "RequestVote",
    "RequestVoteResponse",
    "TickElectionTimeout",
    "UniformElectionTimeout",
]


# --------------------------------------------------------------------------- data
# Entries and messages are values: nothing changes them once made.  They are not frozen
# dataclasses only because those cost three times as much to construct, on every message.


@dataclass(slots=True, unsafe_hash=True)
class Entry:
    """One log entry.  ``kind`` is "command" (client data), "config" (``data``
    is the new voter tuple) or "noop" (appended by a new leader)."""

    index: int
    term: int
    kind: str = "command"
    data: Any = None


@dataclass(slots=True, unsafe_hash=True)
class RequestVote:
    """Vote request.  With ``pre_vote`` it asks "would you vote for me at
    ``term``?" and changes no state on either side."""

    term: int
    candidate: NodeId
    last_index: int
    last_term: int
    pre_vote: bool = False

    @property
    def src(self) -> NodeId:
        return self.candidate


@dataclass(slots=True, unsafe_hash=True)
class RequestVoteResponse:
    """Answer to a :class:`RequestVote` (a granted pre-vote echoes the asked term)."""

    term: int
    src: NodeId
    granted: bool
    pre_vote: bool = False


@dataclass(slots=True, unsafe_hash=True)
class AppendEntries:
    """Replication and heartbeat.  ``round`` numbers the leader's heartbeat
    rounds; the follower echoes it so the leader can confirm its leadership
    for ReadIndex and leases."""

    term: int
    leader: NodeId
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    round: int = 0

    @property
    def src(self) -> NodeId:
        return self.leader


@dataclass(slots=True, unsafe_hash=True)
class AppendEntriesResponse:
    """Answer to :class:`AppendEntries`.

    On success ``match_index`` is the last index known to equal the leader's
    log.  On failure ``reject_index`` is the rejected ``prev_index`` and the
    hint is ``conflict_term`` (the follower's term at ``reject_index``, None
    if its log is shorter) with ``conflict_index`` (first index of that term
    in the follower's log, or the follower's last index + 1).
    """

    term: int
    src: NodeId
    success: bool
    match_index: int = 0
    reject_index: int = 0
    conflict_term: int | None = None
    conflict_index: int = 0
    last_index: int = 0
    round: int = 0


@dataclass(slots=True, unsafe_hash=True)
class Snapshot:
    """A state machine snapshot: everything up to ``index`` (of ``term``), the voters in effect there, and
    the shell's ``data`` (e.g. a copy of the catalog)."""

    index: int
    term: int
    voters: tuple
    data: Any = None


@dataclass(slots=True, unsafe_hash=True)
class InstallSnapshot:
    """The leader's snapshot for a follower whose next entry the leader has compacted away; answered with
    an :class:`AppendEntriesResponse` (``match_index`` = the snapshot's index)."""

    term: int
    leader: NodeId
    snapshot: Snapshot
    round: int = 0

    @property
    def src(self) -> NodeId:
        return self.leader


Message = Union[RequestVote, RequestVoteResponse, AppendEntries, AppendEntriesResponse, InstallSnapshot]


class LogPrefix(Sequence):
    """The first ``n`` entries of a node's log list, shared rather than copied.

    A node only appends to its log list; dropping a suffix (conflict repair)
    makes a new list.  So the first ``n`` entries of a list never change, and
    taking the persistent state costs O(1), not a copy of the whole log at
    every write.  Compares equal to the tuple of the same entries.

    >>> live = [Entry(1, 1), Entry(2, 1)]
    >>> snap = LogPrefix(live, 2)
    >>> live.append(Entry(3, 2))
    >>> snap == (Entry(1, 1), Entry(2, 1)), len(snap), snap[-1].index
    (True, 2, 2)
    """

    __slots__ = ("_entries", "_n")

    def __init__(self, entries: list, n: int):
        self._entries = entries
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self)[i]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("log index out of range")
        return self._entries[i]

    def __iter__(self):
        return islice(self._entries, self._n)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, LogPrefix)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass(frozen=True)
class PersistentState:
    """What survives a crash: current term, vote in that term, the latest snapshot, and the log (a tuple or a
    :class:`LogPrefix`) after the compacted prefix, whose last entry is ``log_start`` = (index, term)."""

    term: int = 0
    voted_for: NodeId | None = None
    log: Sequence[Entry] = ()
    snapshot: Snapshot | None = None
    log_start: tuple[int, int] = (0, 0)
    #: the voters in effect at ``log_start`` (None: the bootstrap voters)
    log_start_voters: tuple | None = None


@dataclass(frozen=True)
class ReadState:
    """A confirmed linearizable read: serve it once entries up to ``index`` are applied."""

    request_id: Any
    index: int


@dataclass(slots=True)
class Ready:
    """Everything one call to a :class:`RaftNode` asks of the shell, in order:
    persist (if ``persist``), then send ``messages``, apply ``committed``,
    answer ``reads``, and call :meth:`RaftNode.on_timer` at ``next_deadline``."""

    messages: list[tuple[NodeId, Message]] = field(default_factory=list)
    #: term, vote or log changed: write ``node.persistent_state()`` first
    persist: bool = False
    #: a snapshot to restore the state machine from, before applying ``committed`` (after a restart, or
    #: one the leader installed)
    snapshot: Snapshot | None = None
    #: newly committed entries, in index order (after a restart, again from the snapshot or index 1)
    committed: list[Entry] = field(default_factory=list)
    #: confirmed reads
    reads: list[ReadState] = field(default_factory=list)
    #: read request ids abandoned because this node stopped being leader
    failed_reads: list[Any] = field(default_factory=list)
    #: roles entered during the call, in order
    role_changes: list[str] = field(default_factory=list)
    #: absolute deadlines (ms); None when not armed
    election_deadline: float | None = None
    heartbeat_deadline: float | None = None
    #: for propose/add_server/remove_server: the appended entry
    entry: Entry | None = None
    #: for propose/read_index/add_server/remove_server: why it was refused
    rejected: str | None = None
    #: the leader this node knows of (where to redirect a refused request)
    leader_hint: NodeId | None = None

    @property
    def next_deadline(self) -> float | None:
        """The earliest armed deadline (when to call ``on_timer``)."""
        e, h = self.election_deadline, self.heartbeat_deadline
        if e is None or (h is not None and h < e):
            return h
        return e


# --------------------------------------------------------------------------- config


class RaftConfigWarning(UserWarning):
    """A legal but risky Raft configuration (e.g. election timeouts that are not randomized)."""


def _etcd() -> dict:
    # etcd docs (tuning, configuration flags): --heartbeat-interval 100 ms,
    # --election-timeout 1000 ms; etcd-io/raft randomizes the timeout in
    # [T, 2T).  etcd server runs raft with CheckQuorum=true and --pre-vote
    # (default true since v3.5); reads default to ReadIndex (ReadOnlySafe).
    return dict(heartbeat_interval_ms=100.0, election_timeout_min_ms=1000.0, election_timeout_max_ms=2000.0,
                pre_vote=True, check_quorum=True, lease_reads=False, max_entries_per_append=64)


def _hashicorp(raft_multiplier: int, pre_vote: bool, snapshot_threshold: int = 8192,
               snapshot_interval_ms: float = 120_000.0) -> dict:
    # hashicorp/raft's DefaultConfig (config.go): HeartbeatTimeout 1000 ms,
    # ElectionTimeout 1000 ms, LeaderLeaseTimeout 500 ms, MaxAppendEntries 64;
    # Consul's raft_multiplier scales the three durations (Consul's
    # server-performance docs; its default multiplier is 5).  Timers as
    # raft.go runs them (timers="hashicorp", see RaftConfig): a follower's
    # check fires every randomTimeout(HeartbeatTimeout) = U[HT, 2HT); a
    # candidate waits randomTimeout(ElectionTimeout); the leader heartbeats
    # each follower every randomTimeout(HT/10) = U[HT/10, HT/5) and steps down
    # when it has not heard a quorum within LeaderLeaseTimeout.  HT == ET in
    # every Consul configuration, so one range serves both.  hashicorp/raft has
    # no lease reads (Consul's default read mode answers from the leader's
    # state; "consistent" verifies leadership with a quorum round).
    if isinstance(raft_multiplier, bool) or raft_multiplier < 1 or int(raft_multiplier) != raft_multiplier:
        raise ValueError(f"raft_multiplier must be a positive integer, got {raft_multiplier!r}")
    m = float(raft_multiplier)
    # CommitTimeout (50 ms, not scaled by Consul): each follower's replication loop also sends an
    # AppendEntries every randomTimeout(CommitTimeout) when idle, so followers hear the leader at least
    # that often whatever the heartbeat timeout.
    return dict(timers="hashicorp", heartbeat_interval_ms=100.0 * m, heartbeat_interval_max_ms=200.0 * m,
                election_timeout_min_ms=1000.0 * m, election_timeout_max_ms=2000.0 * m, leader_lease_ms=500.0 * m,
                pre_vote=pre_vote, check_quorum=True, lease_reads=False, max_entries_per_append=64,
                commit_timeout_ms=50.0, snapshot_threshold=snapshot_threshold,
                snapshot_interval_ms=snapshot_interval_ms, trailing_logs=10240)


def _consul(raft_multiplier: int = 5) -> dict:
    # Current Consul (1.19 and later) builds on hashicorp/raft 1.7, whose
    # candidates run a pre-vote round first (on by default since v1.7.0).
    # Consul's own snapshot defaults (agent/consul/config.go DefaultConfig:
    # raft_snapshot_threshold 16384, raft_snapshot_interval 30 s; trailing
    # logs 10240 as the library's).
    return _hashicorp(raft_multiplier, pre_vote=True, snapshot_threshold=16384, snapshot_interval_ms=30_000.0)


def _hashicorp_1_1(raft_multiplier: int = 1) -> dict:
    # hashicorp/raft 1.1.x (the version measured in data/hashicorp): no
    # pre-vote.  Multiplier 1 = the library's DefaultConfig (snapshots: every
    # 8192 entries, checked every randomTimeout(120 s), 10240 trailing logs).
    return _hashicorp(raft_multiplier, pre_vote=False)


def _paper() -> dict:
    # Raft paper §5.2: election timeouts drawn from 150-300 ms; §9.3: the
    # heartbeat interval was half the minimum election timeout (75 ms).  The
    # paper's basic algorithm has no Pre-Vote, check-quorum or leases.
    return dict(heartbeat_interval_ms=75.0, election_timeout_min_ms=150.0, election_timeout_max_ms=300.0,
                pre_vote=False, check_quorum=False, lease_reads=False, max_entries_per_append=64)


#: Named timing/feature profiles for :meth:`RaftConfig.profile`.
PROFILES = {"etcd": _etcd, "consul": _consul, "hashicorp-raft-1.1": _hashicorp_1_1, "paper": _paper}
#: profiles that take ``raft_multiplier`` (scales hashicorp/raft's three durations)
MULTIPLIER_PROFILES = ("consul", "hashicorp-raft-1.1")
TIMERS = ("etcd", "hashicorp")


@dataclass(frozen=True)
class RaftConfig:
    """Timing (ms) and features of a Raft node; defaults are etcd's.

    An election timeout is drawn uniformly from ``[election_timeout_min_ms,
    election_timeout_max_ms)`` at every reset (equal bounds = fixed, which
    warns: simultaneous candidates then split the vote again and again).  The
    window ``leader_lease_ms`` (None = ``election_timeout_min_ms``) is the
    check-quorum window: a leader that has not heard from a majority within it
    steps down.  The leader's heartbeat interval is ``heartbeat_interval_ms``,
    or uniform in [``heartbeat_interval_ms``, ``heartbeat_interval_max_ms``)
    when the latter is set.  Log compaction (``snapshot_threshold`` entries
    since the last snapshot, checked every ``snapshot_interval_ms`` by the
    shell, keeping ``trailing_logs``; hashicorp/raft's SnapshotThreshold,
    SnapshotInterval, TrailingLogs) is off when the threshold is None.
    ``commit_timeout_ms`` (hashicorp/raft's
    CommitTimeout; None = off) adds a second, independent stream of rounds
    every U[CT, 2CT): the idle replication loop's AppendEntries.

    ``timers`` chooses how followers time out and how votes are granted:

    * ``"etcd"`` (etcd-io/raft): every message from the leader, and every vote
      granted, re-arms a fresh election timeout; with check-quorum a follower
      ignores vote requests for a minimum election timeout after it last heard
      a leader (thesis §4.2.3); a pre-candidate or candidate refused by a
      majority goes back to follower; the leader checks its quorum at every
      heartbeat, counting a follower from when it sent the round that follower
      acknowledged.
    * ``"hashicorp"`` (hashicorp/raft's raft.go, as Consul runs it): a
      follower's timer is free running: it fires every U[min, max) and only then
      checks whether the leader was heard (a successful AppendEntries, or a vote
      granted) within ``election_timeout_min_ms`` (HeartbeatTimeout); if not, it
      forgets the leader and campaigns.  A node that knows a leader other than
      the candidate refuses every vote and pre-vote request without looking at
      its term (leader stickiness).  A candidate waits U[min, max)
      (randomTimeout(ElectionTimeout)) and starts a new term when it runs out,
      also after a majority refused (it does not step down for that).  The
      leader counts a follower from when its last answer arrived, checks every
      LeaderLeaseTimeout minus the oldest contact (at least 10 ms) and steps
      down without a quorum (``check_quorum``; window ``lease_ms``).  No lease
      reads.

    Lease reads (``lease_reads``) rest on a promise each follower keeps: having
    heard the leader at time t (its clock), it grants no vote or pre-vote before
    t + ``election_timeout_min_ms``, whether or not it still names a leader.  The
    leader counts its lease from when it *sent* a round a majority acknowledged,
    for ``read_lease_ms`` = min(``lease_ms``, ``election_timeout_min_ms`` /
    (1 + ``lease_clock_drift``)) of its own clock.  That is safe as long as no
    follower's clock runs more than ``lease_clock_drift`` (default 0.1, i.e. 10%)
    faster than the leader's (thesis §6.4 "clock drift bound"); a follower clock
    25% fast breaks a lease equal to the minimum election timeout.

    >>> RaftConfig.profile("consul").election_timeout_min_ms
    5000.0
    >>> RaftConfig(heartbeat_interval_ms=200, election_timeout_min_ms=150)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: election_timeout_min_ms (150) must be greater than heartbeat_interval_ms (200): ...
    """

    heartbeat_interval_ms: float = 100.0
    election_timeout_min_ms: float = 1000.0
    election_timeout_max_ms: float = 2000.0
    pre_vote: bool = True
    check_quorum: bool = True
    lease_reads: bool = False
    max_entries_per_append: int = 64
    leader_lease_ms: float | None = None
    lease_clock_drift: float = 0.1
    timers: str = "etcd"
    heartbeat_interval_max_ms: float | None = None
    commit_timeout_ms: float | None = None
    snapshot_threshold: int | None = None
    trailing_logs: int = 10240
    snapshot_interval_ms: float = 120_000.0

    def __post_init__(self):
        hb, lo, hi = self.heartbeat_interval_ms, self.election_timeout_min_ms, self.election_timeout_max_ms
        if self.timers not in TIMERS:
            raise ValueError(f"timers must be one of {', '.join(TIMERS)}, got {self.timers!r}")
        if not hb > 0:
            raise ValueError(f"heartbeat_interval_ms must be positive, got {hb}")
        hb_max = self.heartbeat_interval_max_ms
        if hb_max is not None and not hb <= hb_max < lo:
            raise ValueError(f"heartbeat_interval_max_ms ({hb_max}) must be in [heartbeat_interval_ms={hb}, "
                             f"election_timeout_min_ms={lo})")
        if self.snapshot_threshold is not None and self.snapshot_threshold < 1:
            raise ValueError(f"snapshot_threshold must be at least 1 (or None: never), got {self.snapshot_threshold}")
        if self.trailing_logs < 0:
            raise ValueError(f"trailing_logs must be >= 0, got {self.trailing_logs}")
        if not self.snapshot_interval_ms > 0:
            raise ValueError(f"snapshot_interval_ms must be positive, got {self.snapshot_interval_ms}")
        if self.commit_timeout_ms is not None and not self.commit_timeout_ms > 0:
            raise ValueError(f"commit_timeout_ms must be positive (or None), got {self.commit_timeout_ms}")
        if self.timers == "hashicorp" and self.lease_reads:
            raise ValueError("hashicorp/raft has no lease reads: with timers='hashicorp' set lease_reads=False "
                             "(reads confirm leadership with a quorum round)")
        if not lo > hb:
            raise ValueError(f"election_timeout_min_ms ({lo}) must be greater than heartbeat_interval_ms ({hb}): "
                             "followers would time out between heartbeats and no leader could last")
        if hi < lo:
            raise ValueError(f"election_timeout_max_ms ({hi}) must be >= election_timeout_min_ms ({lo})")
        if self.max_entries_per_append < 1:
            raise ValueError("max_entries_per_append must be at least 1")
        if self.leader_lease_ms is not None and not 0 < self.leader_lease_ms <= lo:
            raise ValueError(f"leader_lease_ms ({self.leader_lease_ms}) must be in (0, election_timeout_min_ms={lo}]: "
                             "followers only promise not to vote for that long")
        if self.lease_reads and not self.check_quorum:
            raise ValueError("lease_reads needs check_quorum (followers must ignore votes while a leader is live)")
        if not 0 <= self.lease_clock_drift < math.inf:
            raise ValueError(f"lease_clock_drift must be a finite rate >= 0 (0.1 = clocks differ by up to 10%), "
                             f"got {self.lease_clock_drift}")
        if hi == lo:
            warnings.warn(f"election timeouts are not randomized (election_timeout_min_ms == election_timeout_max_ms"
                          f" == {lo}): candidates that start together split the vote again every term and may "
                          "never elect a leader", RaftConfigWarning, stacklevel=3)

    @property
    def lease_ms(self) -> float:
        """The check-quorum / lease window actually used."""
        return self.election_timeout_min_ms if self.leader_lease_ms is None else self.leader_lease_ms

    @property
    def read_lease_ms(self) -> float:
        """How long after sending an acknowledged round a leader may answer reads locally: the
        check-quorum window, shortened so that it ends before the followers' promise ends on a clock up to
        ``lease_clock_drift`` faster (thesis §6.4).

        >>> round(RaftConfig(election_timeout_min_ms=1000, election_timeout_max_ms=2000).read_lease_ms, 1)
        909.1
        """
        return min(self.lease_ms, self.election_timeout_min_ms / (1.0 + self.lease_clock_drift))

    @classmethod
    def profile(cls, name: str, **overrides) -> RaftConfig:
        """A named profile with field overrides: "etcd" (etcd 3.5), "consul" (current Consul:
        hashicorp/raft 1.7 timers with pre-vote), "hashicorp-raft-1.1" (the same timers without
        pre-vote, as measured in data/hashicorp), "paper" (the Raft paper's §9.3 setup).
        "consul" also takes ``raft_multiplier`` (default 5), "hashicorp-raft-1.1" too (default 1,
        the library's DefaultConfig).

        >>> c = RaftConfig.profile("hashicorp-raft-1.1")
        >>> c.timers, c.pre_vote, c.election_timeout_min_ms, c.heartbeat_interval_max_ms, c.lease_ms
        ('hashicorp', False, 1000.0, 200.0, 500.0)
        """
        if name not in PROFILES:
            raise ValueError(f"unknown Raft profile {name!r}; valid profiles: {', '.join(sorted(PROFILES))}")
        args = {}
        if name in MULTIPLIER_PROFILES and "raft_multiplier" in overrides:
            args["raft_multiplier"] = overrides.pop("raft_multiplier")
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown RaftConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**{**PROFILES[name](**args), **overrides})


# --------------------------------------------------------------------------- node


#: ``election_timeout(low, high) -> ms``: draws one randomized election timeout in [low, high)
ElectionTimeout = Callable[[float, float], float]


class UniformElectionTimeout:
    """Uniform in [low, high) from ``rng``: continuous timers (what a node does without a hook).

    >>> draw = UniformElectionTimeout(np.random.default_rng(0))
    >>> 150.0 <= draw(150.0, 300.0) < 300.0
    True
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))


class TickElectionTimeout:
    """etcd-io/raft's ``resetRandomizedElectionTimeout`` on a logical clock: ``low`` plus a whole number of
    ticks below ``high`` (etcd: electionTimeout + rand(electionTimeout) ticks).  An object, not a closure,
    so that a copied or pickled node keeps drawing from its own copy of the generator.

    >>> draw = TickElectionTimeout(np.random.default_rng(0), 100.0)
    >>> sorted({draw(1000.0, 2000.0) for _ in range(200)}) == [1000.0 + 100.0 * k for k in range(10)]
    True
    """

    def __init__(self, rng: np.random.Generator, tick_ms: float):
        self.rng = rng
        self.tick_ms = tick_ms

    def __call__(self, low: float, high: float) -> float:
        k = int(round((high - low) / self.tick_ms))
        return float(low) if k <= 1 else float(low + self.tick_ms * int(self.rng.integers(0, k)))


class RaftNode:
    """One Raft server.  ``voters`` is the bootstrap configuration (used until
    the log holds a config entry); a restart is a new node built with the
    ``persisted`` state of the old one (volatile state starts afresh).

    ``rng`` draws the node's randomness (heartbeat jitter with hashicorp's
    timers); ``election_timeout`` is the named hook that draws each randomized
    election timeout (default: uniform from ``rng``, as
    :class:`UniformElectionTimeout`; the shell passes a
    :class:`TickElectionTimeout` to model etcd's logical clock)."""

    def __init__(self, node_id: NodeId, voters: tuple, config: RaftConfig, rng: np.random.Generator,
                 persisted: PersistentState | None = None, election_timeout: ElectionTimeout | None = None):
        self.id = node_id
        self.config = config
        self.rng = rng
        self._draw_timeout = election_timeout  # None: self.rng.uniform
        self._hashi = config.timers == "hashicorp"
        self._bootstrap = tuple(voters)
        ps = persisted or PersistentState()
        self._offset, self._offset_term = ps.log_start  # the last compacted entry (0, 0: none)
        for i, e in enumerate(ps.log, start=self._offset + 1):
            if e.index != i:
                raise ValueError(f"persisted log is not contiguous from index {self._offset + 1} "
                                 f"(entry {i} has index {e.index})")
        self._snapshot: Snapshot | None = ps.snapshot
        self._offset_voters = tuple(ps.log_start_voters) if ps.log_start_voters is not None else self._bootstrap
        if (self._snapshot is None) != (self._offset == 0) or (
                self._snapshot is not None and not self._offset <= self._snapshot.index <= self._offset + len(ps.log)):
            raise ValueError("a compacted log needs the snapshot that covers it")
        self._term = ps.term
        self._voted_for = ps.voted_for
        self._log: list[Entry] = list(ps.log)
        # volatile
        self._role = FOLLOWER
        self._leader: NodeId | None = None
        self._commit = self._applied = self._snapshot.index if self._snapshot is not None else 0
        self._restore_pending = self._snapshot is not None  # the shell restores it from the first Ready
        self._config_index = 0
        self._voters = self._bootstrap
        self._reload_config(self.last_index)
        self._election_deadline: float | None = None
        self._heartbeat_deadline: float | None = None
        self._last_heard = -_INF
        # With lease reads, a restarted node forgets which leader it promised
        # not to undermine; it keeps quiet for one minimum election timeout.
        self._vote_guard_until = -_INF
        self._vote_guard_pending = config.lease_reads
        self._votes: dict[NodeId, bool] = {}
        # leader state
        self._next: dict[NodeId, int] = {}
        self._match: dict[NodeId, int] = {}
        self._round = 0
        self._round_sent: dict[int, float] = {}
        self._acked_round: dict[NodeId, int] = {}
        self._ack_time: dict[NodeId, float] = {}
        self._contact: dict[NodeId, float] = {}  # hashicorp timers: when each follower last answered
        self._lease_deadline: float | None = None  # hashicorp timers: the leader's next quorum check
        self._idle_deadline: float | None = None  # commit_timeout_ms: the idle replication round
        self._leader_since = -_INF
        self._pending_reads: list[list] = []  # [request_id, read_index | None, required_round, asked_at]
        self._ready: Ready | None = None

    # ------------------------------------------------------------ read-only view
    @property
    def role(self) -> str:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def voted_for(self) -> NodeId | None:
        return self._voted_for

    @property
    def leader_id(self) -> NodeId | None:
        return self._leader

    @property
    def log(self) -> list[Entry]:
        """The entries still in the log (after the compacted prefix: see :attr:`first_index`)."""
        return list(self._log)

    @property
    def first_index(self) -> int:
        """Index of the first entry still in the log (1 until a compaction)."""
        return self._offset + 1

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first compaction)."""
        return self._snapshot

    @property
    def last_index(self) -> int:
        return self._offset + len(self._log)

    @property
    def commit_index(self) -> int:
        return self._commit

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def voters(self) -> tuple:
        return self._voters

    def persistent_state(self) -> PersistentState:
        """A copy of the state the shell must keep durable."""
        return PersistentState(self._term, self._voted_for, LogPrefix(self._log, len(self._log)), self._snapshot,
                               (self._offset, self._offset_term), self._offset_voters if self._offset else None)

    def lease_valid(self, now: float) -> bool:
        """True when this leader may answer reads locally (lease_reads only)."""
        return (self.config.lease_reads and self._role == LEADER and self._committed_in_term()
                and self._quorum_contact(now) + self.config.read_lease_ms > now)

    def __repr__(self) -> str:
        return (f"RaftNode({self.id!r}, {self._role}, term={self._term}, leader={self._leader!r}, "
                f"last={self.last_index}, commit={self._commit})")

    # ------------------------------------------------------------ public calls
    def start(self, now: float) -> Ready:
        """Arm the election timer (call once, after construction or restart)."""
        self._begin()
        if self._vote_guard_pending:
            self._vote_guard_until = now + self.config.election_timeout_min_ms
            self._vote_guard_pending = False
        self._reset_election_timer(now)
        return self._finish(now)

    def on_timer(self, now: float) -> Ready:
        """Handle every deadline that is due at ``now``."""
        self._begin()
        if self._role == LEADER:
            if self._lease_deadline is not None and self._lease_deadline <= now:
                self._check_leader_lease(now)
            if self._role == LEADER and self._heartbeat_deadline is not None and self._heartbeat_deadline <= now:
                heard = max(self._quorum_contact(now), self._leader_since)
                if not self._hashi and self.config.check_quorum and heard < now - self.config.lease_ms:
                    self._become_follower(self._term, None, now)  # lost touch with a majority
                else:
                    self._heartbeat_deadline = now + self._heartbeat_interval()
                    if self._idle_deadline is not None and self._idle_deadline <= now:
                        self._idle_deadline = now + self._idle_interval()  # both due: one round serves
                    self._broadcast_round(now)
                    self._expire_reads(now)
            if self._role == LEADER and self._idle_deadline is not None and self._idle_deadline <= now:
                self._idle_deadline = now + self._idle_interval()
                self._broadcast_round(now)
                self._expire_reads(now)
        elif self._election_deadline is not None and self._election_deadline <= now:
            if self._hashi and self._role == FOLLOWER:
                # hashicorp/raft's runFollower: the check re-arms itself, and only a leader unheard
                # for HeartbeatTimeout makes the follower forget it and campaign
                self._reset_election_timer(now)
                if now - self._last_heard < self.config.election_timeout_min_ms:
                    return self._finish(now)
                self._leader = None
            if self._may_campaign():
                self._campaign(now, pre=self.config.pre_vote)
            else:
                self._reset_election_timer(now)
        return self._finish(now)

    def fire_election_timer(self, now: float) -> Ready:
        """Let the election timer expire now, ahead of its random deadline (a test or a classroom forcing an
        election, like etcd's Campaign); a leader has no election timer.

        >>> import numpy as np
        >>> a = RaftNode("a", ("a", "b", "c"), RaftConfig.profile("paper"), np.random.default_rng(0))
        >>> _ = a.start(0.0)
        >>> [type(msg).__name__ for _to, msg in a.fire_election_timer(1.0).messages], a.role, a.term
        (['RequestVote', 'RequestVote'], 'candidate', 1)
        """
        if self._role == LEADER:
            raise ValueError("a leader has no election timer (it sends heartbeats)")
        self._election_deadline = now
        if self._hashi and self._role == FOLLOWER:
            self._last_heard = -_INF  # a forced timeout campaigns even if the leader was heard lately
        return self.on_timer(now)

    def propose(self, data: Any, now: float) -> Ready:
        """Append a command at the leader (``ready.entry``); elsewhere ``ready.rejected``."""
        self._begin()
        if self._role != LEADER:
            self._ready.rejected = "not leader"
        else:
            self._ready.entry = self._append_local("command", data, now)
        return self._finish(now)

    def read_index(self, request_id: Any, now: float) -> Ready:
        """Ask for a linearizable read; it appears in ``ready.reads`` of this or
        a later call once confirmed (or in ``failed_reads`` if leadership is lost)."""
        self._begin()
        if self._role != LEADER:
            self._ready.rejected = "not leader"
        elif self.lease_valid(now):
            self._pending_reads.append([request_id, self._commit, 0, now])
            self._check_reads(now)
        else:
            # Batch like etcd's read loop: while a read's round is out, later reads wait together for the next one.
            index = self._commit if self._committed_in_term() else None
            waiting = self._read_round_out()
            self._pending_reads.append([request_id, index, self._round + 1, now])
            if not waiting:
                self._broadcast_round(now)
            self._check_reads(now)
        return self._finish(now)

    def should_snapshot(self) -> bool:
        """hashicorp/raft's shouldSnapshot: at least ``snapshot_threshold`` entries applied since the last
        snapshot (the shell asks every ``snapshot_interval_ms`` and then calls :meth:`compact`)."""
        t = self.config.snapshot_threshold
        last = self._snapshot.index if self._snapshot is not None else 0
        return t is not None and self._applied - last >= t

    def compact(self, data: Any, now: float, index: int | None = None) -> Ready:
        """Take a snapshot at ``index`` (default: the applied index) with the state machine's ``data`` as of
        that index, and drop the log up to ``trailing_logs`` entries before it (hashicorp/raft's
        takeSnapshot and compactLogs).  A shell that applies entries later than the node reports them
        passes the index its state machine has reached.

        >>> import numpy as np
        >>> n = RaftNode(1, (1,), RaftConfig.profile("paper", trailing_logs=1), np.random.default_rng(0))
        >>> _ = n.on_timer(n.start(0.0).election_deadline)
        >>> for x in "abc":
        ...     _ = n.propose(x, 400.0)
        >>> r = n.compact(data="state after c", now=500.0)
        >>> n.snapshot.index, n.first_index, [e.data for e in n.log], r.persist
        (4, 4, ['c'], True)
        """
        self._begin()
        i = self._applied if index is None else index
        if i > self._applied:
            raise ValueError(f"cannot snapshot at {i}: only {self._applied} is applied")
        if i > (self._snapshot.index if self._snapshot is not None else 0):
            self._snapshot = Snapshot(i, self._term_at(i), self._config_voters(i), data)
            self._truncate_prefix(max(self._offset, i - self.config.trailing_logs))
            self._ready.persist = True
        return self._finish(now)

    def add_server(self, node_id: NodeId, now: float) -> Ready:
        """Append a config entry adding ``node_id`` as a voter (leader only)."""
        return self._change_config(node_id, now, add=True)

    def remove_server(self, node_id: NodeId, now: float) -> Ready:
        """Append a config entry removing ``node_id`` (leader only)."""
        return self._change_config(node_id, now, add=False)

    def receive(self, msg: Message, now: float) -> Ready:
        """Handle one message from a peer."""
        self._begin()
        self._step(msg, now)
        return self._finish(now)

    # ------------------------------------------------------------ plumbing
    def _begin(self) -> None:
        self._ready = Ready()
        if self._restore_pending:
            self._restore_pending = False
            self._ready.snapshot = self._snapshot

    def _finish(self, now: float) -> Ready:
        r = self._ready
        if self._role != LEADER and self._election_deadline is None:
            self._reset_election_timer(now)
        r.election_deadline = self._election_deadline if self._role != LEADER else None
        if self._role != LEADER:
            r.heartbeat_deadline = None
        else:  # the leader's next timer: a heartbeat, an idle replication round or a quorum check
            r.heartbeat_deadline = self._heartbeat_deadline
            for d in (self._idle_deadline, self._lease_deadline):
                if d is not None and (r.heartbeat_deadline is None or d < r.heartbeat_deadline):
                    r.heartbeat_deadline = d
        r.leader_hint = self._leader
        self._ready = None  # outputs exist only during a call (_begin .. _finish)
        return r

    def _send(self, to: NodeId, msg: Message) -> None:
        self._ready.messages.append((to, msg))

    def _set_role(self, role: str) -> None:
        self._role = role
        self._ready.role_changes.append(role)

    def _reset_election_timer(self, now: float) -> None:
        lo, hi = self.config.election_timeout_min_ms, self.config.election_timeout_max_ms
        if hi <= lo:
            self._election_deadline = now + lo
        elif self._draw_timeout is None:
            self._election_deadline = now + float(self.rng.uniform(lo, hi))
        else:
            self._election_deadline = now + self._draw_timeout(lo, hi)

    def _heartbeat_interval(self) -> float:
        lo, hi = self.config.heartbeat_interval_ms, self.config.heartbeat_interval_max_ms
        return lo if hi is None or hi <= lo else float(self.rng.uniform(lo, hi))

    def _idle_interval(self) -> float:
        ct = self.config.commit_timeout_ms
        return float(self.rng.uniform(ct, 2.0 * ct))

    def _term_at(self, index: int) -> int | None:
        """The term of entry ``index``, None if it is beyond the log or compacted away."""
        k = index - self._offset
        if 0 < k <= len(self._log):
            return self._log[k - 1].term
        if k == 0:
            return self._offset_term  # (index 0: term 0)
        if self._snapshot is not None and index == self._snapshot.index:
            return self._snapshot.term
        return None

    def _entry(self, index: int) -> Entry:
        return self._log[index - self._offset - 1]

    def _last_term(self) -> int:
        return self._log[-1].term if self._log else self._offset_term

    def _truncate_prefix(self, upto: int) -> None:
        """Drop the entries up to ``upto`` (a new list: persisted prefixes share the old one)."""
        if upto > self._offset:
            self._offset_voters = self._config_voters(upto)
            self._offset_term = self._term_at(upto)
            self._log = self._log[upto - self._offset:]
            self._offset = upto

    def _config_voters(self, index: int) -> tuple:
        """The voters in effect at ``index`` (the latest config entry at or below it)."""
        i = self._config_at_or_below(index)
        return tuple(self._entry(i).data) if i > self._offset else self._base_voters()

    def _base_voters(self) -> tuple:
        """The voters in effect where the log starts (the bootstrap ones before any compaction)."""
        return self._offset_voters

    def _committed_in_term(self) -> bool:
        return self._term_at(self._commit) == self._term

    def _majority(self) -> int:
        return len(self._voters) // 2 + 1

    def _kth(self, values) -> Any:
        """The value that a majority of voters reach (majority-th largest)."""
        vals = sorted(values, reverse=True)
        return vals[len(vals) // 2] if vals else -_INF

    # ------------------------------------------------------------ config
    def _config_at_or_below(self, upto: int) -> int:
        """Index of the latest config entry at or below ``upto`` still in the log, else the log's start."""
        i = min(upto, self.last_index)
        while i > self._offset and self._entry(i).kind != "config":
            i -= 1
        return i

    def _reload_config(self, upto: int) -> None:
        """Latest config entry at or below ``upto`` (else the voters in effect where the log starts: the
        bootstrap ones, or those kept at compaction; hashicorp/raft's snapshot carries its configuration)."""
        i = self._config_at_or_below(upto)
        self._config_index = i if i > self._offset else 0
        self._voters = tuple(self._entry(i).data) if i > self._offset else self._base_voters()
        j = self._config_at_or_below(i - 1) if i > self._offset else self._offset
        self._prev_voters = tuple(self._entry(j).data) if j > self._offset else self._base_voters()
        if self._role == LEADER:
            for p in self._voters:
                if p != self.id and p not in self._next:
                    self._next[p] = self.last_index + 1
                    self._match[p] = 0

    def _may_campaign(self) -> bool:
        """Voters campaign.  So does a server that the latest, not yet known to be
        committed, configuration removes: until that entry commits its log may be
        the one the others need (thesis §4.2.2, Figure 4.6).  It does not vote for itself."""
        if self.id in self._voters:
            return True
        return self._config_index > self._commit and self.id in self._prev_voters

    def _change_config(self, node_id: NodeId, now: float, add: bool) -> Ready:
        self._begin()
        if self._role != LEADER:
            reason = "not leader"
        elif self._config_index > self._commit:
            reason = "a configuration change is still uncommitted"
        elif not self._committed_in_term():
            reason = "leader has not yet committed an entry in its term"
        elif add and node_id in self._voters:
            reason = f"{node_id!r} is already a voter"
        elif not add and node_id not in self._voters:
            reason = f"{node_id!r} is not a voter"
        elif not add and len(self._voters) == 1:
            reason = "cannot remove the last voter"
        else:
            reason = None
        if reason:
            self._ready.rejected = reason
        else:
            voters = self._voters + (node_id,) if add else tuple(v for v in self._voters if v != node_id)
            self._ready.entry = self._append_local("config", voters, now)
        return self._finish(now)

    # ------------------------------------------------------------ leader side
    def _append_local(self, kind: str, data: Any, now: float) -> Entry:
        e = Entry(self.last_index + 1, self._term, kind, data)
        self._log.append(e)
        self._ready.persist = True
        if kind == "config":
            self._reload_config(e.index)
        for p in self._voters:
            if p != self.id:
                self._send_append(p)
        self._maybe_commit(now)
        return e

    def _send_append(self, p: NodeId) -> None:
        nxt = self._next.get(p, self.last_index + 1)
        if nxt <= self._offset:  # what the follower needs next is compacted away: send the snapshot
            self._send(p, InstallSnapshot(self._term, self.id, self._snapshot, self._round))
            self._next[p] = self._snapshot.index + 1
            return
        prev = nxt - 1
        k = prev - self._offset
        entries = tuple(self._log[k:k + self.config.max_entries_per_append])
        self._send(p, AppendEntries(self._term, self.id, prev, self._term_at(prev), entries, self._commit, self._round))
        if entries:
            self._next[p] = entries[-1].index + 1  # optimistic: rejections rewind it

    def _broadcast_round(self, now: float) -> None:
        """Start a heartbeat round: every peer gets an AppendEntries tagged with it."""
        self._round += 1
        self._round_sent[self._round] = now
        horizon = now - self.config.lease_ms
        for r in [r for r, t in self._round_sent.items() if t < horizon]:
            del self._round_sent[r]
        for p in self._voters:
            if p != self.id:
                self._send_append(p)

    def _quorum_contact(self, now: float) -> float:
        """Latest time t such that a majority has acknowledged a round sent at or after t."""
        return self._kth(now if p == self.id else self._ack_time.get(p, -_INF) for p in self._voters)

    def _quorum_round(self) -> float:
        return self._kth(_INF if p == self.id else self._acked_round.get(p, 0) for p in self._voters)

    def _maybe_commit(self, now: float) -> None:
        if self._commit >= self.last_index:
            return  # everything is committed (a heartbeat's answer): nothing to count
        n = self._kth(self.last_index if p == self.id else self._match.get(p, 0) for p in self._voters)
        if n > self._commit and self._term_at(n) == self._term:  # Figure 8: only own-term entries by counting
            self._commit = n
            self._apply()
            for r in self._pending_reads:
                if r[1] is None:
                    r[1] = self._commit
            self._check_reads(now)
            for p in self._voters:  # tell followers promptly (etcd's bcastAppend)
                if p != self.id:
                    self._send_append(p)
            if self.id not in self._voters and self._config_index <= self._commit:
                self._become_follower(self._term, None, now)  # removed leader steps down (thesis §4.2.2)

    def _read_round_out(self) -> bool:
        """Is the latest round one that reads wait for and a majority has not yet acknowledged?"""
        rnd = self._round
        return any(r[2] == rnd for r in self._pending_reads) and self._quorum_round() < rnd

    def _check_reads(self, now: float) -> None:
        if not self._pending_reads:
            return
        q = self._quorum_round()
        keep = []
        for r in self._pending_reads:
            if r[1] is not None and r[2] <= q and r[1] <= self._applied:
                self._ready.reads.append(ReadState(r[0], r[1]))
            else:
                keep.append(r)
        self._pending_reads = keep
        if q >= self._round and any(r[2] > self._round for r in keep):
            self._broadcast_round(now)  # the batch that waited for the previous read round

    def _expire_reads(self, now: float) -> None:
        """Fail reads that have waited a minimum election timeout: the leader cannot reach a quorum (without
        check-quorum nothing else would end them), and the client is better served retrying elsewhere."""
        horizon = now - self.config.election_timeout_min_ms
        if self._pending_reads and self._pending_reads[0][3] <= horizon:
            self._ready.failed_reads.extend(r[0] for r in self._pending_reads if r[3] <= horizon)
            self._pending_reads = [r for r in self._pending_reads if r[3] > horizon]

    def _become_leader(self, now: float) -> None:
        self._set_role(LEADER)
        self._leader = self.id
        self._election_deadline = None
        self._leader_since = now
        self._next = {p: self.last_index + 1 for p in self._voters if p != self.id}
        self._match = {p: 0 for p in self._voters if p != self.id}
        self._acked_round, self._ack_time, self._round_sent = {}, {}, {}
        self._contact = {}
        if self._hashi and self.config.check_quorum:
            self._lease_deadline = now + self.config.lease_ms
        self._round = 0
        self._pending_reads = []
        self._heartbeat_deadline = now + self._heartbeat_interval()
        self._idle_deadline = now + self._idle_interval() if self.config.commit_timeout_ms is not None else None
        self._round += 1
        self._round_sent[self._round] = now
        self._append_local("noop", None, now)  # lets the leader commit (and serve reads) promptly

    # ------------------------------------------------------------ elections
    def _campaign(self, now: float, pre: bool) -> None:
        if pre:
            self._set_role(PRECANDIDATE)
            term = self._term + 1
        else:
            self._term += 1
            self._voted_for = self.id
            self._ready.persist = True
            self._set_role(CANDIDATE)
            term = self._term
        self._leader = None
        self._votes = {self.id: True}  # only counted if this node is a voter
        self._reset_election_timer(now)
        if self._tally(now, pre):
            return
        for p in self._voters:
            if p != self.id:
                self._send(p, RequestVote(term, self.id, self.last_index, self._last_term(), pre))

    def _tally(self, now: float, pre: bool) -> bool:
        """Count votes; act on a decided election.  True when decided."""
        yes = sum(1 for p in self._voters if self._votes.get(p) is True)
        no = sum(1 for p in self._voters if self._votes.get(p) is False)
        if yes >= self._majority():
            if pre:
                self._campaign(now, pre=False)
            else:
                self._become_leader(now)
            return True
        if no >= self._majority() and not self._hashi:  # hashicorp/raft waits for its election timer
            self._become_follower(self._term, None, now)
            return True
        return False

    def _become_follower(self, term: int, leader: NodeId | None, now: float) -> None:
        if term != self._term:
            self._term = term
            self._voted_for = None
            self._ready.persist = True
        was = self._role
        if was == LEADER:
            self._ready.failed_reads.extend(r[0] for r in self._pending_reads)
            self._pending_reads = []
            self._heartbeat_deadline = None
            self._lease_deadline = None
            self._idle_deadline = None
            if self._hashi:
                self._last_heard = now  # hashicorp/raft sets its last contact when it steps down
        if was != FOLLOWER:
            self._set_role(FOLLOWER)
        self._leader = leader
        if self._election_deadline is None or (self._hashi and was != FOLLOWER):
            self._reset_election_timer(now)  # hashicorp/raft: a fresh runFollower, a fresh timer

    def _in_lease(self, now: float) -> bool:
        """Is this node keeping its promise to a leader?  A leader is; a follower is for a minimum
        election timeout after it last heard one, whether or not it still names that leader (a
        higher-term message may have made it forget the name, not the promise: thesis §6.4)."""
        if now < self._vote_guard_until or self._role == LEADER:
            return True
        return now - self._last_heard < self.config.election_timeout_min_ms

    # ------------------------------------------------------------ message handling
    def _step(self, msg: Message, now: float) -> None:
        if self._hashi and isinstance(msg, RequestVote):
            self._handle_vote_hashicorp(msg, now)
            return
        if msg.term > self._term:
            if isinstance(msg, RequestVote):
                if msg.pre_vote:
                    self._handle_vote(msg, now)  # a pre-vote never moves our term
                    return
                if self.config.check_quorum and self._in_lease(now):
                    return  # a live leader is known: ignore the disruptive candidate (thesis §4.2.3)
            if isinstance(msg, RequestVoteResponse) and msg.pre_vote and (
                    msg.granted or (self._hashi and msg.term == self._term + 1)):
                pass  # a pre-vote answer may carry the term we asked about
            else:
                self._become_follower(msg.term, msg.leader if isinstance(msg, (AppendEntries, InstallSnapshot))
                                      else None, now)
        elif msg.term < self._term:
            if isinstance(msg, (AppendEntries, InstallSnapshot)):  # tell the stale leader about the newer term
                self._send(msg.leader, AppendEntriesResponse(
                    self._term, self.id, False, reject_index=msg.prev_index if isinstance(msg, AppendEntries) else 0,
                    conflict_index=0, last_index=self.last_index, round=msg.round))
            elif isinstance(msg, RequestVote):
                self._send(msg.candidate, RequestVoteResponse(self._term, self.id, False, msg.pre_vote))
            return
        if isinstance(msg, AppendEntries):
            self._handle_append(msg, now)
        elif isinstance(msg, AppendEntriesResponse):
            self._handle_append_response(msg, now)
        elif isinstance(msg, RequestVote):
            self._handle_vote(msg, now)
        elif isinstance(msg, RequestVoteResponse):
            self._handle_vote_response(msg, now)
        elif isinstance(msg, InstallSnapshot):
            self._handle_snapshot(msg, now)
        else:
            raise TypeError(f"not a Raft message: {msg!r}")

    def _handle_vote(self, msg: RequestVote, now: float) -> None:
        up_to_date = (msg.last_term, msg.last_index) >= (self._last_term(), self.last_index)
        if msg.pre_vote and msg.term > self._term:
            can_vote = True
        else:
            can_vote = self._voted_for == msg.candidate or (self._voted_for is None and self._leader is None)
        # a pre-vote also needs silence from any leader for a minimum election timeout (thesis §9.6); with
        # check-quorum so does a vote, also at our own term (we may have adopted it from a refusal since)
        in_lease = (msg.pre_vote or (self.config.check_quorum and self._voted_for != msg.candidate)) \
            and self._in_lease(now)
        granted = can_vote and up_to_date and not in_lease
        if granted and not msg.pre_vote:
            self._voted_for = msg.candidate
            self._ready.persist = True
            self._reset_election_timer(now)
        term = msg.term if (granted and msg.pre_vote) else self._term
        self._send(msg.candidate, RequestVoteResponse(term, self.id, granted, msg.pre_vote))

    def _handle_vote_hashicorp(self, msg: RequestVote, now: float) -> None:
        """hashicorp/raft's requestVote and requestPreVote: a node that knows a leader other than the
        candidate refuses before it looks at the term; a pre-vote changes nothing here."""
        c = msg.candidate
        if (self._leader is not None and self._leader != c) or msg.term < self._term:
            self._send(c, RequestVoteResponse(self._term, self.id, False, msg.pre_vote))
            return
        up_to_date = (msg.last_term, msg.last_index) >= (self._last_term(), self.last_index)
        if msg.pre_vote:
            granted = up_to_date and c in self._voters
            self._send(c, RequestVoteResponse(max(msg.term, self._term), self.id, granted, True))
            return
        if msg.term > self._term:
            self._become_follower(msg.term, None, now)
        if self._voted_for is not None:
            granted = self._voted_for == c
        else:
            granted = up_to_date
            if granted:
                self._voted_for = c
                self._ready.persist = True
                self._last_heard = now  # hashicorp/raft counts a granted vote as contact
        self._send(c, RequestVoteResponse(self._term, self.id, granted, False))

    def _check_leader_lease(self, now: float) -> None:
        """hashicorp/raft's checkLeaderLease: step down unless a quorum answered within the lease; next
        check when the oldest of those answers would run out (at least 10 ms on)."""
        lease = self.config.lease_ms
        contacted, oldest = 0, 0.0
        for p in self._voters:
            if p == self.id:
                contacted += 1
                continue
            diff = now - self._contact.get(p, self._leader_since)
            if diff <= lease:
                contacted += 1
                oldest = max(oldest, diff)
        if contacted < self._majority():
            self._become_follower(self._term, None, now)
        else:
            self._lease_deadline = now + max(lease - oldest, 10.0)

    def _handle_vote_response(self, msg: RequestVoteResponse, now: float) -> None:
        if msg.pre_vote:
            if self._role != PRECANDIDATE:
                return
            if msg.granted and msg.term != self._term + 1:
                return
        elif self._role != CANDIDATE:
            return
        if msg.src in self._voters:
            self._votes[msg.src] = msg.granted
            self._tally(now, msg.pre_vote)

    def _handle_append(self, msg: AppendEntries, now: float) -> None:
        if self._role == LEADER:
            raise RuntimeError(f"two leaders in term {self._term}: {self.id!r} and {msg.leader!r}")
        if self._role != FOLLOWER:
            self._become_follower(self._term, msg.leader, now)
        self._leader = msg.leader
        if not self._hashi:
            self._last_heard = now
            self._reset_election_timer(now)
        if msg.prev_index < self._offset:
            # it starts inside our compacted prefix, which is committed and so the same as the leader's
            # (etcd answers such an append with its commit index)
            skip = [e for e in msg.entries if e.index > self._offset]
            msg = AppendEntries(msg.term, msg.leader, self._offset, self._offset_term, tuple(skip), msg.commit,
                                msg.round)
        here = self._term_at(msg.prev_index)
        if here is None or here != msg.prev_term:
            if here is None:
                cterm, cindex = None, self.last_index + 1
            else:
                cterm, cindex = here, msg.prev_index
                while cindex - 1 > self._offset and self._entry(cindex - 1).term == cterm:
                    cindex -= 1
            self._send(msg.leader, AppendEntriesResponse(self._term, self.id, False, reject_index=msg.prev_index,
                                                         conflict_term=cterm, conflict_index=cindex,
                                                         last_index=self.last_index, round=msg.round))
            return
        for k, e in enumerate(msg.entries):
            mine = self._term_at(e.index)
            if mine == e.term:
                continue
            if mine is not None:  # conflict: drop our suffix from here
                if e.index <= self._commit:
                    raise RuntimeError(f"{self.id!r} asked to overwrite committed entry {e.index}")
                self._log = self._log[:e.index - 1 - self._offset]  # a new list: persisted prefixes share the old one
                if self._config_index >= e.index:
                    self._reload_config(e.index - 1)
            self._log.extend(msg.entries[k:])
            self._ready.persist = True
            if any(x.kind == "config" for x in msg.entries[k:]):
                self._reload_config(self.last_index)
            break
        match = msg.prev_index + len(msg.entries)
        new_commit = min(msg.commit, match)
        if new_commit > self._commit:
            self._commit = new_commit
            self._apply()
        if self._hashi:
            self._last_heard = now  # hashicorp/raft: only a successful AppendEntries is contact
        self._send(msg.leader, AppendEntriesResponse(self._term, self.id, True, match_index=match,
                                                     last_index=self.last_index, round=msg.round))

    def _handle_snapshot(self, msg: InstallSnapshot, now: float) -> None:
        """hashicorp/raft's installSnapshot: take the leader's snapshot as the new base of the log, keeping
        the entries after it if they agree with it; answered like an append that matched up to it."""
        if self._role == LEADER:
            raise RuntimeError(f"two leaders in term {self._term}: {self.id!r} and {msg.leader!r}")
        if self._role != FOLLOWER:
            self._become_follower(self._term, msg.leader, now)
        self._leader = msg.leader
        if not self._hashi:
            self._reset_election_timer(now)
        snap = msg.snapshot
        if snap.index > self._commit:
            if self._term_at(snap.index) == snap.term and snap.index <= self.last_index:
                self._log = self._log[snap.index - self._offset:]  # keep the agreeing suffix
            else:
                self._log = []
            self._offset, self._offset_term, self._offset_voters = snap.index, snap.term, tuple(snap.voters)
            self._snapshot = snap
            self._commit = self._applied = snap.index
            self._ready.snapshot = snap
            self._ready.persist = True
            self._reload_config(self.last_index)
        self._last_heard = now
        self._send(msg.leader, AppendEntriesResponse(self._term, self.id, True, match_index=snap.index,
                                                     last_index=self.last_index, round=msg.round))

    def _handle_append_response(self, msg: AppendEntriesResponse, now: float) -> None:
        if self._role != LEADER or msg.src not in self._voters or msg.src == self.id:
            return
        p = msg.src
        if self._hashi:
            self._contact[p] = now
        if msg.round > self._acked_round.get(p, 0):
            self._acked_round[p] = msg.round
            sent = self._round_sent.get(msg.round)
            if sent is not None and sent > self._ack_time.get(p, -_INF):
                self._ack_time[p] = sent
        if msg.success:
            if msg.match_index > self._match.get(p, 0):
                self._match[p] = msg.match_index
            self._next[p] = max(self._next.get(p, 1), self._match[p] + 1)
            self._maybe_commit(now)
            if self._role == LEADER and self._next[p] <= self.last_index:
                self._send_append(p)
        elif msg.reject_index >= self._match.get(p, 0):  # older rejections are stale
            if msg.conflict_term is None:
                nxt = msg.conflict_index
            else:
                nxt = msg.conflict_index
                for i in range(min(msg.reject_index, self.last_index), self._offset, -1):
                    t = self._entry(i).term
                    if t == msg.conflict_term:
                        nxt = i + 1
                        break
                    if t < msg.conflict_term:
                        break
            self._next[p] = max(self._match.get(p, 0) + 1, min(nxt, msg.reject_index, self._next.get(p, nxt)))
            self._send_append(p)
        if self._role == LEADER:
            self._check_reads(now)

    def _apply(self) -> None:
        if self._commit > self._applied:
            self._ready.committed.extend(self._log[self._applied - self._offset:self._commit - self._offset])
            self._applied = self._commit
