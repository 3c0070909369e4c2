"""Raft's safety properties, checked incrementally after every step of a classroom cluster.

:class:`SafetyMonitor` reads the harness's records (one :class:`~meshsim.teach.harness.Snapshot`
per node call, one :class:`~meshsim.teach.harness.Commit` per applied entry) as they grow and
reports each broken property once, as a :class:`Violation`, instead of raising: a classroom shows
a violation, it never hides it.  The properties (Raft paper, Figure 3):

* election safety: at most one leader per term;
* leader append-only: a leader never overwrites or deletes entries of its own log in its term;
* log matching: two entries with the same index and term hold the same command, and the logs are
  identical before them;
* leader completeness: an entry committed in a term is in the log of every leader of a later term;
* state machine safety: no two servers apply different entries at the same index.

>>> from meshsim.teach.harness import Cluster
>>> c = Cluster(3, seed=1)
>>> c.start(); c.run_until(lambda: c.leader() is not None, 10_000)
>>> m = SafetyMonitor()
>>> m.observe(c.history, c.commits)
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.raft import LEADER, Entry

__all__ = ["PROPERTIES", "SafetyMonitor", "Violation"]

#: the properties checked, in the order the Raft paper lists them
PROPERTIES: tuple[str, ...] = ("election safety", "leader append-only", "log matching", "leader completeness",
                               "state machine safety")


@dataclass(frozen=True)
class Violation:
    """One broken safety property: which, where (harness step, server, term) and a sentence."""

    property: str
    detail: str
    step: int = 0
    server: Any = None
    term: int | None = None
    #: the classroom action during which it was seen (filled in by the classroom)
    action: str = ""

    def __str__(self) -> str:
        where = f" during {self.action}" if self.action else ""
        return f"{self.property}: {self.detail}{where}"


class SafetyMonitor:
    """Consumes a growing history and reports violations; keeps only small summaries, so it can be
    copied cheaply with the cluster (rewind)."""

    def __init__(self) -> None:
        self._hist_pos = 0
        self._commit_pos = 0
        self._leader_of: dict[int, Any] = {}          # term -> first leader seen
        self._leader_log: dict[tuple, tuple] = {}     # (node, term) -> its log at its latest snapshot as leader
        self._first_log: dict[tuple, tuple] = {}      # (node, term) -> its log when it became leader
        self._known: dict[tuple, tuple] = {}          # (index, term) -> (kind, data, previous term)
        self._prev_log: dict[Any, tuple] = {}
        self._committed: dict[int, Entry] = {}        # index -> entry applied there
        self._commit_term: dict[int, int] = {}        # index -> lowest term at which it was reported
        self._seen: set = set()

    # ------------------------------------------------------------------ public
    @property
    def committed(self) -> dict[int, Entry]:
        """index -> the entry some server applied there (the first report)."""
        return dict(self._committed)

    def observe(self, history: list, commits: list) -> list[Violation]:
        """Check the records added since the last call; returns the new violations (each reported once)."""
        out: list[Violation] = []
        for s in history[self._hist_pos:]:
            self._snapshot(s, out)
        self._hist_pos = len(history)
        for c in commits[self._commit_pos:]:
            self._commit(c, out)
        self._commit_pos = len(commits)
        return out

    def reset_position(self, history_len: int, commits_len: int) -> None:
        """Point at an earlier place in the records (after the caller truncated them)."""
        self._hist_pos = min(self._hist_pos, history_len)
        self._commit_pos = min(self._commit_pos, commits_len)

    # ------------------------------------------------------------------ checks
    def _report(self, out: list, key: tuple, v: Violation) -> None:
        if key not in self._seen:
            self._seen.add(key)
            out.append(v)

    def _snapshot(self, s, out: list) -> None:
        log = tuple(s.log)
        if s.role == LEADER:
            other = self._leader_of.setdefault(s.term, s.node)
            if other != s.node:
                self._report(out, ("election", s.term), Violation(
                    "election safety", f"two leaders in term {s.term}: {other} and {s.node}", s.step, s.node, s.term))
            key = (s.node, s.term)
            prev = self._leader_log.get(key)
            if prev is not None and log[:len(prev)] != prev:
                self._report(out, ("append-only", key), Violation(
                    "leader append-only", f"leader {s.node} rewrote its own log in term {s.term}", s.step, s.node,
                    s.term))
            self._leader_log[key] = log
            if key not in self._first_log:
                self._first_log[key] = log
                for i, e in self._committed.items():
                    self._check_complete(out, s.node, s.term, log, i, e, s.step)
        # log matching, inductively: each (index, term) always carries the same entry after the same term
        old = self._prev_log.get(s.node, ())
        k = 0
        lim = min(len(old), len(log))
        while k < lim and old[k] is log[k]:
            k += 1
        for j in range(k, len(log)):
            e = log[j]
            if e.index != j + 1:
                self._report(out, ("gap", s.node, j + 1), Violation(
                    "log matching", f"{s.node}'s log has entry {e.index} at position {j + 1}", s.step, s.node, s.term))
                continue
            sig = (e.kind, e.data, log[j - 1].term if j else 0)
            got = self._known.setdefault((e.index, e.term), sig)
            if got != sig:
                self._report(out, ("matching", e.index, e.term), Violation(
                    "log matching", f"two different entries with index {e.index} and term {e.term} (seen on "
                    f"{s.node})", s.step, s.node, s.term))
        self._prev_log[s.node] = log

    def _commit(self, c, out: list) -> None:
        e = c.entry
        got = self._committed.setdefault(e.index, e)
        if got != e:
            self._report(out, ("sms", e.index), Violation(
                "state machine safety", f"index {e.index} applied as {_short(got)} and as {_short(e)} (on {c.node})",
                c.step, c.node, c.term))
            return
        t = self._commit_term.get(e.index)
        if t is None or c.term < t:
            self._commit_term[e.index] = c.term
            for (node, term), log in self._first_log.items():
                self._check_complete(out, node, term, log, e.index, e, c.step)

    def _check_complete(self, out, node, term, log, index, entry, step) -> None:
        if self._commit_term.get(index, term) >= term:
            return  # committed in this term or later: not a constraint on this leader
        if len(log) < index or log[index - 1] != entry:
            self._report(out, ("complete", node, term, index), Violation(
                "leader completeness", f"leader {node} of term {term} lacks committed entry {_short(entry)}", step,
                node, term))


def _short(e: Entry) -> str:
    data = "" if e.kind == "noop" else f" {e.data!r}"
    return f"#{e.index} (term {e.term}, {e.kind}{data})"
