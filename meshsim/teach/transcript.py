"""Raft specifications as readable transcripts: a command, ``----``, and exactly what it prints.

A transcript (``tests/testdata/raft/*.txt``) is a sequence of blocks separated by blank lines.  Lines
beginning with ``#`` are comments.  Each block is one command, a line ``----``, and the output the command
must print (never empty: a command with nothing to say prints ``ok``).  :func:`run_text` runs the
commands on a fresh :class:`TranscriptCluster` (the message-by-message harness of
:mod:`meshsim.teach.harness`, on the real :class:`~meshsim.core.raft.RaftNode`) and returns the same text
with every output replaced by what the command printed now; a transcript passes when nothing changed.
``python -m meshsim.teach.transcript --rewrite DIR`` (or ``MESHSIM_REWRITE=1`` under pytest) writes the
new outputs back.

Notation: a log position or an entry is ``term/index`` (``1/3`` is index 3, written in term 1), an entry
with its contents ``1/3:x``; ``noop`` is the entry a new leader appends, ``conf=1,2,3,4`` a configuration.
Messages print as ``1->2 MsgVote term=2 last=1/3 pre`` (``pre``: a Pre-Vote), ``MsgVoteResp term=2
granted``, ``MsgApp term=2 prev=1/3 commit=3 entries=[2/4:x]`` (no entries: a heartbeat), ``MsgAppResp
term=2 ok match=4`` or ``MsgAppResp term=2 reject prev=4 hint=1/3`` (the follower's term at the rejected
index and where that term begins in its log; ``hint=-/3``: its log ends before, at 2; no hint: the
message's term was stale).  What a message made its receiver do is indented under it.

Commands (node ids are integers; ``[x]`` is optional)::

    add-nodes N [profile=paper] [seed=0] [field=value ...]
                                     a fresh cluster 1..N (RaftConfig.profile with field overrides)
    campaign N                       fire N's election timer now (etcd's Campaign)
    tick MS  (or advance MS)         move the clock, firing due timers; messages stay in flight
    deliver [from=A] [to=B] [type=T] deliver the messages in flight now (those matching), not the replies
    stabilize                        deliver until no message is in flight
    drop [from=A] [to=B] [type=T]    lose messages in flight
    pending                          list the messages in flight
    propose N DATA                   a client command at N
    read-index N ID                  a linearizable read at N
    add-server N [at=L]              a membership change asked of L (default: the leader)
    remove-server N [at=L]
    partition 1 | 2 3                cut the network into groups (heal: mend it)
    crash N / restart N              lose N's volatile state / restart it from what it persisted
    status                           every node's role, term, vote, leader, commit index and log
    timers                           every node's next deadline

After every command the Raft safety properties are checked over the whole history
(:func:`~meshsim.teach.harness.check_safety`); a violation prints ``SAFETY VIOLATION: ...``.

>>> t = Transcript()
>>> print(t.run("add-nodes 3 profile=paper seed=0"))
profile paper: heartbeat 75 ms, election timeout 150-300 ms, pre-vote off, check-quorum off
>>> print(t.run("campaign 1"))
1 becomes candidate at term 1
>>> print(t.run("deliver to=2"))
1->2 MsgVote term=1 last=0/0
  2 moves to term 1
  2 votes for 1
>>> print(t.run("status"))
1 candidate     term=1 vote=1 leader=- commit=0 log=
2 follower      term=1 vote=1 leader=- commit=0 log=
3 follower      term=0 vote=- leader=- commit=0 log=
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from meshsim.core.raft import (
    LEADER,
    PRECANDIDATE,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Message,
    RaftConfig,
    RequestVote,
    RequestVoteResponse,
)

from .harness import Cluster, Envelope, check_safety

__all__ = ["Block", "Transcript", "TranscriptCluster", "check_file", "format_entry", "format_message", "main",
           "parse", "rewrite", "run_text"]

SEPARATOR = "----"


# --------------------------------------------------------------------------- formatting


def format_entry(e: Entry) -> str:
    """``term/index:data``.

    >>> format_entry(Entry(3, 2, "command", "x")), format_entry(Entry(1, 1, "noop"))
    ('2/3:x', '1/1:noop')
    >>> format_entry(Entry(4, 2, "config", (1, 2, 3, 4)))
    '2/4:conf=1,2,3,4'
    """
    if e.kind == "noop":
        body = "noop"
    elif e.kind == "config":
        body = "conf=" + ",".join(str(v) for v in e.data)
    else:
        body = str(e.data)
    return f"{e.term}/{e.index}:{body}"


def format_entries(entries) -> str:
    return " ".join(format_entry(e) for e in entries)


def format_message(msg: Message) -> str:
    """One message without its sender and receiver.

    >>> format_message(RequestVote(2, 1, 3, 1, pre_vote=True))
    'MsgVote term=2 last=1/3 pre'
    >>> format_message(AppendEntries(2, 1, 3, 1, (Entry(4, 2, "command", "x"),), 3))
    'MsgApp term=2 prev=1/3 commit=3 entries=[2/4:x]'
    >>> format_message(AppendEntriesResponse(2, 3, False, reject_index=4, conflict_term=None, conflict_index=3))
    'MsgAppResp term=2 reject prev=4 hint=-/3'
    """
    if isinstance(msg, RequestVote):
        return f"MsgVote term={msg.term} last={msg.last_term}/{msg.last_index}" + (" pre" if msg.pre_vote else "")
    if isinstance(msg, RequestVoteResponse):
        return (f"MsgVoteResp term={msg.term} {'granted' if msg.granted else 'refused'}"
                + (" pre" if msg.pre_vote else ""))
    if isinstance(msg, AppendEntries):
        text = f"MsgApp term={msg.term} prev={msg.prev_term}/{msg.prev_index} commit={msg.commit}"
        return text + (f" entries=[{format_entries(msg.entries)}]" if msg.entries else "")
    if isinstance(msg, AppendEntriesResponse):
        if msg.success:
            return f"MsgAppResp term={msg.term} ok match={msg.match_index}"
        text = f"MsgAppResp term={msg.term} reject prev={msg.reject_index}"
        if msg.conflict_term is None and msg.conflict_index == 0:
            return text  # refused for its stale term: no log hint
        hint = "-" if msg.conflict_term is None else msg.conflict_term
        return text + f" hint={hint}/{msg.conflict_index}"
    return repr(msg)


def _type(msg: Message) -> str:
    return format_message(msg).split()[0]


def _ms(t: float) -> str:
    return f"{t:.1f}"


def _ids(xs) -> str:
    return " ".join(str(x) for x in xs)


# --------------------------------------------------------------------------- the cluster


@dataclass
class _Seen:
    role: str
    term: int
    vote: Any
    log: tuple
    voters: tuple


class TranscriptCluster(Cluster):
    """The harness's :class:`~meshsim.teach.harness.Cluster`, which also describes what every node call
    changed (:attr:`calls`: ``(node, call, [event lines])``) and can fire an election timer early."""

    def __post_init__(self):
        super().__post_init__()
        self.calls: list[tuple[Any, str, list[str]]] = []
        self._seen: dict[Any, _Seen] = {i: self._look(i) for i in self.ids}

    def _look(self, nid) -> _Seen:
        n = self.nodes[nid]
        return _Seen(n.role, n.term, n.voted_for, tuple(n._log), n.voters)

    def campaign(self, nid):
        """Let ``nid``'s election timer expire now (RaftNode.fire_election_timer)."""
        return self._handle(nid, "campaign", self.nodes[nid].fire_election_timer(self.now))

    def _handle(self, nid, call, ready):
        if call in ("start", "restart") or nid not in self._seen:
            self._seen[nid] = self._look(nid)
        before = self._seen[nid]
        out = super()._handle(nid, call, ready)
        node = self.nodes[nid]
        ev: list[str] = []
        if call == "timer":
            kind = "heartbeat" if before.role == LEADER else "election"
            ev.append(f"{_ms(self.now)} ms: {nid}'s {kind} timer fires")
        if before.role == LEADER and ready.committed:  # a leader commits before it may step down
            ev.append(f"{nid} commits {format_entries(ready.committed)}")
        for role in ready.role_changes:
            term = before.term if role == PRECANDIDATE else node.term
            ev.append(f"{nid} becomes {role} at term {term}")
        if node.term != before.term and not set(ready.role_changes) - {PRECANDIDATE, LEADER}:
            ev.append(f"{nid} moves to term {node.term}")
        if node.voted_for not in (None, nid) and (node.voted_for, node.term) != (before.vote, before.term):
            ev.append(f"{nid} votes for {node.voted_for}")
        log = tuple(node._log)
        k = 0
        while k < min(len(log), len(before.log)) and log[k] == before.log[k]:
            k += 1
        if k < len(before.log):
            ev.append(f"{nid} drops {format_entries(before.log[k:])}")
        if k < len(log):
            ev.append(f"{nid} appends {format_entries(log[k:])}")
        if node.voters != before.voters:
            ev.append(f"{nid} now counts votes among {_ids(node.voters)}")
        if ready.committed and before.role != LEADER:
            ev.append(f"{nid} commits {format_entries(ready.committed)}")
        for rs in ready.reads:
            ev.append(f"{nid} read {rs.request_id} ready at index {rs.index}")
        for rid in ready.failed_reads:
            ev.append(f"{nid} read {rid} failed")
        if ready.rejected:
            hint = "" if ready.leader_hint in (None, nid) else f" (leader is {ready.leader_hint})"
            ev.append(f"{nid} refuses: {ready.rejected}{hint}")
        self._seen[nid] = self._look(nid)
        if call == "timer" and len(ev) == 1:
            ev = []  # a timer that changed nothing worth saying (a heartbeat)
        self.calls.append((nid, call, ev))
        return out

    def why_undeliverable(self, env: Envelope) -> str | None:
        if self.nodes.get(env.dst) is None:
            return f"{env.dst} is down"
        if not self.can_talk(env.src, env.dst):
            return "partitioned"
        return None


