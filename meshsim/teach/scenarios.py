"""Classic Raft situations, set up by a sequence of classroom actions (so each step can be read and rewound).

:func:`figure8` builds the Raft paper's Figure 8 (Ongaro & Ousterhout 2014, section 5.4.2): an entry
stored on a majority of servers is *not* committed when it is from an earlier term — a later leader may
still overwrite it — which is why a leader commits only entries of its own term by counting replicas
(and earlier ones with them).  Each new leader in meshsim appends a no-op entry when it is elected (as
real implementations do, thesis section 6.4), so the entries of the figure are those no-ops.

With five servers (``s1``..``s5``; with n servers ``s5`` is the last one, ``sn``, and "s3" is s3..s(majority)):

(a) term 1: s1 is elected and its no-op #1 is committed everywhere.  s1 restarts and is elected again in
    term 2; its no-op #2 (term 2) reaches s2 only.
(b) s1 crashes.  s5 is elected in term 3 with the votes of s3 and s4 (s2 refuses: its log is more up to
    date) and appends a different #2 (term 3), which nobody receives.
(c) s5 crashes, s1 restarts.  s1's first campaign (term 3) fails: s3 and s4 already voted in term 3.  Its
    second (term 4) wins.  s1 appends #3 (term 4) and sends it to s2, and sends #2 (term 2) to s3: entry
    #2 is now on s1, s2 and s3, a majority — but it is from term 2, so s1 does not commit it.  The
    AppendEntries carrying #3 (term 4) to s3 is in flight.
(d) s1 crashes, and its messages in flight are lost.  s5 restarts, times out twice (term 4 is taken),
    wins term 5 with the votes of s3 and s4 and overwrites #2 everywhere with its own entry from term 3.
    Had s1 committed #2 in (c), a committed entry would now be gone.
(e) instead of (d): every message in flight is delivered.  #3 (term 4) reaches a majority, s1 commits it
    and #2 with it; now s5 can never be elected (its log is behind a majority's).

>>> c = figure8()           # the cells: terms of the entries; * = committed as far as that server knows
>>> print(c.log_table())  # doctest: +NORMALIZE_WHITESPACE
     1  2  3
s1   1  2  4
s2  1*  2  4
s3  1*  2
s4  1*
s5   1  3
>>> c.committed_indices(), c.leader(), c.term("s1")
([1], 's1', 4)
>>> figure8(stage="e").committed_indices(), figure8(stage="d").committed_entry(2).term
([1, 2, 3], 3)
"""

from __future__ import annotations

from typing import Any

from .classroom import RaftClassroom, cluster

__all__ = ["FIGURE8_STAGES", "figure8"]

#: the stages of :func:`figure8`: a, b, c in sequence; d and e are the two possible endings after c
FIGURE8_STAGES: tuple[str, ...] = ("a", "b", "c", "d", "e")


def figure8(servers: int = 5, seed: int = 0, stage: str = "c", **kw: Any) -> RaftClassroom:
    """The Raft paper's Figure 8 on a fresh classroom cluster of ``servers`` (odd, at least 5), run up to
    the end of ``stage`` (see the module doc; the steps are in :attr:`RaftClassroom.history`)."""
    if stage not in FIGURE8_STAGES:
        raise ValueError(f"stage must be one of {', '.join(FIGURE8_STAGES)}, got {stage!r}")
    if servers < 5:
        raise ValueError(f"Figure 8 needs at least 5 servers, got {servers}")
    c = cluster(servers, seed=seed, **kw)
    s = c.servers
    first, second, last = s[0], s[1], s[-1]
    carriers = s[2:c.majority]  # receive the term-2 entry in (c): with s1 and s2 they make a majority

    def elect(candidate: str) -> None:
        c.timeout(candidate)
        c.deliver(src=candidate, type="RequestVote")
        c.deliver(dst=candidate, type="RequestVoteResponse")

    # (a) term 1 commits a no-op everywhere; s1 reboots and wins term 2; its no-op #2 reaches s2 only
    elect(first)
    c.deliver_all()
    c.crash(first)
    c.restart(first)
    elect(first)
    c.deliver(dst=second, type="AppendEntries")
    c.drop(src=first, type="AppendEntries")
    c.deliver(src=second, dst=first)
    if stage == "a":
        return c
    # (b) s1 crashes; the last server wins term 3 without s2 and appends its own #2 (term 3), sent to no one
    c.crash(first)
    elect(last)
    c.drop(src=last)
    if stage == "b":
        return c
    # (c) the last server crashes; s1 restarts, loses term 3, wins term 4, puts #2 (term 2) on a majority
    c.crash(last)
    c.restart(first)
    elect(first)  # term 3: the others already voted in term 3 -> no leader
    elect(first)  # term 4
    c.deliver(dst=second, type="AppendEntries")
    c.deliver(src=second, dst=first)
    for p in carriers:
        c.deliver(dst=p, type="AppendEntries")  # rejected: p lacks #2
        c.deliver(src=p, dst=first)             # s1 backs up and sends #2 (term 2)
        c.deliver(dst=p, type="AppendEntries")  # accepted
        c.deliver(src=p, dst=first)             # s1 counts #2 on a majority, does not commit it; sends #3
    def others(m) -> bool:  # s1's messages to servers that are not to receive #2: lost
        return m.src == first and m.dst not in carriers

    c.drop(others)
    if stage == "c":
        return c
    if stage == "e":
        c.deliver_all()
        return c
    # (d) s1 crashes with its messages; the last server comes back and wins term 5
    c.drop(src=first)
    c.crash(first)
    c.restart(last)
    elect(last)  # term 4: everyone already voted for s1
    elect(last)  # term 5
    c.deliver_all()
    return c