# --------------------------------------------------------------------------- the interpreter


class TranscriptError(ValueError):
    """A command the interpreter does not understand (printed as ``error: ...``)."""


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _node(text: str) -> Any:
    return _value(text)


class Transcript:
    """Runs transcript commands one at a time; :meth:`run` returns what a command prints."""

    def __init__(self) -> None:
        self.cluster: TranscriptCluster | None = None
        self._commands: dict[str, Callable[[list[str], dict[str, str]], list[str]]] = {
            "add-nodes": self._add_nodes, "campaign": self._campaign, "tick": self._tick, "advance": self._tick,
            "deliver": self._deliver, "stabilize": self._stabilize, "drop": self._drop, "pending": self._pending,
            "propose": self._propose, "read-index": self._read_index, "add-server": self._add_server,
            "remove-server": self._remove_server, "partition": self._partition, "heal": self._heal,
            "crash": self._crash, "restart": self._restart, "status": self._status, "timers": self._timers,
        }

    def run(self, command: str) -> str:
        """Run one command line; its output (``ok`` if it printed nothing)."""
        words = shlex.split(command)
        if not words:
            raise TranscriptError("empty command")
        name, rest = words[0], words[1:]
        args = [w for w in rest if "=" not in w]
        kw = dict(w.split("=", 1) for w in rest if "=" in w)
        fn = self._commands.get(name)
        try:
            if fn is None:
                raise TranscriptError(f"unknown command {name!r}; known: {', '.join(sorted(self._commands))}")
            if name != "add-nodes" and self.cluster is None:
                raise TranscriptError("no cluster yet: start with add-nodes")
            lines = fn(args, kw)
        except (TranscriptError, ValueError, KeyError) as e:
            lines = [f"error: {e}"]
        if self.cluster is not None:
            try:
                check_safety(self.cluster)
            except AssertionError as e:
                lines.append(f"SAFETY VIOLATION: {e}")
        return "\n".join(lines) if lines else "ok"

    # ------------------------------------------------------------ helpers
    @property
    def c(self) -> TranscriptCluster:
        assert self.cluster is not None
        return self.cluster

    def _calls(self, since: int, indent: str = "") -> list[str]:
        out = []
        for _nid, call, ev in self.c.calls[since:]:
            if call == "timer" and ev:
                out.append(indent + ev[0])
                out.extend(indent + "  " + line for line in ev[1:])
            else:
                out.extend(indent + line for line in ev)
        return out

    def _one(self, args: list[str], what: str) -> Any:
        if len(args) != 1:
            raise TranscriptError(f"expected {what}")
        nid = _node(args[0])
        if nid not in self.c.ids:
            raise TranscriptError(f"no node {nid}")
        return nid

    def _up(self, nid) -> None:
        if self.c.nodes.get(nid) is None:
            raise TranscriptError(f"{nid} is down")

    def _line(self, env: Envelope) -> str:
        return f"{env.src}->{env.dst} {format_message(env.msg)}"

    def _match(self, kw: dict[str, str]) -> Callable[[Envelope], bool]:
        unknown = set(kw) - {"from", "to", "type"}
        if unknown:
            raise TranscriptError(f"unknown filter(s) {', '.join(sorted(unknown))}; use from=, to=, type=")
        src = _node(kw["from"]) if "from" in kw else None
        dst = _node(kw["to"]) if "to" in kw else None
        typ = kw.get("type")
        return lambda e: ((src is None or e.src == src) and (dst is None or e.dst == dst)
                          and (typ is None or _type(e.msg) == typ))

    def _deliver_one(self, env: Envelope) -> list[str]:
        why = self.c.why_undeliverable(env)
        line = self._line(env) + (f" (dropped: {why})" if why else "")
        since = len(self.c.calls)
        self.c.deliver(self.c.queue.index(env))
        return [line] + self._calls(since, "  ")

    # ------------------------------------------------------------ commands
    def _add_nodes(self, args, kw):
        if len(args) != 1:
            raise TranscriptError("expected add-nodes N [profile=...] [seed=...] [field=value ...]")
        profile = kw.pop("profile", "paper")
        seed = int(kw.pop("seed", "0"))
        names = {f.name for f in fields(RaftConfig)}
        over = {k: _value(v) for k, v in kw.items()}
        bad = set(over) - names
        if bad:
            raise TranscriptError(f"unknown RaftConfig field(s) {', '.join(sorted(bad))}")
        cfg = RaftConfig.profile(profile, **over)
        self.cluster = TranscriptCluster(int(args[0]), config=cfg, seed=seed)
        self.cluster.start()
        onoff = {True: "on", False: "off"}
        line = (f"profile {profile}: heartbeat {cfg.heartbeat_interval_ms:g} ms, election timeout "
                f"{cfg.election_timeout_min_ms:g}-{cfg.election_timeout_max_ms:g} ms, "
                f"pre-vote {onoff[cfg.pre_vote]}, check-quorum {onoff[cfg.check_quorum]}")
        if cfg.lease_reads:
            line += ", lease reads on"
        if over:
            line += " (" + " ".join(f"{k}={v}" for k, v in kw.items()) + ")"
        return [line]

    def _campaign(self, args, kw):
        nid = self._one(args, "campaign N")
        self._up(nid)
        since = len(self.c.calls)
        self.c.campaign(nid)
        return self._calls(since)

    def _tick(self, args, kw):
        if len(args) != 1:
            raise TranscriptError("expected tick MS")
        since = len(self.c.calls)
        self.c.advance(float(args[0]))
        return self._calls(since)

    def _deliver(self, args, kw):
        pick = self._match(kw)
        out = []
        for env in [e for e in self.c.queue if pick(e)]:
            out += self._deliver_one(env)
        return out

    def _stabilize(self, args, kw, limit: int = 10_000):
        out = []
        count = 0
        while self.c.queue:
            count += 1
            if count > limit:
                raise TranscriptError(f"more than {limit} messages: livelock?")
            out += self._deliver_one(self.c.queue[0])
        return out

    def _drop(self, args, kw):
        pick = self._match(kw)
        lost = [e for e in self.c.queue if pick(e)]
        self.c.drop_where(lambda e: any(e is x for x in lost))
        return [f"dropped {self._line(e)}" for e in lost]

    def _pending(self, args, kw):
        return [self._line(e) for e in self.c.queue] or ["no messages in flight"]

    def _propose(self, args, kw):
        if len(args) != 2:
            raise TranscriptError("expected propose N DATA")
        nid = self._one(args[:1], "propose N DATA")
        self._up(nid)
        since = len(self.c.calls)
        self.c.propose(nid, args[1])
        return self._calls(since)

    def _read_index(self, args, kw):
        if len(args) != 2:
            raise TranscriptError("expected read-index N ID")
        nid = self._one(args[:1], "read-index N ID")
        self._up(nid)
        since = len(self.c.calls)
        self.c.read(nid, args[1])
        out = self._calls(since)
        rec = self.c.reads[args[1]]
        if rec.result is None and not rec.failed and not any(line.startswith(f"{nid} refuses") for line in out):
            out.append(f"{nid} read {args[1]} pending")
        return out

    def _membership(self, args, kw, add: bool):
        if len(args) != 1:
            raise TranscriptError(f"expected {'add' if add else 'remove'}-server N [at=L]")
        new = _node(args[0])
        at = _node(kw["at"]) if "at" in kw else self.c.leader()
        if at is None:
            raise TranscriptError("no leader to ask (give at=N)")
        self._up(at)
        since = len(self.c.calls)
        out = []
        if add and new not in self.c.ids:
            self.c.add_node(new)
            out.append(f"{new} starts with an empty log (it knows voters {_ids(self.c.voters)})")
        if add:
            self.c.add_server(at, new)
        else:
            self.c.remove_server(at, new)
        return out + self._calls(since)

    def _add_server(self, args, kw):
        return self._membership(args, kw, add=True)

    def _remove_server(self, args, kw):
        return self._membership(args, kw, add=False)

    def _partition(self, args, kw):
        groups, cur = [], []
        for w in args:
            for part in w.replace("|", " | ").split():
                if part == "|":
                    groups.append(cur)
                    cur = []
                else:
                    cur.append(_node(part))
        groups.append(cur)
        if any(not g for g in groups):
            raise TranscriptError("expected partition A B | C D (groups of node ids separated by |)")
        self.c.partition(*groups)
        return []

    def _heal(self, args, kw):
        self.c.heal()
        return []

    def _crash(self, args, kw):
        nid = self._one(args, "crash N")
        self._up(nid)
        self.c.crash(nid)
        return []

    def _restart(self, args, kw):
        nid = self._one(args, "restart N")
        since = len(self.c.calls)
        self.c.restart(nid)
        n = self.c.nodes[nid]
        vote = "-" if n.voted_for is None else n.voted_for
        return ([f"{nid} restarts from disk: term={n.term} vote={vote} log={format_entries(n.log)}"]
                + self._calls(since))

    def _status(self, args, kw):
        out = []
        for i in self.c.ids:
            n = self.c.nodes.get(i)
            if n is None:
                d = self.c.disk[i]
                vote = "-" if d.voted_for is None else d.voted_for
                out.append(f"{i} {'down':13} term={d.term} vote={vote} log={format_entries(d.log)}")
                continue
            vote = "-" if n.voted_for is None else n.voted_for
            lead = "-" if n.leader_id is None else n.leader_id
            line = f"{i} {n.role:13} term={n.term} vote={vote} leader={lead} commit={n.commit_index}"
            if tuple(n.voters) != tuple(self.c.voters):
                line += f" voters={','.join(str(v) for v in n.voters)}"
            out.append(line + f" log={format_entries(n.log)}")
        return out

    def _timers(self, args, kw):
        out = [f"now {_ms(self.c.now)} ms"]
        for i in self.c.ids:
            n = self.c.nodes.get(i)
            d = self.c._deadline.get(i)
            if n is None:
                out.append(f"{i} down")
            elif d is None:
                out.append(f"{i} no timer")
            else:
                kind = "heartbeat" if n.role == LEADER else "election"
                out.append(f"{i} {kind} timer at {_ms(d)} ms")
        return out


# --------------------------------------------------------------------------- files


@dataclass
class Block:
    """One command of a transcript: the comment and blank lines before it, the command, its expected output."""

    before: list[str]
    command: str
    expected: str
    line: int


def parse(text: str) -> tuple[list[Block], list[str]]:
    """The blocks of a transcript and the lines after the last one.

    >>> blocks, tail = parse("# hello\\n\\nstatus\\n----\\nok\\n")
    >>> blocks[0].before, blocks[0].command, blocks[0].expected, blocks[0].line, tail
    (['# hello', ''], 'status', 'ok', 3, [])
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    before: list[str] = []
    i = 0
    while i < len(lines):
        s = lines[i]
        if not s.strip() or s.lstrip().startswith("#"):
            before.append(s)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != SEPARATOR:
            raise TranscriptError(f"line {i + 1}: command {s!r} must be followed by a line {SEPARATOR!r}")
        j = i + 2
        while j < len(lines) and lines[j].strip():
            j += 1
        blocks.append(Block(before, s, "\n".join(lines[i + 2:j]), i + 1))
        before = []
        i = j
    return blocks, before


def run_text(text: str) -> str:
    """``text`` with every command's output replaced by what it prints now (equal to ``text`` when the
    transcript holds)."""
    blocks, tail = parse(text)
    t = Transcript()
    out: list[str] = []
    for b in blocks:
        out += b.before
        try:
            printed = t.run(b.command)
        except Exception as e:  # a crash in the core (say): name the transcript line
            raise TranscriptError(f"line {b.line}: {b.command!r} raised {type(e).__name__}: {e}") from e
        out += [b.command, SEPARATOR, printed]
    out += tail
    return "\n".join(out) + "\n"


def _files(paths) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        found += sorted(p.glob("*.txt")) if p.is_dir() else [p]
    return found


def check_file(path: str | Path) -> str | None:
    """None if the transcript at ``path`` holds, else a unified diff (expected -> actual)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    got = run_text(text)
    if got == text:
        return None
    return "".join(difflib.unified_diff(text.splitlines(keepends=True), got.splitlines(keepends=True),
                                        f"{path} (expected)", f"{path} (actual)"))


def rewrite(*paths: str | Path) -> list[Path]:
    """Regenerate the outputs of the transcripts at ``paths`` (files or directories of ``*.txt``);
    the files that changed."""
    changed = []
    for p in _files(paths):
        text = p.read_text(encoding="utf-8")
        got = run_text(text)
        if got != text:
            p.write_text(got, encoding="utf-8")
            changed.append(p)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m meshsim.teach.transcript [--rewrite] PATH...``: check (or regenerate) transcripts."""
    ap = argparse.ArgumentParser(prog="python -m meshsim.teach.transcript", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="transcript files or directories of *.txt")
    ap.add_argument("--rewrite", action="store_true", help="write the actual outputs into the files")
    a = ap.parse_args(argv)
    if a.rewrite:
        for p in rewrite(*a.paths):
            print(f"rewrote {p}")
        return 0
    bad = 0
    for p in _files(a.paths):
        diff = check_file(p)
        if diff:
            bad += 1
            sys.stdout.write(diff)
        else:
            print(f"ok {p}")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
